"""Redis (the broker) restarting while alerts fall due: no evaluation is lost.

Beat and the worker reach Redis through a `TcpProxy` the test cuts. While it is away, beat's
dispatches cannot be sent, so nothing moves the due alert on (dispatch moves an alert on only in
the transaction that queued its evaluation); once Redis is back, the next dispatch finds it still
due and the worker, reconnected by itself, evaluates it once.
"""

import time
from datetime import timedelta

import pytest
from django.utils.timezone import now
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.alerts.models import Alert, AlertEvent, EventState
from apps.alerts.tests.factories import AlertFactory
from datamind.lib.testing import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_alert_due_while_redis_is_down_is_evaluated_once_after_it_returns(
    celery_processes, personas, warehouse, tmp_path, redis_proxy
):
    proxy, redis_url = redis_proxy
    alert = AlertFactory(
        owner=personas.analyst, connection=warehouse, sql="SELECT 50 AS value", once_while_watched=True
    )
    Alert.objects.filter(pk=alert.pk).update(next_run_at=now() + timedelta(days=1))
    # The installed entry ticks every minute; here every second, so the test need not wait for one.
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(task="apps.alerts.tasks.alerts_dispatch_task").update(
        interval=every_second, crontab=None
    )
    celery_processes.start_beat(str(tmp_path / "beat-schedule"), REDIS_URL=redis_url)
    celery_processes.start_worker(REDIS_URL=redis_url)
    time.sleep(3)  # both connected to the broker

    proxy.cut()
    Alert.objects.filter(pk=alert.pk).update(next_run_at=now())
    time.sleep(3)  # several of beat's ticks fall in the outage
    assert not AlertEvent.objects.filter(alert=alert).exists()
    assert Alert.objects.get(pk=alert.pk).next_run_at <= now()

    proxy.restore()
    wait_for(
        lambda: AlertEvent.objects.filter(alert=alert).exclude(state=EventState.RUNNING).exists(),
        timeout=40,
        message="the alert due during the outage was not evaluated after it",
    )
    time.sleep(2)  # later ticks must not evaluate it again
    assert AlertEvent.objects.filter(alert=alert).count() == 1
    assert Alert.objects.get(pk=alert.pk).next_run_at > now()
    assert celery_processes.worker.poll() is None and celery_processes.beat.poll() is None
