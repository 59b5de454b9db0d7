""" "What moved": the org's language model breaks a triggered metric down by the alert's dimension.

It asks the chat pipeline in a chat of the alert's owner, so the model call goes through the
org's provider and its token budget like any question (a spent budget simply leaves the event
without a paragraph), and the owner can follow up there. It runs after the event is recorded
and before the e-mails and webhooks go out, so they carry the paragraph; in-app messages, written
with the event, carry the sentence only.
"""

from zoneinfo import ZoneInfo

import structlog
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError

from apps.alerts.models import AlertEvent
from apps.chat.models import ChatSession, MessageStatus
from apps.chat.services.pipeline import answer_question

logger = structlog.get_logger(__name__)

EXPLANATION_MAX_LENGTH = 2000


def explanation_question(event: AlertEvent) -> str:
    alert = event.alert
    return (
        f"{event.message} Break {alert.name} down by {alert.dimension}: compare the latest period with "
        f"the periods before it and say in one paragraph which {alert.dimension} values moved the most. "
        f"The metric's own query is: {alert.sql}"
    )


def event_explain(*, event_id: int) -> AlertEvent:
    """Fill `event.explanation` once (a rerun finds it written and asks nothing)."""
    event = AlertEvent.objects.select_related("alert__owner", "alert__connection").get(pk=event_id)
    alert = event.alert
    if event.explanation or not alert.dimension or alert.connection_id is None:
        return event
    local = event.scheduled_for.astimezone(ZoneInfo(alert.timezone))
    session = ChatSession.objects.create(
        org_id=alert.org_id,
        user=alert.owner,
        connection=alert.connection,
        title=f"What moved: {alert.name} ({local:%Y-%m-%d %H:%M})",
    )
    try:
        answer = async_to_sync(answer_question)(
            session=session, user=alert.owner, text=explanation_question(event)
        )
    except ValidationError as exc:
        logger.info("alert_explanation_refused", event_id=event_id, reason=" ".join(exc.messages))
        return event
    if answer.status == MessageStatus.DONE and answer.content:
        event.explanation = answer.content[:EXPLANATION_MAX_LENGTH]
        AlertEvent.objects.filter(pk=event.pk, explanation="").update(explanation=event.explanation)
    return event
