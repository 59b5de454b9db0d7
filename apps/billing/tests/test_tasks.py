import datetime

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.billing.models import BudgetPeriod, Reservation
from apps.billing.services import budget_periods_open, budget_remaining, budget_reserve
from apps.billing.tasks import SCHEDULES, budget_periods_open_task, reservations_expire_task
from datamind.lib.schedules import schedules_install


def test_the_roll_over_opens_each_orgs_month_in_its_own_time_zone(personas):
    personas.other_org.timezone = "Pacific/Auckland"
    personas.other_org.save()
    at = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
    budget_periods_open(at=at)
    budget_periods_open(at=at)
    starts = dict(BudgetPeriod.objects.values_list("org__slug", "period_start"))
    assert starts == {"acme": datetime.date(2026, 11, 1), "globex": datetime.date(2026, 12, 1)}


def test_the_roll_over_task_is_idempotent(personas):
    budget_periods_open_task()
    budget_periods_open_task()
    assert BudgetPeriod.objects.count() == 2


def test_the_expiry_task_releases_crashed_reservations(personas):
    reservation = budget_reserve(org=personas.org, user=personas.analyst, amount=1_000)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - datetime.timedelta(1))
    reservations_expire_task()
    reservations_expire_task()
    assert budget_remaining(org=personas.org)["reserved"] == 0


def test_the_schedules_are_installed_in_celery_beat(db):
    schedules_install(SCHEDULES)
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {
        "apps.billing.tasks.budget_periods_open_task",
        "apps.billing.tasks.reservations_expire_task",
        "apps.billing.tasks.budget_periods_reconcile_task",
    } <= tasks
