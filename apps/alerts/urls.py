from django.urls import path

from apps.alerts import apis, views

app_name = "alerts"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.alert_create, name="create"),
    path("test/", views.alert_test, name="test"),
    path("<int:pk>/", views.alert_detail, name="detail"),
    path("<int:pk>/edit/", views.alert_edit, name="edit"),
    path("<int:pk>/delete/", views.alert_delete, name="delete"),
    path("<int:pk>/mute/", views.alert_mute, name="mute"),
    path("<int:pk>/evaluate/", views.alert_evaluate, name="evaluate"),
    path("events/<int:pk>/why/", views.event_investigate, name="event-investigate"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notification_read, name="notifications-read-all"),
    path("notifications/<int:pk>/read/", views.notification_read, name="notification-read"),
]

api_urlpatterns = [
    path("alerts/", apis.AlertListApi.as_view(), name="alert-list"),
    path("alerts/<int:pk>/", apis.AlertDetailApi.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/events/", apis.AlertEventsApi.as_view(), name="alert-events"),
    path("alerts/<int:pk>/evaluate/", apis.AlertEvaluateApi.as_view(), name="alert-evaluate"),
    path("alerts/<int:pk>/mute/", apis.AlertMuteApi.as_view(), name="alert-mute"),
]
