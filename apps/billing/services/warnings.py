"""The 80% and 100% budget warnings: claimed once per period each, emailed to the org's admins."""

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import audit_log_record
from apps.billing.models import BudgetPeriod, BudgetSettings

WARNING_LEVELS = (100, 80)


def org_admins(org: Organization) -> list[User]:
    return list(User.objects.filter(org=org, role=Role.ADMIN, is_active=True).order_by("full_name", "email"))


def warnings_due(*, budget: int, used: int, warned_80: bool, warned_100: bool) -> list[int]:
    """The levels `used` has reached that were not claimed yet: plain arithmetic on the settled
    period row, so a settlement far from both lines costs no query at all."""
    warned = {80: warned_80, 100: warned_100}
    return [
        level for level in WARNING_LEVELS if budget and used * 100 >= budget * level and not warned[level]
    ]


def warnings_send(*, period_id: int, due: list[int]) -> None:
    """Claim and send the `due` warnings (see `warnings_due`), once per period each.

    The claim is a conditional UPDATE on `warned_<level>_at IS NULL`, so concurrent settlements
    that cross the line together send one email, not one each.
    """
    period = BudgetPeriod.objects.only("org_id").get(pk=period_id)
    prefs = BudgetSettings.objects.filter(org_id=period.org_id).first()
    enabled = {80: prefs.warn_at_80 if prefs else True, 100: prefs.warn_at_100 if prefs else True}
    now = timezone.now()
    claimed = [
        level
        for level in due
        if enabled[level]
        and BudgetPeriod.objects.filter(pk=period_id, **{f"warned_{level}_at__isnull": True}).update(
            **{f"warned_{level}_at": now}
        )
    ]
    if not claimed:
        return
    # Crossing 80% and 100% in one call sends only the more urgent email; both are recorded.
    level = max(claimed)
    period.refresh_from_db()
    org = Organization.objects.get(pk=period.org_id)
    audit_log_record(
        action="billing.budget_warning",
        org=org,
        target=period,
        metadata={"level": level, "claimed": claimed, "used": period.used, "budget": period.budget},
    )
    recipients = [admin.email for admin in org_admins(org)]
    if not recipients:
        return
    context = {
        "org": org,
        "level": level,
        "period": period,
        "remaining": max(period.budget - period.used, 0),
        "resets_on": period.period_end,
    }
    subject = (
        f"{org.name} has used its DataMind token budget for this month"
        if level >= 100
        else f"{org.name} has used {level}% of its DataMind token budget"
    )
    text = render_to_string("billing/email/budget_warning.txt", context)
    html = render_to_string("billing/email/budget_warning.html", context)
    # After commit: an email must not announce a settlement that was rolled back.
    transaction.on_commit(
        lambda: send_mail(
            subject=subject, message=text, html_message=html, from_email=None, recipient_list=recipients
        )
    )
