from collections.abc import Mapping
from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Organization, User
from apps.alerts.models import Alert, AlertDelivery, AlertEvent, EventState, Notification
from apps.chat.models import ChatMessage
from apps.dashboards.models import Widget, WidgetKind
from apps.dashboards.selectors import widget_get

SPARKLINE_POINTS = 24


def alert_list(*, org: Organization) -> QuerySet[Alert]:
    return Alert.objects.filter(org=org).select_related("owner", "connection").order_by("name", "pk")


def alert_get(*, org: Organization, pk: int) -> Alert:
    """One alert of the org; another org's alert is simply not found (404)."""
    return Alert.objects.select_related("owner", "connection", "org").get(org=org, pk=pk)


def alert_sparklines(*, alerts: list[Alert]) -> dict[int, list[float | None]]:
    """The last values of each alert, oldest first, in one query per page."""
    lines: dict[int, list[float | None]] = {a.pk: [] for a in alerts}
    recent = (
        AlertEvent.objects.filter(alert__in=alerts)
        .exclude(state__in=[EventState.RUNNING, EventState.ERROR])
        .order_by("alert_id", "-scheduled_for")
        .values_list("alert_id", "value")
    )
    for alert_id, value in recent:
        if len(lines[alert_id]) < SPARKLINE_POINTS:
            lines[alert_id].append(value)
    return {pk: values[::-1] for pk, values in lines.items()}


def event_list(*, alert: Alert) -> QuerySet[AlertEvent]:
    deliveries = AlertDelivery.objects.order_by("position")
    return alert.events.prefetch_related(Prefetch("deliveries", queryset=deliveries))


def event_get(*, org: Organization, pk: int) -> AlertEvent:
    return AlertEvent.objects.select_related("alert__connection").get(alert__org=org, pk=pk)


def delivery_list(*, alert: Alert) -> QuerySet[AlertDelivery]:
    return AlertDelivery.objects.filter(event__alert=alert).select_related("event")


def notification_list(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user)


def alert_prefill(*, user: User, source: Mapping[str, str]) -> dict[str, Any]:
    """A new alert's fields from what "Create alert" was clicked on: a chat answer of the user's
    (`?message=`) or a dashboard widget they can see (`?widget=`); anything else prefills nothing."""
    message_id, widget_id = source.get("message", ""), source.get("widget", "")
    if message_id.isdigit():
        return _prefill_from_answer(user, int(message_id))
    if widget_id.isdigit():
        return _prefill_from_widget(user, int(widget_id))
    return {}


def _prefill_from_answer(user: User, pk: int) -> dict[str, Any]:
    answer = (
        ChatMessage.objects.filter(pk=pk, session__org=user.org, session__user=user)
        .select_related("session")
        .first()
    )
    if answer is None or not answer.sql or answer.session.connection_id is None:
        return {}
    question = answer.session.messages.filter(pk__lt=answer.pk, role="user").order_by("-pk").first()
    name = (question.content if question else answer.session.title)[:120]
    return {"sql": answer.sql, "connection": answer.session.connection_id, "name": name}


def _prefill_from_widget(user: User, pk: int) -> dict[str, Any]:
    try:
        widget = widget_get(org=user.org, user=user, pk=pk)
    except Widget.DoesNotExist:
        return {}
    if widget.kind == WidgetKind.TEXT or not widget.sql or widget.connection_id is None:
        return {}
    return {"sql": widget.sql, "connection": widget.connection_id, "name": widget.title[:120]}
