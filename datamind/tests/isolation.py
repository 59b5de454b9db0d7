"""What the isolation matrix needs to know about routes: which object a path parameter names, how
to make such an object in a given organisation, and which write routes viewers may use.

A new route is picked up by the matrix on its own. A new *kind* of object id is not: the matrix
fails, naming the route and the kind, until a factory is added to `OBJECT_FACTORIES` below. That
is one line per kind, e.g.:

    "alert": lambda org, user: AlertFactory(owner=user, connection=ConnectionFactory(org=org)).pk,

How a parameter's kind is read (`parameter_kind`): a name ending in `_pk`/`_id` names its kind
(`connection_pk` -> "connection"); otherwise the path segment before it, singular
(`settings/members/<pk>/role/` -> "member", `/api/v1/chat/sessions/{id}/` -> "session").
"""

from collections.abc import Callable

from apps.accounts import services as account_services
from apps.accounts.models import Organization, Role, User
from apps.accounts.tests.factories import InvitationFactory, UserFactory
from apps.alerts.models import Notification
from apps.alerts.tests.factories import AlertEventFactory, AlertFactory
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.connections.models import ExportFormat, ExportJob
from apps.connections.tests.factories import ConnectionFactory
from apps.dashboards.models import Subscription
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory

# Make one object of this kind in `org`, owned by or made by `user` (a member of `org`, the
# role the matrix is trying); return the value the URL takes (its pk).
ObjectFactory = Callable[[Organization, User], int | str]


def _chat_session(org: Organization, user: User) -> int:
    return ChatSession.objects.create(org=org, user=user, connection=ConnectionFactory(org=org)).pk


def _chat_answer(org: Organization, user: User) -> int:
    session = ChatSession.objects.get(pk=_chat_session(org, user))
    answer = ChatMessage.objects.create(
        session=session, role=MessageRole.ASSISTANT, status=MessageStatus.DONE, content="42"
    )
    return answer.pk


def _export(org: Organization, user: User) -> int:
    connection = ConnectionFactory(org=org)
    return ExportJob.objects.create(
        org=org, connection=connection, user=user, sql="SELECT 1", format=ExportFormat.CSV
    ).pk


def _api_key(org: Organization, user: User) -> int:
    admin = user if user.is_org_admin else UserFactory(org=org, role=Role.ADMIN)
    api_key, _key = account_services.api_key_create(org=org, actor=admin, name="Matrix", role=Role.VIEWER)
    return api_key.pk


OBJECT_FACTORIES: dict[str, ObjectFactory] = {
    "member": lambda org, user: UserFactory(org=org, role=Role.VIEWER).pk,
    "invitation": lambda org, user: InvitationFactory(org=org, invited_by=user).pk,
    "api-key": _api_key,
    "connection": lambda org, user: ConnectionFactory(org=org).pk,
    "export": _export,
    "chat": _chat_session,  # chat/<pk>/...: a chat session
    "session": _chat_session,
    "answer": _chat_answer,  # chat/answers/<pk>/...: an answer message
    "message": _chat_answer,  # dashboards/pin/answers/<message_pk>/
    "dashboard": lambda org, user: DashboardFactory(org=org, owner=user).pk,
    "widget": lambda org, user: WidgetFactory(dashboard__org=org, dashboard__owner=user).pk,
    "subscription": lambda org, user: (
        Subscription.objects.create(
            org=org, dashboard=DashboardFactory(org=org, owner=user), created_by=user
        ).pk
    ),
    "alert": lambda org, user: AlertFactory(owner=user, connection=ConnectionFactory(org=org)).pk,
    "event": lambda org, user: (
        AlertEventFactory(alert__owner=user, alert__connection=ConnectionFactory(org=org)).pk
    ),  # alerts/events/<pk>/why/
    "notification": lambda org, user: Notification.objects.create(org=org, user=user, title="Hi").pk,
}

# Path parameters that are not ids of org-owned objects, and why.
NOT_OBJECT_IDS: dict[str, str] = {
    "token": "a signed, expiring token (invitations, password reset), not an object id",
    "uidb64": "part of a password-reset link, checked with its token",
    "version": "the vega bundle's version, a public static asset",
    "fmt": "a file format (png, svg, csv, xlsx), not an object",
}

# Routes (URL names) whose writes a viewer may make, and why. Every other write route must refuse
# viewers: a new one that forgets its role check fails the matrix.
VIEWER_MAY_WRITE: dict[str, str] = {
    "home": "a redirect to the chat page (RedirectView accepts every method), writes nothing",
    "accounts:signup": "anonymous sign-up",
    "accounts:login": "anonymous log-in",
    "accounts:logout": "everyone may log out",
    "accounts:profile": "one's own profile",
    "accounts:password-change": "one's own password",
    "accounts:password-reset": "anonymous reset request",
    "accounts:password-reset-confirm": "reset link",
    "accounts:invitation-accept": "accepting one's invitation",
    "accounts:org-settings": "the page answers viewers with a read-only summary; the form is admin-only",
    "accounts-api:token-obtain": "log-in",
    "accounts-api:token-refresh": "token refresh",
    "accounts-api:logout": "log-out",
    "chat:session-rename": "one's own chats (looked up by owner)",
    "chat:session-delete": "one's own chats (looked up by owner)",
    "chat:message-feedback": "rating an answer in one's own chat",
    "dashboards:dashboard-refresh": "re-running a visible dashboard's queries is a read (issue 5)",
    "dashboards-api:dashboard-refresh": "the same refresh over the API",
    "dashboards:unsubscribe": "a recipient's signed unsubscribe link, no account needed",
    "alerts:notifications-read-all": "marking one's own notifications read",
    "alerts:notification-read": "marking one's own notification read (another's is a 404)",
}


def parameter_kind(parameter: str, previous_segment: str) -> str | None:
    """The kind of object a path parameter names, or None if it names none (NOT_OBJECT_IDS)."""
    if parameter in NOT_OBJECT_IDS:
        return None
    for suffix in ("_pk", "_id"):
        if parameter.endswith(suffix):
            return parameter.removesuffix(suffix).replace("_", "-")
    return previous_segment.removesuffix("s") if previous_segment.endswith("s") else previous_segment


def make_object(kind: str, org: Organization, user: User, route: str) -> int | str:
    try:
        factory = OBJECT_FACTORIES[kind]
    except KeyError:
        raise LookupError(
            f"The route {route} takes the id of a {kind!r}, and the isolation matrix has no factory "
            f"for that kind: add OBJECT_FACTORIES[{kind!r}] in datamind/tests/isolation.py (one line "
            "making such an object in a given org), or NOT_OBJECT_IDS if it is not an object id."
        ) from None
    return factory(org, user)
