from celery import shared_task

from apps.billing.services import budget_periods_open, budget_periods_reconcile, reservations_expire
from datamind.lib.schedules import Schedule


@shared_task(ignore_result=True, expires=30 * 60)
def budget_periods_open_task() -> None:
    # Opening a period is get-or-create on (org, period_start): a second run changes nothing.
    budget_periods_open()


@shared_task(ignore_result=True, expires=4 * 60)
def reservations_expire_task() -> None:
    # Each release is a conditional update on an open reservation: a second run releases nothing.
    reservations_expire()


@shared_task(ignore_result=True, expires=6 * 60 * 60)
def budget_periods_reconcile_task() -> None:
    # Setting a counter to the ledger's sum is idempotent: a second run finds nothing to fix.
    budget_periods_reconcile()


SCHEDULES = [
    # Orgs' months begin at local midnight in every time zone (some on the half hour), so the
    # roll-over is checked hourly rather than once at UTC midnight. Correctness never depends on
    # it: every reservation opens its period lazily; this only makes the new month visible early.
    Schedule(
        name="billing: open the new budget period",
        task="apps.billing.tasks.budget_periods_open_task",
        crontab={"minute": "5"},
        expires_seconds=30 * 60,
    ),
    # A crashed worker's hold blocks real questions until it is released; every five minutes keeps
    # that to at most the reservation lifetime plus five minutes.
    Schedule(
        name="billing: release expired reservations",
        task="apps.billing.tasks.reservations_expire_task",
        every_seconds=5 * 60,
        expires_seconds=4 * 60,
    ),
    # The counters only drift in rare cases (a call settled across a month boundary, a crash, a hand
    # edit) and by a call or two; once a day, at a quiet hour (UTC), catches that long before it
    # adds up, and keeps the month-long ledger sums off peak time.
    Schedule(
        name="billing: reconcile the period counters with the ledger",
        task="apps.billing.tasks.budget_periods_reconcile_task",
        crontab={"minute": "17", "hour": "3"},
        expires_seconds=6 * 60 * 60,
    ),
]
