import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied

from apps.accounts.models import AuditLog, Plan
from apps.billing.models import BudgetPeriod, Reservation, UsageRecord
from apps.billing.services import (
    RESERVATION_TTL,
    BudgetExhausted,
    budget_period_current,
    budget_release,
    budget_remaining,
    budget_reserve,
    budget_settle,
    budget_tokens,
    budget_update,
    reservations,
    reservations_expire,
)
from apps.billing.tests.factories import BudgetSettingsFactory, ModelPriceFactory

UTC = datetime.UTC


def settle(reservation: Reservation, tokens: int, **fields) -> UsageRecord:
    defaults = {
        "input_tokens": tokens - tokens // 4,
        "output_tokens": tokens // 4,
        "provider": "anthropic",
        "model": "claude-test",
        "purpose": "generation",
        "user": reservation.user,
    }
    return budget_settle(reservation=reservation, **(defaults | fields))


@pytest.fixture(params=["one statement", "transaction"])
def budget_10k(request, personas, monkeypatch):
    """An org with 10,000 tokens a month. Every test using it runs twice: with the one-statement
    protocol Postgres uses, and with the ORM transaction other databases (SQLite) use."""
    if request.param == "transaction":
        monkeypatch.setattr(reservations, "_one_statement", lambda: False)
    BudgetSettingsFactory(org=personas.org, monthly_override=10_000)
    return personas.org


# Budgets and periods --------------------------------------------------------------------------


def test_each_plan_has_its_monthly_allowance(personas):
    org = personas.org
    for plan, tokens in [
        ("free", 500_000),
        ("starter", 2_000_000),
        ("pro", 10_000_000),
        ("enterprise", 50_000_000),
    ]:
        org.plan = plan
        assert budget_tokens(org=org) == tokens


def test_an_override_beats_the_plan(personas):
    personas.org.plan = Plan.ENTERPRISE
    BudgetSettingsFactory(org=personas.org, monthly_override=1_234)
    assert budget_tokens(org=personas.org) == 1_234
    assert budget_period_current(org=personas.org).budget == 1_234


def test_the_period_is_opened_lazily_when_the_task_never_ran(personas):
    assert not BudgetPeriod.objects.exists()
    at = datetime.datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
    period = budget_period_current(org=personas.org, at=at)
    assert period.period_start == datetime.date(2026, 3, 1)
    assert period.period_end == datetime.date(2026, 4, 1)
    assert period.budget == 500_000
    assert budget_period_current(org=personas.org, at=at).pk == period.pk
    assert BudgetPeriod.objects.count() == 1


def test_the_period_follows_the_orgs_time_zone(personas):
    org = personas.org
    org.timezone = "Pacific/Auckland"
    org.save()
    # 12:00 UTC on 30 November is 01:00 on 1 December in Auckland (NZDT, UTC+13).
    period = budget_period_current(org=org, at=datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert period.period_start == datetime.date(2026, 12, 1)
    assert period.period_end == datetime.date(2027, 1, 1)
    assert period.starts_at == datetime.datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    before = budget_period_current(org=org, at=datetime.datetime(2026, 11, 30, 10, 59, tzinfo=UTC))
    assert before.period_start == datetime.date(2026, 11, 1)
    assert before.ends_at == period.starts_at


def test_the_budget_is_frozen_when_the_period_opens(personas):
    period = budget_period_current(org=personas.org)
    personas.org.plan = Plan.PRO
    personas.org.save()
    assert budget_period_current(org=personas.org).budget == period.budget == 500_000


# Reserve, settle, release -----------------------------------------------------------------------


def test_a_reservation_holds_tokens_and_settling_replaces_them_with_the_actual(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=4_000)
    assert budget_remaining(org=budget_10k) | {"resets_on": None} == {
        "budget": 10_000,
        "used": 0,
        "reserved": 4_000,
        "remaining": 6_000,
        "percent_used": 0.0,
        "resets_on": None,
        "low": False,
    }
    record = settle(reservation, 2_500, session_id=None)
    remaining = budget_remaining(org=budget_10k)
    assert (remaining["used"], remaining["reserved"], remaining["remaining"]) == (2_500, 0, 7_500)
    assert remaining["percent_used"] == 25.0
    assert record.total_tokens == 2_500 and record.org == budget_10k and record.user == personas.analyst
    reservation.refresh_from_db()
    assert reservation.settled_at is not None and reservation.usage_record == record


def test_reserve_settle_and_release_are_one_statement_each_on_postgres(personas, django_assert_num_queries):
    # Each holds the period row's lock only while the server runs it (see services/reservations.py).
    BudgetSettingsFactory(org=personas.org, monthly_override=10_000)
    budget_period_current(org=personas.org)
    with django_assert_num_queries(1):
        reservation = budget_reserve(org=personas.org, user=personas.analyst, amount=1_000)
    stopped = budget_reserve(org=personas.org, user=None, amount=500)
    with django_assert_num_queries(1):
        assert budget_release(reservation=stopped) is True
    with django_assert_num_queries(1):
        budget_settle(
            reservation=reservation,
            input_tokens=600,
            output_tokens=200,
            provider="anthropic",
            model="claude-test",
            purpose="generation",
            user=personas.analyst,
        )
    assert budget_remaining(org=personas.org) | {"resets_on": None} == {
        "budget": 10_000,
        "used": 800,
        "reserved": 0,
        "remaining": 9_200,
        "percent_used": 8.0,
        "resets_on": None,
        "low": False,
    }


def test_the_first_reservation_of_a_month_opens_its_period(personas):
    reservation = budget_reserve(org=personas.org, user=personas.analyst, amount=1_000)
    assert reservation.period == budget_period_current(org=personas.org)
    assert reservation.period.reserved == 1_000


def test_the_budget_is_low_when_less_than_a_fifth_is_left_counting_holds(budget_10k, personas):
    settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=7_000), 7_000)
    assert budget_remaining(org=budget_10k)["low"] is False  # 3,000 left
    held = budget_reserve(org=budget_10k, user=personas.analyst, amount=1_500)
    assert budget_remaining(org=budget_10k)["low"] is True  # 1,500 left, 70% used
    budget_release(reservation=held)
    assert budget_remaining(org=budget_10k)["low"] is False


def test_settling_twice_counts_the_tokens_once(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000)
    first = settle(reservation, 800)
    again = settle(Reservation.objects.get(pk=reservation.pk), 800)
    assert again.pk == first.pk
    assert UsageRecord.objects.count() == 1
    assert budget_remaining(org=budget_10k)["used"] == 800


def test_a_reservation_beyond_what_is_left_is_refused(budget_10k, personas):
    budget_reserve(org=budget_10k, user=personas.analyst, amount=9_000)
    with pytest.raises(BudgetExhausted):
        budget_reserve(org=budget_10k, user=personas.analyst, amount=1_001)
    assert budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000).amount == 1_000
    assert budget_remaining(org=budget_10k)["reserved"] == 10_000


def test_the_refusal_says_what_is_left_when_it_resets_and_whom_to_ask(budget_10k, personas):
    personas.org.timezone = "Pacific/Auckland"
    personas.org.save()
    personas.admin.full_name = "Ada Admin"
    personas.admin.save()
    budget_reserve(org=budget_10k, user=personas.analyst, amount=9_500)
    with pytest.raises(BudgetExhausted) as caught:
        budget_reserve(org=budget_10k, user=personas.analyst, amount=2_000)
    error = caught.value
    assert (error.code, error.status, error.retryable) == ("budget_exhausted", 429, False)
    resets = budget_period_current(org=budget_10k).period_end
    assert "500 of its 10,000 monthly tokens left" in error.detail
    assert "up to 2,000" in error.detail
    assert f"resets on {resets.day} {resets:%B %Y}" in error.detail
    assert "Ada Admin <admin@acme.test>" in error.detail
    assert "analyst@acme.test" not in error.detail
    assert "globex" not in error.detail


def test_a_refused_reservation_holds_nothing(budget_10k, personas):
    with pytest.raises(BudgetExhausted):
        budget_reserve(org=budget_10k, user=personas.analyst, amount=10_001)
    assert Reservation.objects.count() == 0
    assert budget_remaining(org=budget_10k)["reserved"] == 0


def test_zero_token_calls_go_through_a_spent_budget(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=10_000)
    settle(reservation, 12_000)  # a call may cost more than was held
    with pytest.raises(BudgetExhausted, match="has used its 10,000 tokens"):
        budget_reserve(org=budget_10k, user=personas.analyst, amount=1)
    builtin = budget_reserve(org=budget_10k, user=personas.analyst, amount=0)
    record = budget_settle(
        reservation=builtin,
        input_tokens=0,
        output_tokens=0,
        provider="builtin",
        model="",
        purpose="generation",
        user=personas.analyst,
    )
    assert record.total_tokens == 0
    assert budget_remaining(org=budget_10k)["used"] == 12_000


def test_releasing_gives_the_tokens_back_once(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=3_000)
    other = budget_reserve(org=budget_10k, user=personas.analyst, amount=2_000)
    assert budget_release(reservation=reservation) is True
    assert budget_release(reservation=reservation) is False
    assert budget_release(reservation=Reservation.objects.get(pk=reservation.pk)) is False
    assert budget_remaining(org=budget_10k)["reserved"] == 2_000
    settle(other, 1_000)
    assert budget_release(reservation=other) is False
    assert budget_remaining(org=budget_10k) | {"resets_on": None} == {
        "budget": 10_000,
        "used": 1_000,
        "reserved": 0,
        "remaining": 9_000,
        "percent_used": 10.0,
        "resets_on": None,
        "low": False,
    }


def test_expiry_releases_the_reservations_of_crashed_workers(budget_10k, personas):
    crashed = budget_reserve(org=budget_10k, user=personas.analyst, amount=3_000)
    finished = budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000)
    settle(finished, 500)
    in_flight = budget_reserve(org=budget_10k, user=personas.analyst, amount=2_000)
    Reservation.objects.filter(pk__in=[crashed.pk, finished.pk]).update(
        expires_at=crashed.created_at - datetime.timedelta(seconds=1)
    )
    assert reservations_expire() == 1
    assert reservations_expire() == 0
    crashed.refresh_from_db()
    in_flight.refresh_from_db()
    assert crashed.released_at is not None and in_flight.is_open
    assert budget_remaining(org=budget_10k)["reserved"] == 2_000
    assert in_flight.expires_at - in_flight.created_at == RESERVATION_TTL


def test_a_call_settled_after_its_reservation_expired_is_still_counted(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=3_000)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=reservation.created_at)
    reservations_expire()
    settle(reservation, 2_000)
    remaining = budget_remaining(org=budget_10k)
    assert (remaining["used"], remaining["reserved"]) == (2_000, 0)


# Cost -------------------------------------------------------------------------------------------


def test_the_cost_is_estimated_from_the_price_table(budget_10k, personas):
    ModelPriceFactory(
        provider="anthropic", model="claude-x", input_per_million=Decimal("3"), output_per_million=15
    )
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=5_000)
    record = settle(reservation, 0, input_tokens=2_000, output_tokens=1_000, model="claude-x")
    # 2,000 × $3/M + 1,000 × $15/M = $0.006 + $0.015
    assert record.estimated_cost == Decimal("0.021000")


def test_an_unknown_model_costs_nothing(budget_10k, personas):
    reservation = budget_reserve(org=budget_10k, user=personas.analyst, amount=5_000)
    assert settle(reservation, 1_000, model="unpriced").estimated_cost == 0


# Warnings ---------------------------------------------------------------------------------------


def test_the_80_and_100_percent_warnings_are_sent_once_each(
    budget_10k, personas, django_capture_on_commit_callbacks
):
    # Emails leave after commit; each block below is one batch of committed settlements.
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(7):
            settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000), 1_000)
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000), 1_000)
    assert [m.subject for m in mail.outbox] == ["Acme has used 80% of its DataMind token budget"]
    assert mail.outbox[0].to == ["admin@acme.test"]
    assert "8000 of 10000 tokens, 2000 left" in mail.outbox[0].body
    assert mail.outbox[0].alternatives[0][1] == "text/html"
    with django_capture_on_commit_callbacks(execute=True):
        settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=1_000), 1_000)
        for _ in range(3):
            settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=0), 500)
    assert [m.subject for m in mail.outbox] == [
        "Acme has used 80% of its DataMind token budget",
        "Acme has used its DataMind token budget for this month",
    ]
    assert "will be refused until the budget resets" in mail.outbox[1].body
    warnings = AuditLog.objects.filter(action="billing.budget_warning", org=budget_10k)
    assert sorted(entry.metadata["level"] for entry in warnings) == [80, 100]


def test_crossing_both_lines_at_once_sends_only_the_urgent_warning(
    budget_10k, personas, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=10_000), 10_000)
        settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=0), 100)
    assert [m.subject for m in mail.outbox] == ["Acme has used its DataMind token budget for this month"]
    period = budget_period_current(org=budget_10k)
    assert period.warned_80_at is not None and period.warned_100_at is not None


def test_a_disabled_warning_is_not_sent(budget_10k, personas, django_capture_on_commit_callbacks):
    budget_update(org=budget_10k, actor=personas.admin, override=10_000, warn_at_80=False, warn_at_100=True)
    with django_capture_on_commit_callbacks(execute=True):
        settle(budget_reserve(org=budget_10k, user=personas.analyst, amount=9_000), 9_000)
    assert mail.outbox == []


# Settings ---------------------------------------------------------------------------------------


def test_an_admin_updates_the_budget_and_it_is_audited(budget_10k, personas):
    budget_period_current(org=budget_10k)
    budget_update(
        org=budget_10k, actor=personas.admin, override=50_000, warn_at_80=True, warn_at_100=False, plan="pro"
    )
    assert budget_remaining(org=budget_10k)["budget"] == 50_000
    budget_10k.refresh_from_db()
    assert budget_10k.plan == "pro"
    entry = AuditLog.objects.get(action="billing.budget_update")
    assert entry.actor == personas.admin
    assert entry.metadata["old"] == {
        "override": 10_000,
        "warn_at_80": True,
        "warn_at_100": True,
        "plan": "free",
    }
    assert entry.metadata["new"] == {
        "override": 50_000,
        "warn_at_80": True,
        "warn_at_100": False,
        "plan": "pro",
    }


def test_removing_the_override_falls_back_to_the_plan(budget_10k, personas):
    budget_update(org=budget_10k, actor=personas.admin, override=None, warn_at_80=True, warn_at_100=True)
    assert budget_remaining(org=budget_10k)["budget"] == 500_000


def test_an_analyst_cannot_update_the_budget(budget_10k, personas):
    with pytest.raises(PermissionDenied):
        budget_update(
            org=budget_10k, actor=personas.analyst, override=None, warn_at_80=True, warn_at_100=True
        )


def test_an_outsider_cannot_update_another_orgs_budget(budget_10k, personas):
    with pytest.raises(PermissionDenied):
        budget_update(
            org=budget_10k, actor=personas.outsider, override=None, warn_at_80=True, warn_at_100=True
        )
    assert budget_tokens(org=budget_10k) == 10_000
