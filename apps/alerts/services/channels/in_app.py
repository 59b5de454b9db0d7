"""``in_app``: the bell, a toast on open pages, and the notifications page."""

from typing import Any

from django.core.exceptions import ValidationError

from apps.accounts.models import User
from apps.alerts.models import AlertDelivery, EventState, NotificationLevel
from apps.alerts.services.channels.base import AlertMessage, Channel
from apps.alerts.services.notify import notify_users

AUDIENCES = {"org": "Everyone in the organisation", "owner": "Only the alert's owner"}
_LEVELS = {
    "triggered": NotificationLevel.WARNING,
    "resolved": NotificationLevel.SUCCESS,
    "failing": NotificationLevel.ERROR,
}


class InAppChannel(Channel):
    kind = "in_app"
    label = "In the app"
    in_transaction = True

    @classmethod
    def clean(cls, settings: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        audience = settings.get("to") or "org"
        if audience not in AUDIENCES:
            raise ValidationError({"channels": "In-app messages go to the organisation or the owner."})
        return {"kind": cls.kind, "to": audience}

    @classmethod
    def recipients(cls, delivery: AlertDelivery) -> list[User]:
        alert = delivery.event.alert
        if delivery.config.get("to") == "owner" or delivery.reason == EventState.ERROR:
            return [alert.owner]
        return list(User.objects.filter(org_id=alert.org_id, is_active=True))

    @classmethod
    def target(cls, settings: dict[str, Any], event) -> str:
        return AUDIENCES["owner" if settings.get("to") == "owner" else "org"]

    @classmethod
    def send(cls, delivery: AlertDelivery, message: AlertMessage) -> None:
        notify_users(
            cls.recipients(delivery),
            title=message.title,
            body=message.sentence,
            link=message.investigate_path,  # a path: the app's own host, whatever SITE_URL says
            level=_LEVELS.get(message.reason, NotificationLevel.INFO),
        )
