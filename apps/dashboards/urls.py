from django.urls import path, re_path

from apps.dashboards import apis
from apps.dashboards.views import pages, pinning, subscriptions, widgets

app_name = "dashboards"

urlpatterns = [
    path("", pages.index, name="index"),
    path("new/", pages.dashboard_create, name="dashboard-create"),
    path("pin/", pinning.pin, name="pin"),
    path("pin/answers/<int:message_pk>/", pinning.pin, name="pin-answer"),
    path("<int:pk>/", pages.dashboard_detail, name="dashboard-detail"),
    path("<int:pk>/edit/", pages.dashboard_edit, name="dashboard-edit"),
    path("<int:pk>/delete/", pages.dashboard_delete, name="dashboard-delete"),
    path("<int:pk>/duplicate/", pages.dashboard_duplicate, name="dashboard-duplicate"),
    path("<int:pk>/refresh/", pages.dashboard_refresh_all, name="dashboard-refresh"),
    path("<int:pk>/widgets/new/", widgets.widget_add, name="widget-add"),
    path("<int:pk>/print/", pages.dashboard_print, name="dashboard-print"),
    path("<int:pk>/pdf/", pages.dashboard_pdf, name="dashboard-pdf"),
    path("<int:pk>/subscriptions/", subscriptions.subscriptions, name="subscriptions"),
    path(
        "<int:pk>/subscriptions/<int:subscription_pk>/delete/",
        subscriptions.subscription_delete,
        name="subscription-delete",
    ),
    path("unsubscribe/<str:token>/", subscriptions.unsubscribe, name="unsubscribe"),
    re_path(
        r"^widgets/(?P<pk>[0-9]+)/chart\.(?P<fmt>png|svg)$", widgets.widget_download, name="widget-chart"
    ),
    re_path(r"^widgets/(?P<pk>[0-9]+)/data\.(?P<fmt>csv|xlsx)$", widgets.widget_download, name="widget-data"),
    path("widgets/<int:pk>/", widgets.widget_fragment, name="widget-fragment"),
    path("widgets/<int:pk>/edit/", widgets.widget_edit, name="widget-edit"),
    path("widgets/<int:pk>/validate/", widgets.widget_validate, name="widget-validate"),
    path("widgets/<int:pk>/preview/", widgets.widget_preview, name="widget-preview"),
    path("widgets/<int:pk>/layout/", widgets.widget_layout, name="widget-layout"),
    path("widgets/<int:pk>/delete/", widgets.widget_delete, name="widget-delete"),
]

api_urlpatterns = [
    path("dashboards/", apis.DashboardListApi.as_view(), name="dashboard-list"),
    path("dashboards/<int:pk>/", apis.DashboardDetailApi.as_view(), name="dashboard-detail"),
    path("dashboards/<int:pk>/refresh/", apis.DashboardRefreshApi.as_view(), name="dashboard-refresh"),
    path("dashboards/<int:pk>/widgets/", apis.WidgetListApi.as_view(), name="widget-list"),
    path(
        "dashboards/<int:pk>/widgets/<int:widget_pk>/", apis.WidgetDetailApi.as_view(), name="widget-detail"
    ),
    path("dashboards/<int:pk>/subscriptions/", apis.SubscriptionListApi.as_view(), name="subscription-list"),
    path(
        "dashboards/<int:pk>/subscriptions/<int:subscription_pk>/",
        apis.SubscriptionDetailApi.as_view(),
        name="subscription-detail",
    ),
    path("widgets/<int:pk>/data/", apis.WidgetDataApi.as_view(), name="widget-data"),
    re_path(
        r"^widgets/(?P<pk>[0-9]+)/chart\.(?P<fmt>png|svg)$",
        apis.WidgetChartApi.as_view(),
        name="widget-chart",
    ),
]
