"""The dispatcher: due alerts are queued once, for their latest slot, and moved on."""

import json
import threading
from base64 import b64decode
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.db import connections, transaction

from apps.alerts.models import Alert
from apps.alerts.services.dispatch import alerts_dispatch
from apps.alerts.tests.factories import AlertFactory

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 11, 2, 9, 7, 30, tzinfo=UTC)


@pytest.fixture
def broker(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def _queued(broker) -> list[list]:
    """The (alert_id, scheduled_for) of every evaluation waiting in the broker."""
    messages = [json.loads(m) for m in broker.lrange("celery", 0, -1)]
    return sorted(json.loads(b64decode(m["body"]))[0] for m in messages)


def test_a_late_alert_is_queued_once_for_its_latest_slot_and_moved_on(personas, warehouse, broker):
    alert = AlertFactory(owner=personas.analyst, connection=warehouse, every_minutes=5)
    Alert.objects.filter(pk=alert.pk).update(next_run_at=AT - timedelta(minutes=30))
    AlertFactory(owner=personas.analyst, connection=warehouse, is_active=False)  # paused: never

    assert alerts_dispatch(at=AT) == 1
    assert alerts_dispatch(at=AT) == 0
    assert _queued(broker) == [[alert.pk, "2026-11-02T09:05:00+00:00"]]
    assert Alert.objects.get(pk=alert.pk).next_run_at == datetime(2026, 11, 2, 9, 10, tzinfo=UTC)


def test_an_alert_locked_by_another_dispatcher_is_skipped_not_waited_for(personas, warehouse, broker):
    locked, free = (AlertFactory(owner=personas.analyst, connection=warehouse) for _ in range(2))
    Alert.objects.update(next_run_at=AT)
    holding, release = threading.Event(), threading.Event()

    def other_dispatcher() -> None:
        with transaction.atomic():
            Alert.objects.select_for_update().get(pk=locked.pk)
            holding.set()
            release.wait(10)
        connections.close_all()

    thread = threading.Thread(target=other_dispatcher)
    thread.start()
    holding.wait(10)
    try:
        assert alerts_dispatch(at=AT) == 1
    finally:
        release.set()
        thread.join()
    assert [alert_id for alert_id, _ in _queued(broker)] == [free.pk]
