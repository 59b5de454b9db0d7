from django.db.models import Q, QuerySet

from apps.accounts.models import Organization, User
from apps.chat.models import ChatMessage, ChatSession


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
