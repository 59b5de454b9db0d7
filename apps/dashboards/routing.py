from django.urls import path

from apps.dashboards import consumers

websocket_urlpatterns = [
    path("ws/dashboards/<int:dashboard_id>/", consumers.DashboardConsumer.as_asgi()),
]
