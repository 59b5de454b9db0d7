"""Budget periods: one calendar month of an org's allowance, in the org's time zone."""

import datetime
import zoneinfo
from typing import Any

import structlog
from django.utils import timezone

from apps.accounts.models import Organization, Plan
from apps.billing.models import PLAN_BUDGETS, BudgetPeriod, BudgetSettings

logger = structlog.get_logger(__name__)


def org_zone(org: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(org.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def month_bounds(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    start = day.replace(day=1)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start, end


def period_start(*, org: Organization, at: datetime.datetime | None = None) -> datetime.date:
    """The first day of the org's month containing `at` (default now), in the org's time zone."""
    return month_bounds(timezone.localtime(at or timezone.now(), org_zone(org)).date())[0]


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
    zone = org_zone(org)
    start, end = month_bounds(timezone.localtime(at or timezone.now(), zone).date())
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


def budget_period_of_month(*, org: Organization, start: datetime.date | None) -> BudgetPeriod:
    """The org's period that began on `start` (a first of month), or the current one for None.

    Raises BudgetPeriod.DoesNotExist for a month the org has no period for (before it existed, in
    the future, or another org's); the current month is opened if it is missing.
    """
    if start is None or start == period_start(org=org):
        return budget_period_current(org=org)
    return BudgetPeriod.objects.get(org=org, period_start=start)


def budget_remaining(*, org: Organization) -> dict[str, Any]:
    """Where the org stands this month, for pages and refusal messages."""
    return budget_standing(period=budget_period_current(org=org))


def budget_standing(*, period: BudgetPeriod) -> dict[str, Any]:
    """Budget, used, reserved, remaining and reset day of one period (past periods too)."""
    remaining = max(period.budget - period.used - period.reserved, 0)
    percent = round(100 * period.used / period.budget, 1) if period.budget else 100.0
    return {
        "budget": period.budget,
        "used": period.used,
        "reserved": period.reserved,
        "remaining": remaining,
        "percent_used": percent,
        "resets_on": period.period_end,
        # Less than a fifth left, counting the tokens held for questions being answered now: when
        # the chat starts telling people how much is left.
        "low": remaining * 5 < period.budget,
    }


def budget_periods_open(*, at: datetime.datetime | None = None) -> int:
    """Open the current period of every org (idempotent). Returns how many orgs were checked."""
    count = 0
    for org in Organization.objects.only("pk", "plan", "timezone").iterator():
        budget_period_current(org=org, at=at)
        count += 1
    return count
