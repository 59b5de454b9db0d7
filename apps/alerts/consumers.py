from channels.generic.websocket import AsyncWebsocketConsumer

from apps.alerts.services.notify import notifications_group

CLOSE_UNAUTHENTICATED = 4401


class NotificationConsumer(AsyncWebsocketConsumer):
    """/ws/notifications/: a pipe from the person's notifications group to their open page.

    The fragments (toast + badge) arrive rendered by `notify_users`; nothing is received."""

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated or user.org_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = notifications_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def notification_created(self, event: dict) -> None:
        await self.send(text_data=event["html"])
