import datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts.models import AuditLog
from apps.billing.models import BudgetPeriod
from apps.billing.services import (
    budget_period_current,
    budget_period_reconcile,
    budget_periods_reconcile,
    budget_reserve,
    budget_settle,
)
from apps.billing.tasks import budget_periods_reconcile_task
from apps.billing.tests.factories import BudgetSettingsFactory


def settle(reservation, tokens: int):
    return budget_settle(
        reservation=reservation,
        input_tokens=tokens,
        output_tokens=0,
        provider="anthropic",
        model="claude-test",
        purpose="generation",
        user=None,
    )


@pytest.fixture
def period(personas):
    BudgetSettingsFactory(org=personas.org, monthly_override=100_000)
    settle(budget_reserve(org=personas.org, user=None, amount=5_000), 3_000)
    budget_reserve(org=personas.org, user=None, amount=2_000)  # still in flight
    return budget_period_current(org=personas.org)


def test_counters_kept_by_the_protocol_agree_with_the_ledger(period):
    assert (period.used, period.reserved) == (3_000, 2_000)
    assert budget_period_reconcile(period_id=period.pk) is None
    assert budget_periods_reconcile() == []
    assert not AuditLog.objects.filter(action="billing.budget_reconciled").exists()


def test_a_drifted_counter_is_set_back_to_the_ledger_and_audited(period):
    BudgetPeriod.objects.filter(pk=period.pk).update(used=9_999, reserved=0)
    difference = budget_period_reconcile(period_id=period.pk)
    assert difference["used"] == {"counter": 9_999, "ledger": 3_000}
    assert difference["reserved"] == {"counter": 0, "open reservations": 2_000}
    period.refresh_from_db()
    assert (period.used, period.reserved) == (3_000, 2_000)
    entry = AuditLog.objects.get(action="billing.budget_reconciled")
    assert entry.org == period.org and entry.metadata == difference
    assert budget_period_reconcile(period_id=period.pk) is None


def test_a_call_settled_after_the_month_ended_counts_in_the_month_of_its_ledger_row(personas):
    now = timezone.now()
    last = budget_period_current(org=personas.org, at=now - datetime.timedelta(days=40))
    current = budget_period_current(org=personas.org)
    reservation = budget_reserve(org=personas.org, user=None, amount=1_000)
    # Reserved just before the boundary: the hold belongs to the old period.
    reservation.period_id = last.pk
    reservation.save(update_fields=["period"])
    BudgetPeriod.objects.filter(pk=current.pk).update(reserved=0)
    BudgetPeriod.objects.filter(pk=last.pk).update(reserved=1_000)
    settle(reservation, 700)
    assert BudgetPeriod.objects.get(pk=last.pk).used == 700
    found = budget_periods_reconcile(everything=True)
    assert len(found) == 2
    assert BudgetPeriod.objects.get(pk=last.pk).used == 0
    assert BudgetPeriod.objects.get(pk=current.pk).used == 700


def test_checking_reports_without_changing_anything(period):
    BudgetPeriod.objects.filter(pk=period.pk).update(used=1)
    assert len(budget_periods_reconcile(fix=False)) == 1
    assert BudgetPeriod.objects.get(pk=period.pk).used == 1
    with pytest.raises(CommandError, match="1 period"):
        call_command("billing_reconcile", "--check")
    call_command("billing_reconcile")
    assert BudgetPeriod.objects.get(pk=period.pk).used == 3_000
    call_command("billing_reconcile", "--check")


def test_only_recent_periods_are_checked_unless_asked_for_all(period, personas):
    old = budget_period_current(org=personas.org, at=timezone.now() - datetime.timedelta(days=70))
    BudgetPeriod.objects.filter(pk=old.pk).update(used=5)
    assert budget_periods_reconcile() == []
    assert [d["period"] for d in budget_periods_reconcile(everything=True)] == [f"{old.period_start:%Y-%m}"]


def test_the_reconcile_task_is_idempotent(period):
    BudgetPeriod.objects.filter(pk=period.pk).update(used=0)
    budget_periods_reconcile_task()
    budget_periods_reconcile_task()
    assert BudgetPeriod.objects.get(pk=period.pk).used == 3_000
    assert AuditLog.objects.filter(action="billing.budget_reconciled").count() == 1
