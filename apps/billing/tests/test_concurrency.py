"""The reservation protocol on real Postgres, with one database connection per thread."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from apps.billing.models import BudgetPeriod, Reservation
from apps.billing.services import BudgetExhausted, budget_release, budget_reserve, budget_settle
from apps.billing.tests.factories import BudgetSettingsFactory

WORKERS = 50
AMOUNT = 1_000


def in_own_connection(action):
    def run(*args):
        try:
            return action(*args)
        finally:
            # Each thread has its own connection; closing it lets the test database be dropped.
            connection.close()

    return run


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_reservations_against_room_for_ten_let_exactly_ten_through(personas):
    org = personas.org
    BudgetSettingsFactory(org=org, monthly_override=10 * AMOUNT)
    start = threading.Barrier(WORKERS)
    overdrawn: list[int] = []
    running = threading.Event()
    running.set()

    @in_own_connection
    def reserve(_: int) -> Reservation | BudgetExhausted:
        start.wait()
        try:
            return budget_reserve(org=org, user=personas.analyst, amount=AMOUNT)
        except BudgetExhausted as exc:
            return exc

    @in_own_connection
    def watch() -> None:
        while running.is_set():
            for used, reserved, budget in BudgetPeriod.objects.values_list("used", "reserved", "budget"):
                if used + reserved > budget:
                    overdrawn.append(used + reserved)

    with ThreadPoolExecutor(max_workers=WORKERS + 1) as pool:
        watcher = pool.submit(watch)
        outcomes = list(pool.map(reserve, range(WORKERS)))
        running.clear()
        watcher.result()

    held = [o for o in outcomes if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, BudgetExhausted)]
    assert len(held) == 10
    assert len(refused) == WORKERS - 10
    assert all(error.code == "budget_exhausted" for error in refused)
    assert overdrawn == []
    period = BudgetPeriod.objects.get(org=org)
    assert (period.used, period.reserved) == (0, 10 * AMOUNT)

    @in_own_connection
    def finish(index_and_reservation: tuple[int, Reservation]) -> None:
        index, reservation = index_and_reservation
        if index % 2:
            budget_release(reservation=reservation)
        else:
            budget_settle(
                reservation=reservation,
                input_tokens=600,
                output_tokens=200,
                provider="anthropic",
                model="claude-test",
                purpose="generation",
                user=personas.analyst,
            )
        # A second finish of the same reservation (a retried task) must change nothing.
        budget_release(reservation=reservation)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(finish, enumerate(held)))

    period.refresh_from_db()
    assert (period.used, period.reserved) == (5 * 800, 0)
    assert not Reservation.objects.filter(settled_at__isnull=True, released_at__isnull=True).exists()
