import json
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from apps.accounts.models import Organization, User
from apps.chat.models import ChatMessage, ChatSession, LLMSettings
from apps.connections.models import Connection
from datamind.lib.prepared import Prepared


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


# A question's connection is read afresh on its way to the model: compiled once (see Prepared).
_CONNECTION_WITH_MODEL_SETTINGS = Prepared(
    lambda pk: Connection.objects.select_related("org__llm_settings").filter(pk=pk), "pk"
)


def connection_with_model_settings(*, pk: int) -> tuple[Connection, LLMSettings | None] | None:
    """A chat's connection, read afresh for a question (a chat stays open for hours, and its
    catalogue may be refreshed meanwhile), with its org (connection.org) and the org's model
    settings (None when it saved none); None when the connection is gone."""
    try:
        found = _CONNECTION_WITH_MODEL_SETTINGS.get(pk=pk)
    except Connection.DoesNotExist:
        return None
    # The reverse one-to-one raises (an AttributeError) when the org saved no settings.
    return found, getattr(found.org, "llm_settings", None)
