from django.db.models import Count, Prefetch, Q, QuerySet

from apps.accounts.models import Organization, Role, User
from apps.chat.models import ChatMessage, MessageRole
from apps.dashboards.models import Dashboard, Subscription, SubscriptionDelivery, Visibility, Widget
from datamind.lib.prepared import Prepared

# `org` may be an organisation or its id: the views pass the session user's `org_id`, so a
# request that needs nothing else of the org does not load it.
OrgOrId = Organization | int
# A widget's stored last result (up to 500 rows of JSON) is written by runs and read by the admin
# only; decoding it on every widget request cost more than the rest of the row.
RARELY_READ = ("last_result",)


def _visible(org: OrgOrId, user: User | int) -> Q:
    return Q(org=org) & (Q(owner=user) | Q(visibility=Visibility.ORG))


def _pk(org: OrgOrId) -> int:
    return org if isinstance(org, int) else org.pk


# Every dashboard page and widget request starts with one of these: compiled once (see Prepared).
_DASHBOARD_GET = Prepared(
    lambda org, user, pk: Dashboard.objects.select_related("org", "owner").filter(_visible(org, user), pk=pk),
    "org",
    "user",
    "pk",
)
_TILE_FIELDS = ("pk", "title", "width", "height")
_TILES = Prepared(
    lambda dashboard: (
        Widget.objects.filter(dashboard=dashboard).order_by("position", "id").values_list(*_TILE_FIELDS)
    ),
    "dashboard",
)
_WIDGET_GET = Prepared(
    lambda org, user, pk: (
        Widget.objects.select_related("dashboard", "connection")
        .defer(*RARELY_READ)
        .filter(
            Q(dashboard__org=org) & (Q(dashboard__owner=user) | Q(dashboard__visibility=Visibility.ORG)),
            pk=pk,
        )
    ),
    "org",
    "user",
    "pk",
)


def dashboard_list(*, org: Organization, user: User) -> QuerySet[Dashboard]:
    """The dashboards `user` may open: their own and those shared with the organisation."""
    return (
        Dashboard.objects.filter(_visible(org, user))
        .select_related("owner")
        .annotate(widget_count=Count("widgets"))
        .order_by("title", "id")
    )


def dashboard_get(*, org: OrgOrId, user: User, pk: int) -> Dashboard:
    """A dashboard `user` may open; another org's, or a colleague's private one, is not found."""
    return _DASHBOARD_GET.get(org=_pk(org), user=user.pk, pk=pk)


def dashboard_widgets(*, dashboard: Dashboard) -> QuerySet[Widget]:
    return dashboard.widgets.select_related("connection").defer(*RARELY_READ).order_by("position", "id")


def dashboard_tiles(*, dashboard: Dashboard) -> list[dict]:
    """The dashboard's widgets as the grid's skeleton tiles draw them, before each loads itself:
    what a tile shows and nothing else, so the list also names the grid's rendered HTML in the
    cache (dashboards/dashboard_detail.html)."""
    return [dict(zip(_TILE_FIELDS, row, strict=True)) for row in _TILES.rows(dashboard=dashboard.pk)]


def widget_get(*, org: OrgOrId, user: User, pk: int) -> Widget:
    """A widget of a dashboard `user` may open, with what running it needs (its org is loaded
    only by the rarer paths that need it: exports, audit entries)."""
    return _WIDGET_GET.get(org=_pk(org), user=user.pk, pk=pk)


def widget_last_columns(*, widget: Widget) -> list[str]:
    """The columns of the widget's last stored result: what its editor suggests."""
    stored = Widget.objects.filter(pk=widget.pk).values_list("last_result", flat=True).first() or {}
    return [column["name"] for column in stored.get("columns", [])]


def can_edit(*, user: User, dashboard: Dashboard) -> bool:
    """Analysts edit their own dashboards; admins edit every dashboard they can see."""
    if not user.has_role(Role.ANALYST):
        return False
    return dashboard.owner_id == user.pk or user.has_role(Role.ADMIN)


def can_delete_subscription(*, user: User, subscription: Subscription) -> bool:
    """Whoever made a subscription deletes it, and admins every one."""
    return subscription.created_by_id == user.pk or user.has_role(Role.ADMIN)


def editable_dashboards(*, org: Organization, user: User) -> QuerySet[Dashboard]:
    """Where `user` may pin a widget."""
    dashboards = dashboard_list(org=org, user=user)
    return dashboards if user.has_role(Role.ADMIN) else dashboards.filter(owner=user)


def _with_latest_delivery(subscriptions: QuerySet[Subscription]) -> QuerySet[Subscription]:
    """Each subscription with its latest delivery (or none) in `latest_deliveries`."""
    latest = SubscriptionDelivery.objects.order_by("-scheduled_for")[:1]
    return subscriptions.select_related("dashboard__org", "created_by").prefetch_related(
        Prefetch("deliveries", queryset=latest, to_attr="latest_deliveries")
    )


def subscription_list(*, dashboard: Dashboard) -> QuerySet[Subscription]:
    """The dashboard's subscriptions, each with its latest delivery in `latest_deliveries`."""
    return _with_latest_delivery(dashboard.subscriptions.order_by("id"))


def subscription_get(*, dashboard: Dashboard, pk: int) -> Subscription:
    return _with_latest_delivery(Subscription.objects.select_related("org")).get(dashboard=dashboard, pk=pk)


def question_of(*, message: ChatMessage) -> str:
    """The question an answer replied to: a good first title for its widget."""
    question = (
        message.session.messages.filter(role=MessageRole.USER, created_at__lte=message.created_at)
        .order_by("created_at", "id")
        .last()
    )
    return question.content if question else ""
