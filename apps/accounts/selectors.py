import zoneinfo
from datetime import date, datetime, time, timedelta

from django.contrib.auth.tokens import default_token_generator
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.http import urlsafe_base64_decode

from apps.accounts.models import ApiKey, AuditLog, Invitation, Organization, User


def member_list(*, org: Organization) -> QuerySet[User]:
    return User.objects.filter(org=org).order_by("-is_active", "email")


def member_get(*, org: Organization, pk: int) -> User:
    """One member of the org; a user of another org is simply not found (404 in views)."""
    return User.objects.select_related("org").get(org=org, pk=pk)


def password_reset_user(*, uidb64: str, token: str) -> User | None:
    """The active user a password-reset link names, if its token is still good.

    A token stops working once the password changes (it signs the password hash), so a link can
    be used only once.
    """
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    user = User.objects.select_related("org").filter(pk=pk, is_active=True).first()
    if user is None or not default_token_generator.check_token(user, token):
        return None
    return user


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
    """The org's entries, newest first. `since` and `until` are days in the org's time zone, inclusive."""
    entries = AuditLog.objects.filter(org=org).select_related("actor")
    if action:
        entries = entries.filter(action=action)
    if actor_id:
        entries = entries.filter(actor_id=actor_id)
    # Day bounds as instants in the org's time zone: the admin means their own days, and a range on
    # created_at can use the (org, -created_at) index where a date cast could not.
    org_tz = zoneinfo.ZoneInfo(org.timezone)
    if since:
        entries = entries.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=org_tz))
    if until:
        entries = entries.filter(
            created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=org_tz)
        )
    if query:
        entries = entries.filter(
            Q(metadata__icontains=query) | Q(actor__email__icontains=query) | Q(target_id=query)
        )
    return entries.order_by("-created_at", "-id")


def audit_action_choices(*, org: Organization) -> list[str]:
    return list(
        AuditLog.objects.filter(org=org).order_by("action").values_list("action", flat=True).distinct()
    )


def api_key_list(*, org: Organization) -> QuerySet[ApiKey]:
    """The org's keys, active first, newest first within each group."""
    return (
        ApiKey.objects.filter(org=org)
        .select_related("created_by")
        .order_by(models.F("revoked_at").asc(nulls_first=True), "-created_at", "-id")
    )


def api_key_get(*, org: Organization, pk: int) -> ApiKey:
    return ApiKey.objects.select_related("org").get(org=org, pk=pk)
