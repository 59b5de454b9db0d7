from datetime import datetime

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.alerts.services.delivery import DeliveryRetry, delivery_send
from apps.alerts.services.dispatch import alerts_dispatch
from apps.alerts.services.evaluation import EvaluationRetry, alert_evaluate, deliveries_enqueue
from apps.alerts.services.explain import event_explain
from datamind.lib.schedules import Schedule

MAX_RETRIES = 4
# DataMind's own database refusing a connection (restarting, or out of connection slots) passes;
# without a retry the slot's evaluation would be lost.
OUR_DATABASE_DOWN = (OperationalError, InterfaceError)


def _backoff(retries: int) -> float:
    return settings.ALERTS_RETRY_BACKOFF_S * 2**retries


@shared_task(ignore_result=True, expires=50)
def alerts_dispatch_task() -> None:
    # Due rows are locked with SKIP LOCKED and moved on in the same transaction: a second run
    # finds nothing left to dispatch.
    alerts_dispatch()


# acks_late + reject_on_worker_lost: a worker killed mid-evaluation leaves the message in the
# broker, so it runs again; the (alert, scheduled_for) claim makes the second run record and
# notify nothing the first one committed.
@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=MAX_RETRIES
)
def alert_evaluate_task(self: Task, alert_id: int, scheduled_for: str) -> None:
    try:
        alert_evaluate(
            alert_id=alert_id,
            scheduled_for=datetime.fromisoformat(scheduled_for),
            final_attempt=self.request.retries >= self.max_retries,
        )
    except (EvaluationRetry, *OUR_DATABASE_DOWN) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries))


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=180)
def event_explain_task(event_id: int) -> None:
    # A paragraph already written is not asked for again; the deliveries are claimed one by one,
    # so queuing them twice sends nothing twice. A failed explanation must not hold them back.
    try:
        event_explain(event_id=event_id)
    finally:
        deliveries_enqueue(event_id=event_id)


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=MAX_RETRIES
)
def delivery_send_task(self: Task, delivery_id: int) -> None:
    try:
        delivery_send(delivery_id=delivery_id, final_attempt=self.request.retries >= self.max_retries)
    except (DeliveryRetry, *OUR_DATABASE_DOWN) as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries))


SCHEDULES = [
    # Every minute: the finest schedule an alert can have, so no alert starts more than a minute
    # late. Expiring before the next tick stops a backlog of dispatches piling up behind an outage.
    Schedule(
        name="alerts: dispatch due alerts",
        task="apps.alerts.tasks.alerts_dispatch_task",
        crontab={"minute": "*"},
        expires_seconds=50,
    ),
]
