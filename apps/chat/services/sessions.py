"""Starting, renaming and removing chats, their questions, and what people say about answers."""

import functools

from django.core.exceptions import ValidationError
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, F, Field, Value, When
from django.utils import timezone

from apps.accounts.models import User
from apps.chat.models import ChatMessage, ChatSession, MessageRole
from apps.connections.models import Connection

TITLE_MAX_LENGTH = 200
# A chat without a name is named after its first question, this long at most.
TITLE_FROM_QUESTION_LENGTH = 120


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


def question_add(*, session: ChatSession, text: str) -> ChatMessage:
    """Save a question in its chat, which moves to the top of the person's chats and, when it has
    no name yet, is named after the question.

    On Postgres this is ONE statement (a data-modifying CTE) outside any transaction block, as the
    budget's reservations are: atomic by itself, one round trip where BEGIN, INSERT, UPDATE and
    COMMIT were four, on the path every question takes before the model is asked. Other databases
    (SQLite in the embedded default) run the same two writes as ORM queries in a transaction.
    """
    question = ChatMessage(session=session, role=MessageRole.USER, content=text)
    now = timezone.now()
    title = text[:TITLE_FROM_QUESTION_LENGTH]
    if _one_statement():
        fields = _insert_fields()
        values = [field.get_db_prep_save(field.pre_save(question, True), db_connection) for field in fields]
        with db_connection.cursor() as cursor:
            cursor.execute(_question_add_sql(), [*values, now, title, session.pk])
            row = cursor.fetchone()
        if row is None:  # the chat is gone (its questions went with it)
            raise ChatSession.DoesNotExist("The chat was deleted.")
        question.pk, session.title = row
        question._state.adding, question._state.db = False, db_connection.alias
    else:
        with transaction.atomic():
            question.save(force_insert=True)
            ChatSession.objects.filter(pk=session.pk).update(
                updated_at=now, title=Case(When(title="", then=Value(title)), default=F("title"))
            )
        session.title = session.title or title
    session.updated_at = now
    return question


def _one_statement() -> bool:
    return db_connection.vendor == "postgresql"


def _insert_fields() -> list[Field]:
    return [field for field in ChatMessage._meta.concrete_fields if not field.primary_key]


@functools.cache
def _question_add_sql() -> str:
    """The question's INSERT (every column, as the model defines them) and the chat's UPDATE, whose
    name is set only if it has none (read in the statement, so a rename from another tab stays)."""
    quote = db_connection.ops.quote_name
    fields = _insert_fields()
    return f"""
WITH question AS (
    INSERT INTO {quote(ChatMessage._meta.db_table)} ({", ".join(quote(f.column) for f in fields)})
    VALUES ({", ".join(["%s"] * len(fields))})
    RETURNING id
), chat AS (
    UPDATE {quote(ChatSession._meta.db_table)}
    SET updated_at = %s, title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s
    RETURNING title
)
SELECT question.id, chat.title FROM question, chat
"""
