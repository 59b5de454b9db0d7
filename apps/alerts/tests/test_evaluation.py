"""Evaluating an alert: once per scheduled time, notify once per episode, resolve, cooldown, failures."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from apps.alerts.models import Alert, AlertDelivery, AlertEvent, AlertState, EventState, Notification
from apps.alerts.services.delivery import delivery_send
from apps.alerts.services.evaluation import EvaluationRetry, alert_evaluate, event_history_chart
from apps.alerts.tests.factories import DAILY_SERIES_SQL, AlertFactory

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _slot(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def alert(personas, warehouse) -> Alert:
    return AlertFactory(owner=personas.analyst, connection=warehouse)


def _send_pending() -> None:
    """What the worker does with the delivery tasks queued at commit (no worker runs here)."""
    for pk in AlertDelivery.objects.filter(status="pending").values_list("pk", flat=True):
        delivery_send(delivery_id=pk)


def _set_value(alert: Alert, value: float) -> None:
    Alert.objects.filter(pk=alert.pk).update(sql=f"SELECT {value} AS value")


def test_an_evaluation_records_one_event_with_the_value_and_sentence(alert):
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    assert event.state == EventState.OK
    assert event.value == 5
    assert "5" in event.message
    alert.refresh_from_db()
    assert alert.state == AlertState.OK and alert.last_value == 5


def test_evaluating_the_same_slot_twice_changes_nothing(alert, personas):
    _set_value(alert, 50)
    alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    assert AlertEvent.objects.filter(alert=alert).count() == 1
    assert Notification.objects.filter(user=personas.analyst).count() == 1


def test_it_notifies_every_member_once_while_the_metric_stays_triggered(alert, personas):
    _set_value(alert, 50)
    for minute in range(3):
        alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(minute))
    states = list(AlertEvent.objects.order_by("scheduled_for").values_list("state", flat=True))
    assert states == [EventState.TRIGGERED] * 3
    assert Notification.objects.filter(org=personas.org).count() == 3  # admin, analyst, viewer: once each
    assert Notification.objects.filter(org=personas.other_org).count() == 0
    notification = Notification.objects.get(user=personas.viewer)
    assert notification.title == f"{alert.name} triggered"
    assert notification.link.endswith(
        f"/alerts/events/{AlertEvent.objects.earliest('scheduled_for').pk}/why/"
    )


def test_it_sends_a_resolved_message_when_the_metric_returns_to_normal(alert, personas):
    _set_value(alert, 50)
    alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    _set_value(alert, 5)
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(1))
    assert event.state == EventState.RESOLVED
    titles = list(
        Notification.objects.filter(user=personas.analyst).order_by("pk").values_list("title", flat=True)
    )
    assert titles == [f"{alert.name} triggered", f"{alert.name} is back to normal"]
    # Back to normal and staying there: nothing more.
    alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(2))
    assert Notification.objects.filter(user=personas.analyst).count() == 2


def test_a_second_trigger_within_the_cooldown_is_not_notified(alert, personas):
    Alert.objects.filter(pk=alert.pk).update(cooldown_minutes=60)
    for minute, value in enumerate([50, 5, 50]):
        _set_value(alert, value)
        alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(minute))
    titles = list(
        Notification.objects.filter(user=personas.analyst).order_by("pk").values_list("title", flat=True)
    )
    assert titles == [f"{alert.name} triggered", f"{alert.name} is back to normal"]


def test_a_muted_alert_is_evaluated_but_tells_nobody(alert):
    Alert.objects.filter(pk=alert.pk).update(muted_until=datetime.now(UTC) + timedelta(hours=1))
    _set_value(alert, 50)
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    assert event.state == EventState.TRIGGERED
    assert Notification.objects.count() == 0 and AlertDelivery.objects.count() == 0


def _dipping_series_judged(personas, warehouse, condition_kind: str, condition_config: dict) -> AlertEvent:
    """60 days of a weekly pattern around 100 whose last day is 20, judged by the condition."""
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        sql=DAILY_SERIES_SQL.format(last=20),
        condition_kind=condition_kind,
        condition_config=condition_config,
    )
    return alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))


def test_a_series_is_judged_by_its_last_point_against_its_own_history(personas, warehouse):
    event = _dipping_series_judged(personas, warehouse, "anomaly", {"sensitivity": "medium"})
    assert event.state == EventState.TRIGGERED
    assert event.value == 20
    assert event.band_low is not None and event.band_low > 20
    assert "below" in event.message
    assert len(event.points) == 60


def test_an_anomaly_events_chart_bands_the_whole_history_and_marks_only_its_own_verdict(personas, warehouse):
    event = _dipping_series_judged(personas, warehouse, "anomaly", {"sensitivity": "medium"})

    points = event_history_chart(event)["data"]["values"]

    assert [p["value"] for p in points] == [v for _t, v in event.points]
    banded = [p for p in points if p["low"] is not None]
    assert len(banded) > 40  # every point once the history is long enough to judge it
    assert all(p["low"] <= p["value"] <= p["high"] for p in banded[:-1])  # an ordinary week
    judged = points[-1]
    assert (judged["low"], judged["high"], judged["fired"]) == (event.band_low, event.band_high, True)
    assert sum(p["fired"] for p in points) == 1


def test_a_threshold_events_chart_bands_only_the_judged_point(personas, warehouse):
    event = _dipping_series_judged(personas, warehouse, "threshold", {"threshold": 50, "direction": "below"})

    points = event_history_chart(event)["data"]["values"]

    assert len(points) == 60 and points[-1]["fired"]
    assert [p for p in points[:-1] if p["low"] is not None or p["fired"]] == []


def test_a_lone_number_is_judged_against_the_alerts_earlier_values(personas, warehouse):
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        condition_kind="change",
        condition_config={"amount": 50, "unit": "percent"},
    )
    _set_value(alert, 100)
    assert alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0)).state == EventState.OK
    _set_value(alert, 300)
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(1))
    assert event.state == EventState.TRIGGERED, event.message


def test_a_failing_query_is_an_error_event_and_the_owner_hears_after_three_in_a_row(
    alert, personas, settings
):
    settings.ALERTS_FAILURES_BEFORE_NOTICE = 3
    Alert.objects.filter(pk=alert.pk).update(sql="SELECT value FROM no_such_table")
    for minute in range(4):
        event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(minute))
        assert event.state == EventState.ERROR
    assert "no_such_table" in event.message
    alert.refresh_from_db()
    assert alert.state == AlertState.ERROR and alert.consecutive_failures == 4
    notices = Notification.objects.all()
    assert [(n.user, n.title) for n in notices] == [
        (personas.analyst, f"{alert.name} has failed 3 times in a row")
    ]
    _send_pending()
    assert [m.to for m in mail.outbox] == [[personas.analyst.email]]


def test_a_retryable_failure_asks_for_a_retry_and_records_nothing_until_the_last_attempt(alert, monkeypatch):
    from apps.alerts.services import evaluation
    from apps.connections.engines.base import QueryTimeout

    def time_out(**kwargs):
        raise QueryTimeout("The query ran too long.")

    monkeypatch.setattr(evaluation, "metric_read", time_out)
    with pytest.raises(EvaluationRetry):
        alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0), final_attempt=False)
    assert AlertEvent.objects.get().state == EventState.RUNNING
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0), final_attempt=True)
    assert event.state == EventState.ERROR


def test_an_email_channel_sends_html_text_and_the_chart_as_png(personas, warehouse):
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        sql=DAILY_SERIES_SQL.format(last=20),
        condition_kind="anomaly",
        condition_config={},
        channels=[{"kind": "email", "to": ["ops@acme.test"]}],
    )
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=_slot(0))
    _send_pending()
    delivery = event.deliveries.get()
    assert delivery.status == "sent"
    message = mail.outbox[-1]
    assert message.to == ["ops@acme.test"]
    assert "Why did this happen?" in message.body
    html = message.alternatives[0][0]
    assert 'src="cid:alert-chart"' in html
    assert any(getattr(a, "get_content_type", lambda: "")() == "image/png" for a in message.attachments)
