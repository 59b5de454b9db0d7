"""Handing due alerts to the workers: one evaluation task per alert and scheduled time."""

from datetime import datetime

from django.db import transaction
from django.utils.timezone import now

from apps.alerts.models import Alert
from apps.alerts.services.schedule import alert_cron, last_run_at_or_before, next_run_after

BATCH = 500


def alerts_dispatch(*, at: datetime | None = None) -> int:
    """Enqueue every active alert due at `at` and move its next run on; returns how many.

    Rows are locked with SKIP LOCKED, so two dispatchers (a slow one overlapping the next minute)
    share the work instead of doubling it. An alert late by several slots is evaluated once, for
    the latest. The tasks are queued *before* the commit on purpose: if the commit is lost the
    slot is simply dispatched again, and the (alert, scheduled_for) key makes that harmless,
    whereas queuing after the commit could lose a slot to a crash in between.
    """
    from apps.alerts.tasks import alert_evaluate_task

    at = at or now()
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                Alert.objects.select_for_update(skip_locked=True)
                .filter(is_active=True, next_run_at__lte=at)
                .order_by("next_run_at")
                .only("pk", "schedule_kind", "every_minutes", "at_minute", "at_time", "cron", "timezone")[
                    :BATCH
                ]
            )
            for alert in due:
                expression = alert_cron(alert)
                slot = last_run_at_or_before(expression, alert.timezone, at)
                alert.next_run_at = next_run_after(expression, alert.timezone, at)
                alert_evaluate_task.delay(alert.pk, slot.isoformat())
            Alert.objects.bulk_update(due, ["next_run_at"])
        total += len(due)
        if len(due) < BATCH:
            return total
