"""The scheduling path with a real Celery worker and beat on Redis (never eager mode)."""

import json
from datetime import timedelta

import pytest
from django.utils.timezone import now
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.alerts.models import Alert, AlertDelivery, AlertEvent, DeliveryStatus, EventState, Notification
from apps.alerts.services.channels.webhook import signature
from apps.alerts.tasks import alert_evaluate_task
from apps.alerts.tests.factories import AlertFactory
from datamind.lib.crypto import encrypt
from datamind.lib.testing import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# About two seconds of DuckDB work: long enough to kill the worker in the middle of it.
SLOW_SQL = "SELECT 50 + sum(i % 7) * 0 AS value FROM range(800000000) t(i)"


def _finished(alert: Alert) -> int:
    return AlertEvent.objects.filter(alert=alert).exclude(state=EventState.RUNNING).count()


def test_beat_dispatches_due_alerts_and_each_is_evaluated_once(
    celery_processes, personas, warehouse, tmp_path
):
    alerts = [
        AlertFactory(
            owner=personas.analyst, connection=warehouse, sql="SELECT 50 AS value", once_while_watched=True
        )
        for _ in range(3)
    ]
    Alert.objects.update(next_run_at=now() - timedelta(seconds=1))
    # The installed entry ticks every minute; here every second, so the test need not wait for one.
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(task="apps.alerts.tasks.alerts_dispatch_task").update(
        interval=every_second, crontab=None
    )
    celery_processes.start_beat(str(tmp_path / "beat-schedule"))
    celery_processes.start_worker()

    wait_for(lambda: all(_finished(a) == 1 for a in alerts), message="the due alerts were not evaluated")
    event = AlertEvent.objects.get(alert=alerts[0])
    # The same (alert, scheduled time) queued again, as a redelivery or a duplicate would be.
    alert_evaluate_task.delay(alerts[0].pk, event.scheduled_for.isoformat())
    alert_evaluate_task.delay(alerts[0].pk, event.scheduled_for.isoformat())
    wait_for(lambda: False if celery_processes.worker.poll() else _queue_empty(), timeout=15)

    for alert in alerts:
        assert AlertEvent.objects.filter(alert=alert).count() == 1
        assert Alert.objects.get(pk=alert.pk).next_run_at > now()
    assert Notification.objects.filter(user=personas.analyst).count() == 3


def _queue_empty() -> bool:
    import time

    from datamind.celery import app

    with app.connection_for_write() as connection:
        waiting = connection.default_channel.client.llen("celery")
    time.sleep(0.5)  # the last message taken may still be running
    return waiting == 0


def test_a_worker_killed_mid_evaluation_reruns_it_and_notifies_exactly_once(
    celery_processes, personas, warehouse, webhook_server
):
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        sql=SLOW_SQL,
        channels=[
            {"kind": "in_app"},
            {"kind": "webhook", "url": webhook_server.url, "format": "json", "secret": ""},
        ],
    )
    slot = now().replace(second=0, microsecond=0)
    celery_processes.start_worker()
    alert_evaluate_task.delay(alert.pk, slot.isoformat())

    wait_for(lambda: AlertEvent.objects.filter(alert=alert, state=EventState.RUNNING).exists())
    celery_processes.kill_worker()
    assert AlertEvent.objects.get(alert=alert).state == EventState.RUNNING
    celery_processes.start_worker()

    wait_for(lambda: _finished(alert) == 1, timeout=60, message="the killed evaluation never ran again")
    wait_for(lambda: AlertDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 2)
    assert AlertEvent.objects.get(alert=alert).state == EventState.TRIGGERED
    assert Notification.objects.filter(user=personas.analyst).count() == 1
    assert len(webhook_server.requests) == 1


def test_a_webhook_is_retried_with_backoff_until_the_receiver_takes_it(
    celery_processes, personas, warehouse, webhook_server
):
    webhook_server.statuses = [503, 500]
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        sql="SELECT 50 AS value",
        channels=[
            {"kind": "webhook", "url": webhook_server.url, "format": "json", "secret": encrypt("s3cret")}
        ],
    )
    celery_processes.start_worker()
    alert_evaluate_task.delay(alert.pk, now().isoformat())

    wait_for(lambda: AlertDelivery.objects.filter(status=DeliveryStatus.SENT).exists(), timeout=30)
    delivery = AlertDelivery.objects.get()
    assert delivery.attempts == 3
    assert len(webhook_server.requests) == 3
    headers, body = webhook_server.requests[-1]
    assert headers["X-DataMind-Signature"] == signature("s3cret", headers["X-DataMind-Timestamp"], body)
    payload = json.loads(body)
    assert payload["event"] == "triggered" and payload["value"] == 50
    assert payload["investigate_url"].endswith(f"/alerts/events/{delivery.event_id}/why/")
