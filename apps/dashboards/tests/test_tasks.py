import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.dashboards.models import Dashboard
from apps.dashboards.services.refresh import dashboards_claim_due
from apps.dashboards.tasks import SCHEDULES
from datamind.lib.schedules import schedules_install

pytestmark = pytest.mark.django_db


def test_the_beat_schedules_are_installed_with_an_expiry():
    schedules_install(SCHEDULES)

    for schedule in SCHEDULES:
        task = PeriodicTask.objects.get(name=schedule.name)
        assert task.task == schedule.task and task.interval.every == 60 and task.expire_seconds == 50


def test_a_due_dashboard_is_claimed_once_and_moved_on_by_its_interval(dashboard):
    due = timezone.now() - dt.timedelta(minutes=1)
    Dashboard.objects.filter(pk=dashboard.pk).update(schedule_minutes=30, next_refresh_at=due)

    assert dashboards_claim_due() == [dashboard.pk]
    assert dashboards_claim_due() == []
    dashboard.refresh_from_db()
    assert dashboard.next_refresh_at > timezone.now() + dt.timedelta(minutes=29)


def test_dashboards_without_a_schedule_are_never_claimed(dashboard):
    Dashboard.objects.filter(pk=dashboard.pk).update(next_refresh_at=timezone.now() - dt.timedelta(days=1))

    assert dashboards_claim_due() == []
