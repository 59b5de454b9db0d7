from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.accounts.models import User
from apps.dashboards.models import Dashboard
from apps.dashboards.selectors import dashboard_get
from apps.dashboards.services.refresh import dashboard_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def _dashboard_of(user: User, pk: int) -> Dashboard:
    return dashboard_get(org=user.org, user=user, pk=pk)


class DashboardConsumer(AsyncWebsocketConsumer):
    """/ws/dashboards/<id>/[?filtered=1]: an open dashboard page. Listens to the dashboard's group
    and forwards what a refresh rendered, for htmx to swap in by id: the widget bodies, or for a
    filtered page the element that reloads its grid with its filters."""

    group: str | None = None
    filtered = False

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated or user.org_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            dashboard = await database_sync_to_async(_dashboard_of)(
                user, self.scope["url_route"]["kwargs"]["dashboard_id"]
            )
        except Dashboard.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.filtered = b"filtered=1" in self.scope.get("query_string", b"")
        self.group = dashboard_group(dashboard.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dashboard_refreshed(self, event: dict) -> None:
        await self.send(text_data=event["filtered_html"] if self.filtered else event["html"])
