from datetime import date

from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import AuditLog, Invitation, Organization, User


def member_list(*, org: Organization) -> QuerySet[User]:
    return User.objects.filter(org=org).order_by("-is_active", "email")


def member_get(*, org: Organization, pk: int) -> User:
    """One member of the org; a user of another org is simply not found (404 in views)."""
    return User.objects.select_related("org").get(org=org, pk=pk)


def invitation_pending_list(*, org: Organization) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(
            org=org, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitation_get(*, org: Organization, pk: int) -> Invitation:
    return Invitation.objects.select_related("org").get(org=org, pk=pk)


def audit_log_list(
    *,
    org: Organization,
    action: str = "",
    actor_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    query: str = "",
) -> QuerySet[AuditLog]:
    entries = AuditLog.objects.filter(org=org).select_related("actor")
    if action:
        entries = entries.filter(action=action)
    if actor_id:
        entries = entries.filter(actor_id=actor_id)
    if since:
        entries = entries.filter(created_at__date__gte=since)
    if until:
        entries = entries.filter(created_at__date__lte=until)
    if query:
        entries = entries.filter(metadata__icontains=query) | entries.filter(target_id=query)
    return entries.order_by("-created_at", "-id")


def audit_action_choices(*, org: Organization) -> list[str]:
    return list(AuditLog.objects.filter(org=org).order_by("action").values_list("action", flat=True).distinct())
