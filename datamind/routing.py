"""WebSocket URL space: every consumer lives under /ws/; each app adds its routes here."""

from apps.chat.routing import websocket_urlpatterns as chat_websocket_urlpatterns
from apps.dashboards.routing import websocket_urlpatterns as dashboards_websocket_urlpatterns

websocket_urlpatterns = [*chat_websocket_urlpatterns, *dashboards_websocket_urlpatterns]
