import functools
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model, Q, QuerySet

from apps.accounts.models import Organization, User
from apps.chat.models import ChatMessage, ChatSession, LLMSettings
from apps.connections.models import Connection

M = TypeVar("M", bound=Model)


def session_list(*, org: Organization, user: User, search: str = "") -> QuerySet[ChatSession]:
    """A person's own chats, newest first; chats are private to whoever started them."""
    sessions = ChatSession.objects.filter(org=org, user=user).select_related("connection")
    if search:
        sessions = sessions.filter(
            Q(title__icontains=search) | Q(messages__content__icontains=search)
        ).distinct()
    return sessions.order_by("-updated_at")


def session_get(*, org: Organization, user: User, pk: int) -> ChatSession:
    """One of the person's chats; anyone else's (or another org's) is simply not found."""
    return ChatSession.objects.select_related("org", "user", "connection").get(org=org, user=user, pk=pk)


def message_list(*, session: ChatSession) -> QuerySet[ChatMessage]:
    return session.messages.order_by("created_at", "id")


def message_get(*, org: Organization, user: User, pk: int) -> ChatMessage:
    return ChatMessage.objects.select_related("session", "session__connection").get(
        session__org=org, session__user=user, pk=pk
    )


# Only what a follow-up's turns need: an answer's row preview and chart (its data included) can
# be large. Written as SQL: compiling the same query with the ORM was three quarters of its CPU
# (about 0.6 ms), on every question's way to the model.
_MESSAGES_BEFORE_SQL = f"""
SELECT role, content, sql, columns, row_count FROM {ChatMessage._meta.db_table}
WHERE session_id = %s AND created_at < %s
ORDER BY created_at DESC, id DESC
LIMIT %s
"""


def messages_before(*, session: ChatSession, before: ChatMessage, limit: int) -> list[dict[str, Any]]:
    """The chat's last `limit` messages before `before`, newest first, as plain values: their role,
    content, SQL, result columns and row count."""
    with connection.cursor() as cursor:
        cursor.execute(
            _MESSAGES_BEFORE_SQL,
            [session.pk, connection.ops.adapt_datetimefield_value(before.created_at), limit],
        )
        return [
            {
                "role": role,
                "content": content,
                "sql": sql,
                "columns": json.loads(columns),
                "row_count": row_count,
            }
            for role, content, sql, columns, row_count in cursor.fetchall()
        ]


def connection_with_model_settings(*, pk: int) -> tuple[Connection, LLMSettings | None] | None:
    """A chat's connection, read afresh for a question (a chat stays open for hours, and its
    catalogue may be refreshed meanwhile), with its org (connection.org) and the org's model
    settings (None when it saved none); None when the connection is gone.

    On Postgres one plain SQL query whose rows become the three models through `Model.from_db`,
    each column converted as the ORM converts it: compiling the same select_related query was two
    thirds of its CPU (about 0.65 ms), on every question's way to the model. Other databases, whose
    drivers need the backend's own converters (SQLite's dates, booleans), use the ORM.
    """
    if not _plain_sql():
        try:
            found = Connection.objects.select_related("org__llm_settings").get(pk=pk)
        except Connection.DoesNotExist:
            return None
        # The reverse one-to-one raises (an AttributeError) when the org saved no settings.
        return found, getattr(found.org, "llm_settings", None)
    with connection.cursor() as cursor:
        cursor.execute(_connection_with_model_settings_sql(), [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    connection_end = len(_columns(Connection))
    org_end = connection_end + len(_columns(Organization))
    found = _from_row(Connection, row[:connection_end])
    found.org = _from_row(Organization, row[connection_end:org_end])
    llm = _from_row(LLMSettings, row[org_end:]) if row[org_end] is not None else None
    return found, llm


def _plain_sql() -> bool:
    return connection.vendor == "postgresql"


def _columns(model: type[Model]) -> list[Field]:
    return list(model._meta.concrete_fields)


@functools.cache
def _connection_with_model_settings_sql() -> str:
    quote = connection.ops.quote_name
    selected = ", ".join(
        f"{alias}.{quote(field.column)}"
        for model, alias in ((Connection, "c"), (Organization, "o"), (LLMSettings, "s"))
        for field in _columns(model)
    )
    return (
        f"SELECT {selected} FROM {quote(Connection._meta.db_table)} c "
        f"JOIN {quote(Organization._meta.db_table)} o ON o.id = c.org_id "
        f"LEFT JOIN {quote(LLMSettings._meta.db_table)} s ON s.org_id = o.id "
        "WHERE c.id = %s"
    )


def _from_row(model: type[M], values: Sequence[Any]) -> M:
    fields = _columns(model)
    converted = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], converted)
