"""Starting, renaming and removing chats, and what people say about answers."""

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import User
from apps.chat.models import ChatMessage, ChatSession, MessageRole
from apps.connections.models import Connection

TITLE_MAX_LENGTH = 200


@transaction.atomic
def session_create(*, user: User, connection: Connection) -> ChatSession:
    if connection.org_id != user.org_id:
        raise ValidationError({"connection": "Choose one of your organisation's connections."})
    return ChatSession.objects.create(org=user.org, user=user, connection=connection)


@transaction.atomic
def session_rename(*, session: ChatSession, title: str) -> ChatSession:
    title = " ".join(title.split())
    if not title:
        raise ValidationError({"title": "A chat needs a name."})
    session.title = title[:TITLE_MAX_LENGTH]
    session.save(update_fields=["title"])
    return session


@transaction.atomic
def session_delete(*, session: ChatSession) -> None:
    session.delete()


@transaction.atomic
def message_feedback(*, message: ChatMessage, helpful: bool, comment: str = "") -> ChatMessage:
    if message.role != MessageRole.ASSISTANT:
        raise ValidationError("Only answers can be rated.")
    message.feedback = 1 if helpful else -1
    message.feedback_comment = comment.strip()[:2000]
    message.save(update_fields=["feedback", "feedback_comment"])
    return message
