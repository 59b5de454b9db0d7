"""WebSocket URL space: every consumer lives under /ws/; each app adds its routes here."""

websocket_urlpatterns: list = []
