from celery import shared_task

from apps.dashboards.models import Dashboard, SubscriptionDelivery
from apps.dashboards.services.refresh import dashboard_refresh, dashboards_claim_due
from apps.dashboards.services.subscriptions import (
    subscription_deliver,
    subscription_deliveries_stalled_fail,
    subscriptions_claim_due,
)
from datamind.lib.schedules import Schedule


@shared_task(acks_late=True, ignore_result=True, expires=10 * 60)
def dashboard_refresh_task(dashboard_id: int) -> None:
    # Running twice only refreshes twice: the results and the pushed fragments are the same.
    dashboard = Dashboard.objects.select_related("org").filter(pk=dashboard_id).first()
    if dashboard is not None:
        dashboard_refresh(dashboard=dashboard)


@shared_task(ignore_result=True, expires=50)
def dashboards_refresh_due_task() -> None:
    for dashboard_id in dashboards_claim_due():
        dashboard_refresh_task.delay(dashboard_id)


@shared_task(acks_late=True, ignore_result=True)
def subscription_deliver_task(delivery_id: int) -> None:
    # The delivery is claimed before sending, so a redelivered task sends nothing.
    if SubscriptionDelivery.objects.filter(pk=delivery_id).exists():
        subscription_deliver(delivery_id=delivery_id)


@shared_task(ignore_result=True, expires=50)
def subscriptions_send_due_task() -> None:
    subscription_deliveries_stalled_fail()
    for delivery_id in subscriptions_claim_due():
        subscription_deliver_task.delay(delivery_id)


SCHEDULES = [
    # Schedules are in whole minutes; checking every minute starts each refresh within a minute
    # of its time, and the claim keeps overlapping ticks from refreshing twice.
    Schedule(
        name="dashboards: refresh scheduled dashboards",
        task="apps.dashboards.tasks.dashboards_refresh_due_task",
        every_seconds=60,
        expires_seconds=50,
    ),
    # Subscriptions are cron schedules to the minute; the same cadence sends each on its minute.
    Schedule(
        name="dashboards: send due subscriptions",
        task="apps.dashboards.tasks.subscriptions_send_due_task",
        every_seconds=60,
        expires_seconds=50,
    ),
]
