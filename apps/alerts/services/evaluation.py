"""Evaluating an alert for one scheduled time, exactly once, and deciding whom to tell.

An evaluation claims its (alert, scheduled_for) row first, runs the query outside any
transaction, then records the outcome and its notifications in one transaction that re-checks
the claim under a row lock. Two copies of the task (a redelivery, a worker killed and restarted,
a duplicate) may both run the query, but only the first to commit records anything; the other
finds the event finished and only makes sure its deliveries are on their way.
"""

import functools
import hashlib
import json
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.timezone import now
from redis.exceptions import RedisError

from apps.alerts import detectors
from apps.alerts.models import (
    Alert,
    AlertDelivery,
    AlertEvent,
    AlertState,
    DeliveryStatus,
    EventState,
    NotificationReason,
)
from apps.alerts.services.channels import AlertMessage, get_channel
from apps.alerts.services.charts import anomaly_points, chart_point, series_chart
from apps.alerts.services.metrics import SERIES_MAX_POINTS, Metric, metric_read
from datamind.lib.exceptions import DataMindError

logger = structlog.get_logger(__name__)

FINISHED = (EventState.OK, EventState.TRIGGERED, EventState.RESOLVED)
EVENT_CHART_SECONDS = 7 * 24 * 3600


class EvaluationRetry(Exception):
    """The query failed in a way another attempt could fix; the task retries with backoff."""


def _event_claim(alert_id: int, scheduled_for: datetime) -> AlertEvent | None:
    # INSERT ... ON CONFLICT DO NOTHING: the first copy of the task creates the row, any other
    # finds it; neither waits on the other.
    try:
        AlertEvent.objects.bulk_create(
            [AlertEvent(alert_id=alert_id, scheduled_for=scheduled_for)], ignore_conflicts=True
        )
    except IntegrityError:  # the alert was deleted meanwhile
        return None
    return AlertEvent.objects.filter(alert_id=alert_id, scheduled_for=scheduled_for).first()


def alert_evaluate(
    *, alert_id: int, scheduled_for: datetime, final_attempt: bool = True
) -> AlertEvent | None:
    """Evaluate `alert_id` for `scheduled_for`; idempotent. Raises EvaluationRetry when the
    query failed retryably and this is not the final attempt (the event stays running)."""
    event = _event_claim(alert_id, scheduled_for)
    if event is None:
        return None
    if event.state != EventState.RUNNING:
        deliveries_enqueue(event_id=event.pk)
        return event
    alert = Alert.objects.select_related("connection", "owner").filter(pk=alert_id).first()
    if alert is None:
        return None
    try:
        metric = metric_read(connection=alert.connection, sql=alert.sql)
    except DataMindError as exc:
        if exc.retryable and not final_attempt:
            raise EvaluationRetry(exc.detail) from exc
        return _record_failure(event_id=event.pk, detail=exc.detail)
    return _record_outcome(event_id=event.pk, metric=metric)


def _with_history(alert: Alert, metric: Metric, scheduled_for: datetime) -> Metric:
    """A lone number judged against the alert's own earlier values."""
    if metric.is_series:
        return metric
    past = list(
        AlertEvent.objects.filter(alert=alert, state__in=FINISHED, scheduled_for__lt=scheduled_for)
        .exclude(value=None)
        .order_by("-scheduled_for")
        .values_list("scheduled_for", "value")[:SERIES_MAX_POINTS]
    )[::-1]
    return Metric(
        [v for _, v in past] + metric.values,
        [t for t, _ in past] + [scheduled_for],
        columns=metric.columns,
        rows=metric.rows,
    )


def _cooled_down(alert: Alert, at: datetime) -> bool:
    return alert.last_notified_at is None or at - alert.last_notified_at >= timedelta(
        minutes=alert.cooldown_minutes
    )


@transaction.atomic
def _record_outcome(*, event_id: int, metric: Metric) -> AlertEvent:
    event = AlertEvent.objects.select_for_update().select_related("alert").get(pk=event_id)
    if event.state != EventState.RUNNING:
        return event
    alert = Alert.objects.select_for_update().get(pk=event.alert_id)
    metric = _with_history(alert, metric, event.scheduled_for)
    verdict = detectors.evaluate(
        alert.condition_kind, alert.condition_config, metric.series(), metric=alert.name
    )
    at = now()
    event.evaluated_at = at
    event.value = verdict.value
    event.expected = verdict.expected
    event.band_low, event.band_high = verdict.band or (None, None)
    event.score = verdict.score
    event.message = verdict.sentence
    event.points = metric.points()
    event.columns, event.rows = metric.columns, metric.rows

    # A later slot already recorded (this one was retried) has decided the alert's state.
    superseded = alert.events.filter(scheduled_for__gt=event.scheduled_for, state__in=FINISHED).exists()
    reason = None
    if verdict.triggered:
        event.state = EventState.TRIGGERED
        if not alert.firing and not alert.is_muted(at) and _cooled_down(alert, at) and not superseded:
            reason = NotificationReason.TRIGGERED
            alert.firing, alert.last_notified_at = True, at
    elif alert.firing and not superseded:
        event.state = EventState.RESOLVED
        alert.firing = False
        if not alert.is_muted(at):
            reason = NotificationReason.RESOLVED
    else:
        event.state = EventState.OK
    event.save()
    if not superseded:
        alert.state = AlertState.TRIGGERED if verdict.triggered else AlertState.OK
        alert.last_value, alert.last_evaluated_at, alert.consecutive_failures = verdict.value, at, 0
    alert.save()
    if reason:
        _deliveries_create(event, alert.channels, reason)
    return event


@transaction.atomic
def _record_failure(*, event_id: int, detail: str) -> AlertEvent:
    event = AlertEvent.objects.select_for_update().get(pk=event_id)
    if event.state != EventState.RUNNING:
        return event
    alert = Alert.objects.select_for_update().select_related("owner").get(pk=event.alert_id)
    at = now()
    event.state, event.message, event.evaluated_at = EventState.ERROR, detail, at
    event.save()
    alert.state, alert.last_evaluated_at = AlertState.ERROR, at
    alert.consecutive_failures += 1
    alert.save()
    if alert.consecutive_failures == settings.ALERTS_FAILURES_BEFORE_NOTICE:
        owner_only = [{"kind": "in_app", "to": "owner"}, {"kind": "email", "to": [alert.owner.email]}]
        _deliveries_create(event, owner_only, NotificationReason.FAILING)
    logger.info("alert_evaluation_failed", alert_id=alert.pk, failures=alert.consecutive_failures)
    return event


def _deliveries_create(event: AlertEvent, channels: list[dict], reason: str) -> None:
    """Log one delivery per channel; in-app ones are written now, inside this transaction."""
    deliveries = AlertDelivery.objects.bulk_create(
        AlertDelivery(
            event=event,
            position=position,
            kind=settings_["kind"],
            reason=reason,
            target=get_channel(settings_["kind"]).target(settings_, event),
            config=settings_,
        )
        for position, settings_ in enumerate(channels)
    )
    for delivery in deliveries:
        channel = get_channel(delivery.kind)
        if channel.in_transaction:
            channel.send(delivery, alert_message(delivery))
            delivery.status, delivery.attempts, delivery.sent_at = DeliveryStatus.SENT, 1, now()
            delivery.save(update_fields=["status", "attempts", "sent_at"])
    if reason == NotificationReason.TRIGGERED and event.alert.dimension:
        from apps.alerts.tasks import event_explain_task

        # The paragraph first: the e-mails and webhooks are queued once it is written (or not).
        transaction.on_commit(lambda: event_explain_task.delay(event.pk))
    else:
        transaction.on_commit(lambda: deliveries_enqueue(event_id=event.pk))


def deliveries_enqueue(*, event_id: int) -> None:
    from apps.alerts.tasks import delivery_send_task

    pending = AlertDelivery.objects.filter(event_id=event_id, status=DeliveryStatus.PENDING)
    for delivery_id in pending.values_list("pk", flat=True):
        delivery_send_task.delay(delivery_id)


_TITLES = {
    NotificationReason.TRIGGERED: "{name} triggered",
    NotificationReason.RESOLVED: "{name} is back to normal",
    NotificationReason.FAILING: "{name} has failed {failures} times in a row",
}


def alert_message(delivery: AlertDelivery) -> AlertMessage:
    event = delivery.event
    alert = event.alert
    band = (event.band_low, event.band_high) if event.band_low is not None else None
    title = _TITLES[delivery.reason].format(name=alert.name, failures=settings.ALERTS_FAILURES_BEFORE_NOTICE)
    sentence = event.message
    if delivery.reason == NotificationReason.FAILING:
        sentence = f"The last error: {event.message} Fix the query or the connection, or pause the alert."
    return AlertMessage(
        reason=delivery.reason,
        title=title,
        sentence=sentence,
        alert_name=alert.name,
        alert_url=settings.SITE_URL + reverse("alerts:detail", args=[alert.pk]),
        investigate_path=reverse("alerts:event-investigate", args=[event.pk]),
        scheduled_for=event.scheduled_for.isoformat(),
        value=event.value,
        expected=event.expected,
        band=band,
        explanation=event.explanation,
        chart=event_chart(event, width=560) if event.points else {},
    )


def event_chart(event: AlertEvent, *, width: int | str = "container", band_history: bool = False) -> dict:
    """The series the event judged, with the band its condition called normal at the judged (last)
    point; with `band_history`, for an anomaly condition, at every point too (as "Test now" draws
    it, with the alert's current settings). The judged point keeps the event's own verdict."""
    points = _banded_history(event) if band_history else [chart_point(t, v) for t, v in event.points]
    if points:
        points[-1] = chart_point(
            event.points[-1][0],
            event.value,
            low=event.band_low,
            high=event.band_high,
            fired=event.state == EventState.TRIGGERED,
        )
    return {**series_chart(points, metric=event.alert.name), "width": width}


def event_history_chart(event: AlertEvent) -> dict:
    """`event_chart` with the band over the whole history, kept in the cache: working the band out
    at every point takes 0.1-0.4 s for a long series, and an event's series never changes."""
    alert = event.alert
    condition = json.dumps([alert.condition_kind, alert.condition_config], sort_keys=True)
    key = f"datamind:alerts:event-chart:{event.pk}:{hashlib.sha256(condition.encode()).hexdigest()[:16]}"
    chart = functools.partial(event_chart, event, band_history=True)
    try:
        return cache.get_or_set(key, chart, timeout=EVENT_CHART_SECONDS)
    except RedisError as exc:  # a cache outage must not take the alert pages down
        logger.warning("event_chart_cache_unavailable", error=str(exc))
        return chart()


def _banded_history(event: AlertEvent) -> list[dict]:
    alert = event.alert
    if alert.condition_kind == "anomaly" and len(event.points) > 1 and event.points[-1][1] is not None:
        try:
            config = detectors.get_condition("anomaly").from_dict(alert.condition_config).config
        except detectors.ConfigError:  # settings saved before a rule tightened: the plain series
            config = None
        if config is not None:
            timestamps = [datetime.fromisoformat(t) for t, _ in event.points]
            return anomaly_points([v for _, v in event.points], timestamps, config, would_fire=False)
    return [chart_point(t, v) for t, v in event.points]
