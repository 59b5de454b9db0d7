from celery import Task, shared_task

from apps.connections.engines.base import EngineError
from apps.connections.models import Connection, ExportJob
from apps.connections.services.catalogue import catalogue_refresh
from apps.connections.services.export import export_files_cleanup, export_job_run
from datamind.lib.schedules import Schedule


@shared_task(acks_late=True, ignore_result=True)
def catalogue_refresh_task(connection_id: int) -> None:
    # A refresh replaces the catalogue in one transaction, so running it twice is harmless.
    if Connection.objects.filter(pk=connection_id).exists():
        catalogue_refresh(connection_id=connection_id)


@shared_task(ignore_result=True, expires=60 * 60)
def catalogue_refresh_all_task() -> None:
    """Nightly: queue one refresh per connection, so one slow database does not delay the rest."""
    for connection_id in Connection.objects.values_list("pk", flat=True):
        catalogue_refresh_task.delay(connection_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=3)
def export_job_task(self: Task, job_id: int) -> None:
    if not ExportJob.objects.filter(pk=job_id).exists():
        return
    try:
        export_job_run(job_id=job_id, retry_allowed=self.request.retries < self.max_retries)
    except EngineError as exc:
        # Only errors another attempt could fix get here (the job was put back to pending).
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries)


@shared_task(ignore_result=True, expires=60 * 60)
def export_cleanup_task() -> None:
    export_files_cleanup()


SCHEDULES = [
    # Schemas change slowly; once a night, off-peak, keeps the catalogue the LLM sees current.
    Schedule(
        name="connections: refresh every catalogue",
        task="apps.connections.tasks.catalogue_refresh_all_task",
        crontab={"minute": "0", "hour": "3"},
        expires_seconds=60 * 60,
    ),
    # Export files are kept a day; checking hourly bounds the disk they use to about a day's worth.
    Schedule(
        name="connections: delete old export files",
        task="apps.connections.tasks.export_cleanup_task",
        every_seconds=60 * 60,
        expires_seconds=30 * 60,
    ),
]
