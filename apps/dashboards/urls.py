from django.urls import path, re_path

from apps.dashboards import apis, views

app_name = "dashboards"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.dashboard_create, name="dashboard-create"),
    path("pin/", views.pin, name="pin"),
    path("pin/answers/<int:message_pk>/", views.pin, name="pin-answer"),
    path("<int:pk>/", views.dashboard_detail, name="dashboard-detail"),
    path("<int:pk>/edit/", views.dashboard_edit, name="dashboard-edit"),
    path("<int:pk>/delete/", views.dashboard_delete, name="dashboard-delete"),
    path("<int:pk>/duplicate/", views.dashboard_duplicate, name="dashboard-duplicate"),
    path("<int:pk>/refresh/", views.dashboard_refresh_all, name="dashboard-refresh"),
    path("<int:pk>/reorder/", views.dashboard_reorder, name="dashboard-reorder"),
    path("<int:pk>/print/", views.dashboard_print, name="dashboard-print"),
    path("<int:pk>/pdf/", views.dashboard_pdf, name="dashboard-pdf"),
    path("<int:pk>/subscriptions/", views.subscriptions, name="subscriptions"),
    path(
        "<int:pk>/subscriptions/<int:subscription_pk>/delete/",
        views.subscription_delete,
        name="subscription-delete",
    ),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    re_path(r"^widgets/(?P<pk>[0-9]+)/chart\.(?P<fmt>png|svg)$", views.widget_chart, name="widget-chart"),
    re_path(r"^widgets/(?P<pk>[0-9]+)/data\.(?P<fmt>csv|xlsx)$", views.widget_data, name="widget-data"),
    path("widgets/<int:pk>/", views.widget_fragment, name="widget-fragment"),
    path("widgets/<int:pk>/edit/", views.widget_edit, name="widget-edit"),
    path("widgets/<int:pk>/validate/", views.widget_validate, name="widget-validate"),
    path("widgets/<int:pk>/preview/", views.widget_preview, name="widget-preview"),
    path("widgets/<int:pk>/layout/", views.widget_layout, name="widget-layout"),
    path("widgets/<int:pk>/delete/", views.widget_delete, name="widget-delete"),
]

api_urlpatterns = [
    path("dashboards/", apis.DashboardListApi.as_view(), name="dashboard-list"),
    path("dashboards/<int:pk>/", apis.DashboardDetailApi.as_view(), name="dashboard-detail"),
    path("dashboards/<int:pk>/refresh/", apis.DashboardRefreshApi.as_view(), name="dashboard-refresh"),
    path("dashboards/<int:pk>/widgets/", apis.WidgetListApi.as_view(), name="widget-list"),
    path(
        "dashboards/<int:pk>/widgets/<int:widget_pk>/", apis.WidgetDetailApi.as_view(), name="widget-detail"
    ),
    path("widgets/<int:pk>/data/", apis.WidgetDataApi.as_view(), name="widget-data"),
    re_path(
        r"^widgets/(?P<pk>[0-9]+)/chart\.(?P<fmt>png|svg)$",
        apis.WidgetChartApi.as_view(),
        name="widget-chart",
    ),
]
