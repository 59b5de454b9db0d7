"""The check that keeps the period counters honest against the ledger.

`BudgetPeriod.used` and `.reserved` are counters, kept so that a reservation is one conditional
UPDATE instead of a sum over the ledger. The truth is elsewhere: `used` is the sum of the ledger
rows dated inside the period, `reserved` the sum of its open reservations. Every write keeps them
together in one transaction, so they can only drift through what no transaction covers: a call
reserved just before the month's boundary and settled after it (counted on the old period, dated
in the new one), a hold lost with an unflushed commit, a hand edit. This check finds and fixes that.
"""

import datetime
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.services import audit_log_record
from apps.billing.models import BudgetPeriod, Reservation, UsageRecord

logger = structlog.get_logger(__name__)

# Periods that ended longer ago than this are closed for good: nothing settles into them any more.
RECENT = datetime.timedelta(days=2)


@transaction.atomic
def budget_period_reconcile(*, period_id: int, fix: bool = True) -> dict[str, Any] | None:
    """Compare one period's counters with the ledger and its open reservations; correct them if
    `fix`. Returns the difference found, or None when they agree."""
    # With the period row locked, no settlement or reservation of this period can commit, so the
    # sums below and the counters describe the same moment; those waiting apply their change on
    # top of the corrected figures once this commits.
    period = BudgetPeriod.objects.select_for_update().select_related("org").get(pk=period_id)
    ledger = UsageRecord.objects.filter(
        org_id=period.org_id, created_at__gte=period.starts_at, created_at__lt=period.ends_at
    ).aggregate(input=Sum("input_tokens", default=0), output=Sum("output_tokens", default=0))
    used = ledger["input"] + ledger["output"]
    reserved = Reservation.objects.filter(
        period_id=period.pk, settled_at__isnull=True, released_at__isnull=True
    ).aggregate(total=Sum("amount", default=0))["total"]
    if (used, reserved) == (period.used, period.reserved):
        return None
    difference = {
        "period": f"{period.period_start:%Y-%m}",
        "used": {"counter": period.used, "ledger": used},
        "reserved": {"counter": period.reserved, "open reservations": reserved},
    }
    logger.warning("budget_period_drift", org=period.org_id, fixed=fix, **difference)
    if fix:
        BudgetPeriod.objects.filter(pk=period.pk).update(used=used, reserved=reserved)
        audit_log_record(
            action="billing.budget_reconciled", org=period.org, target=period, metadata=difference
        )
    return difference


def budget_periods_reconcile(*, fix: bool = True, everything: bool = False) -> list[dict[str, Any]]:
    """Reconcile the periods still running or just ended (all of them if `everything`), one
    transaction each so a big org never holds its lock for long. Returns the differences found."""
    periods = BudgetPeriod.objects.order_by("pk")
    if not everything:
        periods = periods.filter(ends_at__gt=timezone.now() - RECENT)
    found = []
    for period_id in periods.values_list("pk", flat=True).iterator():
        difference = budget_period_reconcile(period_id=period_id, fix=fix)
        if difference is not None:
            found.append(difference)
    return found
