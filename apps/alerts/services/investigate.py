""" "Why did this happen?": a chat that starts from an alert's event, ready for follow-ups.

The chat holds the question and, as its answer, the alert's own query, result, chart and the
condition's sentence, so the person's first follow-up ("break it down by region") already has
the metric's SQL in the last turns the pipeline reads.
"""

from zoneinfo import ZoneInfo

from django.db import transaction

from apps.accounts.models import User
from apps.alerts.models import AlertEvent
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.chat.services.charts import chart_from_shape


def _title(event: AlertEvent) -> str:
    local = event.scheduled_for.astimezone(ZoneInfo(event.alert.timezone))
    return f"Why did {event.alert.name} move? ({local:%Y-%m-%d %H:%M})"


@transaction.atomic
def investigation_start(*, user: User, event: AlertEvent) -> ChatSession:
    """The user's chat about `event`, created the first time they open it."""
    alert = event.alert
    title = _title(event)
    existing = ChatSession.objects.filter(org=user.org, user=user, title=title).first()
    if existing is not None:
        return existing
    session = ChatSession.objects.create(org=user.org, user=user, connection=alert.connection, title=title)
    question = f"Why did this happen? {alert.name}: {event.message}"
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content=question)
    answer = "\n\n".join(part for part in (event.message, event.explanation) if part)
    ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        content=f"{answer}\n\nAsk a follow-up to break it down, e.g. by a dimension or a shorter period.",
        explanation=f"This is the query of the alert “{alert.name}”.",
        sql=alert.sql,
        attempts=[{"sql": alert.sql, "error": ""}],
        columns=event.columns,
        rows=event.rows,
        row_count=len(event.rows),
        chart=chart_from_shape(event.columns, event.rows) if event.rows else {},
        provider="alert",
    )
    return session
