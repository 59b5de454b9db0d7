"""Token budgets: a monthly allowance per org, held by reservations while a call is in flight.

The protocol for one LLM call: `budget_reserve` before it (refuses when the org's month is spent),
then `budget_settle` with the tokens actually used, or `budget_release` if the call failed.
Reservations are what make concurrent questions safe: the check and the hold are one conditional
UPDATE on the period row, so fifty simultaneous questions cannot all see "room left" and overspend.
"""

import datetime
import zoneinfo
from decimal import Decimal
from typing import Any

import structlog
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.formats import date_format

from apps.accounts.models import Organization, Plan, Role, User
from apps.accounts.services import audit_log_record
from apps.billing.models import (
    PLAN_BUDGETS,
    BudgetPeriod,
    BudgetSettings,
    ModelPrice,
    Reservation,
    UsageRecord,
)
from datamind.lib.exceptions import DataMindError

logger = structlog.get_logger(__name__)

# Long enough for the slowest question (generation, bounded repairs, analysis); short enough that a
# crashed worker's hold is given back within minutes, not at the end of the month.
RESERVATION_TTL = datetime.timedelta(minutes=15)

WARNING_LEVELS = (100, 80)


class BudgetExhausted(DataMindError):
    """The organisation's monthly token budget is spent.

    429 rather than 402: this is a quota that resets at a known time, which is what 429 means to
    HTTP clients and SDKs (stop, try later), and the remedy is usually an admin raising the limit,
    not a payment; 402 has no standard semantics. Not retryable: trying again in a minute won't help.
    """

    code = "budget_exhausted"
    status = 429
    retryable = False


# Periods ------------------------------------------------------------------------------------------


def _org_zone(org: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(org.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _month_bounds(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    start = day.replace(day=1)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start, end


def budget_tokens(*, org: Organization) -> int:
    """The org's monthly allowance today: the admin's override if set, else the plan's."""
    override = BudgetSettings.objects.filter(org=org).values_list("monthly_override", flat=True).first()
    if override is not None:
        return override
    return PLAN_BUDGETS.get(org.plan, PLAN_BUDGETS[Plan.FREE])


def budget_period_current(*, org: Organization, at: datetime.datetime | None = None) -> BudgetPeriod:
    """The period containing `at` (default now) in the org's time zone, opened if it is missing.

    Opening lazily here means the budget is right even if the roll-over task never ran; the unique
    (org, period_start) constraint makes the task and any number of concurrent callers agree.
    """
    zone = _org_zone(org)
    local_day = timezone.localtime(at or timezone.now(), zone).date()
    start, end = _month_bounds(local_day)
    period = BudgetPeriod.objects.filter(org=org, period_start=start).first()
    if period is not None:
        return period
    period, created = BudgetPeriod.objects.get_or_create(
        org=org,
        period_start=start,
        defaults={
            "period_end": end,
            "starts_at": datetime.datetime.combine(start, datetime.time.min, tzinfo=zone),
            "ends_at": datetime.datetime.combine(end, datetime.time.min, tzinfo=zone),
            "budget": budget_tokens(org=org),
        },
    )
    if created:
        logger.info("budget_period_opened", org=org.pk, period_start=str(start), budget=period.budget)
    return period


def budget_remaining(*, org: Organization) -> dict[str, Any]:
    """Where the org stands this month, for pages and refusal messages."""
    period = budget_period_current(org=org)
    remaining = max(period.budget - period.used - period.reserved, 0)
    percent = round(100 * period.used / period.budget, 1) if period.budget else 100.0
    return {
        "budget": period.budget,
        "used": period.used,
        "reserved": period.reserved,
        "remaining": remaining,
        "percent_used": percent,
        "resets_on": period.period_end,
    }


# Reservations -------------------------------------------------------------------------------------


def _org_admins(org: Organization) -> list[User]:
    return list(User.objects.filter(org=org, role=Role.ADMIN, is_active=True).order_by("full_name", "email"))


def _exhausted_message(*, org: Organization, period: BudgetPeriod, amount: int) -> str:
    left = max(period.budget - period.used - period.reserved, 0)
    resets = date_format(period.period_end, "j F Y")
    admins = _org_admins(org)
    if admins:
        names = ", ".join(f"{a.full_name} <{a.email}>" if a.full_name else a.email for a in admins)
        whom = f"To raise the limit, ask an admin of {org.name}: {names}."
    else:
        whom = f"{org.name} has no admin yet; ask your DataMind operator to raise the limit."
    if left == 0:
        state = f"{org.name} has used its {period.budget:,} tokens for this month"
    else:
        state = (
            f"{org.name} has {left:,} of its {period.budget:,} monthly tokens left, "
            f"and this question may need up to {amount:,}"
        )
    return f"{state}. The budget resets on {resets}. {whom}"


@transaction.atomic
def budget_reserve(*, org: Organization, user: User | None, amount: int) -> Reservation:
    """Hold `amount` tokens for one call, or raise BudgetExhausted.

    Zero-token reservations (the built-in engine) always succeed, even when the month is spent.
    """
    if amount < 0:
        raise ValueError("A reservation cannot be negative.")
    if connection.vendor == "postgresql":
        # A hold need not survive a database crash: Postgres then restores a consistent state as
        # if this transaction never ran (the row and the counter go together), and settling a
        # lost hold still counts its tokens. Not waiting for the WAL flush saves one disk sync,
        # which is most of what a reservation costs; the settlement that follows stays durable.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
    period = budget_period_current(org=org)
    now = timezone.now()
    reservation = Reservation.objects.create(
        org=org, period=period, user=user, amount=amount, created_at=now, expires_at=now + RESERVATION_TTL
    )
    if amount:
        # The check and the hold in one statement: Postgres re-evaluates the WHERE against the
        # latest committed row after waiting for its lock, so concurrent reservations queue up
        # and the last ones see there is no room left. It comes last so that the row lock, which
        # every question of the org waits for, is held only until the commit right after it.
        held = BudgetPeriod.objects.filter(
            pk=period.pk, used__lte=F("budget") - F("reserved") - amount
        ).update(reserved=F("reserved") + amount)
        if not held:
            # Raising rolls back the reservation row created above.
            period.refresh_from_db(fields=["budget", "used", "reserved"])
            raise BudgetExhausted(_exhausted_message(org=org, period=period, amount=amount))
    return reservation


def _estimated_cost(*, provider: str, model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = ModelPrice.objects.filter(provider=provider, model=model).first()
    if price is None:
        return Decimal(0)
    cost = (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1_000_000
    return cost.quantize(Decimal("0.000001"))


@transaction.atomic
def budget_settle(
    *,
    reservation: Reservation,
    input_tokens: int,
    output_tokens: int,
    provider: str,
    model: str,
    purpose: str,
    user: User | None,
    session_id: int | None = None,
    message_id: int | None = None,
) -> UsageRecord:
    """Replace the hold with the tokens actually used, write the ledger row, and warn if due.

    Settling twice returns the first usage record. A reservation the expiry sweep already
    released (a very slow call) still has its tokens counted: they were spent.
    """
    now = timezone.now()
    record = UsageRecord.objects.create(
        org_id=reservation.org_id,
        user=user,
        session_id=session_id,
        message_id=message_id,
        provider=provider,
        model=model,
        purpose=purpose,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        estimated_cost=_estimated_cost(
            provider=provider, model=model, input_tokens=input_tokens, output_tokens=output_tokens
        ),
        created_at=now,
    )
    claim = {"settled_at": now, "usage_record": record}
    open_ = Reservation.objects.filter(pk=reservation.pk, settled_at__isnull=True)
    still_held = open_.filter(released_at__isnull=True).update(**claim)
    if not still_held and not open_.update(**claim):
        settled = Reservation.objects.select_related("usage_record").filter(pk=reservation.pk).first()
        if settled is not None and settled.usage_record is not None:
            # Settled before (a retried task): the first record stands, this one never happened.
            record.delete()
            return settled.usage_record
        # Otherwise the hold was lost in a database crash (see budget_reserve): there is nothing
        # to give back, but the tokens were spent and are counted below.
    actual = input_tokens + output_tokens
    held = reservation.amount if still_held else 0
    if actual or held:
        # Last write before the commit: the period row's lock is what every question of the org
        # queues on, so it is held for as short a time as possible.
        BudgetPeriod.objects.filter(pk=reservation.period_id).update(
            reserved=F("reserved") - held, used=F("used") + actual
        )
    reservation.settled_at, reservation.usage_record = now, record
    if actual:
        _warnings_check(period_id=reservation.period_id)
    return record


@transaction.atomic
def budget_release(*, reservation: Reservation) -> bool:
    """Give back a hold whose call failed or was cancelled. Returns False if it was already closed.

    Idempotent: the conditional update lets exactly one caller (the pipeline, the expiry sweep,
    a retried task) give the tokens back.
    """
    now = timezone.now()
    released = Reservation.objects.filter(
        pk=reservation.pk, settled_at__isnull=True, released_at__isnull=True
    ).update(released_at=now)
    if released and reservation.amount:
        BudgetPeriod.objects.filter(pk=reservation.period_id).update(
            reserved=F("reserved") - reservation.amount
        )
    if released:
        reservation.released_at = now
    return bool(released)


def reservations_expire(*, at: datetime.datetime | None = None) -> int:
    """Release every reservation past its expiry (its worker crashed). Returns how many."""
    expired = Reservation.objects.filter(
        settled_at__isnull=True, released_at__isnull=True, expires_at__lt=at or timezone.now()
    ).only("pk", "period_id", "amount")
    count = 0
    for reservation in expired.iterator():
        count += budget_release(reservation=reservation)
    if count:
        logger.warning("reservations_expired", count=count)
    return count


# Warnings -----------------------------------------------------------------------------------------


def _warnings_check(*, period_id: int) -> None:
    """Claim and send the 80% / 100% warnings that are due, once per period each.

    The claim is a conditional UPDATE on `warned_<level>_at IS NULL`, so concurrent settlements
    that cross the line together send one email, not one each.
    """
    period = BudgetPeriod.objects.only("org_id", "budget", "used", "warned_80_at", "warned_100_at").get(
        pk=period_id
    )
    due = [
        level
        for level in WARNING_LEVELS
        if period.budget
        and period.used * 100 >= period.budget * level
        and getattr(period, f"warned_{level}_at") is None
    ]
    if not due:
        return
    prefs = BudgetSettings.objects.filter(org_id=period.org_id).first()
    enabled = {80: prefs.warn_at_80 if prefs else True, 100: prefs.warn_at_100 if prefs else True}
    now = timezone.now()
    claimed = [
        level
        for level in due
        if enabled[level]
        and BudgetPeriod.objects.filter(pk=period.pk, **{f"warned_{level}_at__isnull": True}).update(
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
    recipients = [admin.email for admin in _org_admins(org)]
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


# Settings -----------------------------------------------------------------------------------------


@transaction.atomic
def budget_update(
    *,
    org: Organization,
    actor: User,
    override: int | None,
    warn_at_80: bool,
    warn_at_100: bool,
    plan: str | None = None,
) -> BudgetSettings:
    """An admin changes the org's budget. An explicit override applies to the current month at once;
    a plan change alone applies from the next month (the current month's budget stays frozen)."""
    if not (actor.is_superuser or (actor.org_id == org.pk and actor.is_org_admin)):
        raise PermissionDenied("Only an admin of this organisation can change its budget.")
    if override is not None and override < 0:
        raise ValidationError({"override": "The monthly budget cannot be negative."})
    if plan is not None and plan not in Plan.values:
        raise ValidationError({"plan": f"Choose one of: {', '.join(Plan.values)}."})
    prefs, _ = BudgetSettings.objects.select_for_update().get_or_create(org=org)
    old = {
        "override": prefs.monthly_override,
        "warn_at_80": prefs.warn_at_80,
        "warn_at_100": prefs.warn_at_100,
        "plan": org.plan,
    }
    prefs.monthly_override = override
    prefs.warn_at_80 = warn_at_80
    prefs.warn_at_100 = warn_at_100
    prefs.updated_by = actor
    prefs.updated_at = timezone.now()
    prefs.save()
    if plan is not None and plan != org.plan:
        org.plan = plan
        org.save(update_fields=["plan"])
    new = {"override": override, "warn_at_80": warn_at_80, "warn_at_100": warn_at_100, "plan": org.plan}
    if override != old["override"]:
        # The admin raised or lowered the limit to act on this month, so the open period follows;
        # removing the override falls back to the plan's allowance.
        period = budget_period_current(org=org)
        BudgetPeriod.objects.filter(pk=period.pk).update(budget=budget_tokens(org=org))
    audit_log_record(
        action="billing.budget_update", org=org, actor=actor, target=prefs, metadata={"old": old, "new": new}
    )
    return prefs


def budget_periods_open(*, at: datetime.datetime | None = None) -> int:
    """Open the current period of every org (idempotent). Returns how many orgs were checked."""
    count = 0
    for org in Organization.objects.only("pk", "plan", "timezone").iterator():
        budget_period_current(org=org, at=at)
        count += 1
    return count


# Ledger -------------------------------------------------------------------------------------------


@transaction.atomic
def usage_record(
    *,
    org: Organization,
    user: User | None,
    provider: str,
    model: str,
    purpose: str,
    input_tokens: int,
    output_tokens: int,
    session_id: int | None = None,
    message_id: int | None = None,
) -> UsageRecord:
    """Write one LLM call to the ledger (the built-in engine's calls too, with 0 tokens)."""
    return UsageRecord.objects.create(
        org=org,
        user=user,
        session_id=session_id,
        message_id=message_id,
        provider=provider,
        model=model,
        purpose=purpose,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
