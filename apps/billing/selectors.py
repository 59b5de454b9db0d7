"""Read queries for the usage pages. Every one takes the org and is scoped to it."""

import zoneinfo
from typing import Any

from django.db.models import (
    Count,
    DecimalField,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate

from apps.accounts.models import Organization
from apps.billing.models import BudgetPeriod, BudgetSettings, UsageRecord
from apps.chat.models import ChatMessage, MessageRole


def _tokens() -> dict[str, Any]:
    zero_int = Value(0, output_field=IntegerField())
    return {
        "calls": Count("id"),
        "input_tokens": Coalesce(Sum("input_tokens"), zero_int),
        "output_tokens": Coalesce(Sum("output_tokens"), zero_int),
        "cost": Coalesce(
            Sum("estimated_cost"), Value(0, output_field=DecimalField(max_digits=12, decimal_places=6))
        ),
    }


def budget_periods(*, org: Organization) -> QuerySet[BudgetPeriod]:
    """The org's periods, newest first."""
    return BudgetPeriod.objects.filter(org=org).order_by("-period_start")


def budget_periods_with_usage(*, org: Organization, current: BudgetPeriod) -> list[BudgetPeriod]:
    """What the period picker offers: `current` and every period with ledger rows, newest first.

    One indexed probe of the ledger (org, created_at) per period, not a scan of the whole ledger.
    """
    used = UsageRecord.objects.filter(
        org=org, created_at__gte=OuterRef("starts_at"), created_at__lt=OuterRef("ends_at")
    )
    return list(budget_periods(org=org).filter(Q(pk=current.pk) | Q(Exists(used))))


def usage_in_period(*, org: Organization, period: BudgetPeriod) -> QuerySet[UsageRecord]:
    """The ledger rows of one period. `period` must be the org's (another org's yields nothing)."""
    if period.org_id != org.pk:
        return UsageRecord.objects.none()
    return UsageRecord.objects.filter(
        org=org, created_at__gte=period.starts_at, created_at__lt=period.ends_at
    )


def usage_summary(*, org: Organization, period: BudgetPeriod) -> dict[str, Any]:
    """Totals for the period: calls, input/output/total tokens, estimated cost."""
    totals = usage_in_period(org=org, period=period).aggregate(**_tokens())
    totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
    return totals


def usage_daily(*, org: Organization, period: BudgetPeriod) -> list[dict[str, Any]]:
    """Tokens per day, the days being the org's local days (a month's chart starts on its 1st)."""
    zone = zoneinfo.ZoneInfo(org.timezone or "UTC")
    rows = (
        usage_in_period(org=org, period=period)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(**_tokens())
        .order_by("day")
    )
    return [row | {"total_tokens": row["input_tokens"] + row["output_tokens"]} for row in rows]


def _grouped(*, org: Organization, period: BudgetPeriod, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = usage_in_period(org=org, period=period).values(*fields).annotate(**_tokens()).order_by(*fields)
    result = [row | {"total_tokens": row["input_tokens"] + row["output_tokens"]} for row in rows]
    return sorted(result, key=lambda row: -row["total_tokens"])


def usage_by_user(*, org: Organization, period: BudgetPeriod) -> list[dict[str, Any]]:
    """Per person (`user_id` None for calls without one, e.g. alert explanations), largest first."""
    return _grouped(org=org, period=period, fields=("user_id", "user__email", "user__full_name"))


def usage_by_model(*, org: Organization, period: BudgetPeriod) -> list[dict[str, Any]]:
    """Per provider and model, largest first."""
    return _grouped(org=org, period=period, fields=("provider", "model"))


def usage_by_purpose(*, org: Organization, period: BudgetPeriod) -> list[dict[str, Any]]:
    """Per purpose (generation, repair, analysis...), largest first."""
    return _grouped(org=org, period=period, fields=("purpose",))


def usage_top_questions(*, org: Organization, period: BudgetPeriod, limit: int = 50) -> QuerySet[ChatMessage]:
    """The answers that cost the most tokens this period, with their session and asker for links.

    Each row is the assistant's ChatMessage annotated with `tokens`, `cost`, `calls`, and
    `question` (the text of the user message that preceded it in the session).
    """
    if period.org_id != org.pk:
        return ChatMessage.objects.none()
    question = (
        ChatMessage.objects.filter(
            session=OuterRef("session"), role=MessageRole.USER, created_at__lte=OuterRef("created_at")
        )
        .order_by("-created_at", "-id")
        .values("content")[:1]
    )
    return (
        ChatMessage.objects.filter(
            session__org=org,
            usage_records__org=org,
            usage_records__created_at__gte=period.starts_at,
            usage_records__created_at__lt=period.ends_at,
        )
        .annotate(
            tokens=Sum("usage_records__input_tokens") + Sum("usage_records__output_tokens"),
            cost=Sum("usage_records__estimated_cost"),
            calls=Count("usage_records"),
            question=Subquery(question),
        )
        .select_related("session", "session__user", "session__connection")
        .order_by("-tokens", "-id")[:limit]
    )


def usage_ledger(*, org: Organization, period: BudgetPeriod) -> QuerySet[UsageRecord]:
    """The period's ledger, oldest first, with the person for each row (the CSV export)."""
    return usage_in_period(org=org, period=period).select_related("user").order_by("created_at", "id")


def budget_settings_get(*, org: Organization) -> BudgetSettings:
    """The org's budget choices; an unsaved default when an admin never changed them."""
    return BudgetSettings.objects.filter(org=org).first() or BudgetSettings(org=org)
