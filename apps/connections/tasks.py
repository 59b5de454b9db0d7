from celery import shared_task

from apps.connections.models import Connection
from apps.connections.services.catalogue import catalogue_refresh


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
