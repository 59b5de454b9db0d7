"""The schema catalogue: what tables and columns a connection has, read in bulk and kept."""

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import audit_log_record
from apps.connections.engines import get_engine
from apps.connections.engines.base import EngineError, TableInfo
from apps.connections.models import CatalogColumn, CatalogTable, CatalogueStatus, Connection
from apps.connections.services.connections import connection_spec

logger = structlog.get_logger(__name__)

_BATCH = 5000


def _progress(connection_id: int, **progress) -> None:
    Connection.objects.filter(pk=connection_id).update(
        catalogue_progress={**progress, "at": timezone.now().isoformat()}
    )


def catalogue_refresh(*, connection_id: int) -> Connection:
    """Read the schema and replace the stored catalogue in one transaction.

    Reading happens before anything is written, so a refresh that fails keeps the previous
    catalogue intact (and says why it failed).
    """
    connection = Connection.objects.get(pk=connection_id)
    Connection.objects.filter(pk=connection_id).update(catalogue_status=CatalogueStatus.REFRESHING)
    _progress(connection_id, phase="reading", message="Reading the schema…")
    try:
        tables = get_engine(connection.engine).introspect(
            connection_spec(connection), excluded_columns=frozenset(connection.excluded_columns)
        )
    except (EngineError, ValidationError) as exc:
        message = exc.detail if isinstance(exc, EngineError) else " ".join(exc.messages)
        logger.warning("catalogue_refresh_failed", connection_id=connection_id, error=message)
        Connection.objects.filter(pk=connection_id).update(
            catalogue_status=CatalogueStatus.FAILED, catalogue_error=message, catalogue_progress={}
        )
        connection.refresh_from_db()
        return connection
    _progress(connection_id, phase="saving", message=f"Saving {len(tables)} tables…", tables=len(tables))
    _catalogue_replace(connection=connection, tables=tables)
    connection.refresh_from_db()
    logger.info("catalogue_refreshed", connection_id=connection_id, tables=len(tables))
    return connection


@transaction.atomic
def _catalogue_replace(*, connection: Connection, tables: list[TableInfo]) -> None:
    CatalogTable.objects.filter(connection=connection).delete()
    rows = CatalogTable.objects.bulk_create(
        [
            CatalogTable(
                connection=connection,
                schema=t.schema,
                name=t.name,
                is_view=t.is_view,
                comment=t.comment or "",
                row_estimate=t.row_estimate,
            )
            for t in tables
        ],
        batch_size=_BATCH,
    )
    CatalogColumn.objects.bulk_create(
        (
            CatalogColumn(
                table=row,
                name=c.name,
                position=c.position,
                data_type=c.data_type,
                nullable=c.nullable,
                is_primary_key=c.is_primary_key,
                references=c.references,
                comment=c.comment or "",
                samples=c.samples,
            )
            for row, t in zip(rows, tables, strict=True)
            for c in t.columns
        ),
        batch_size=_BATCH,
    )
    Connection.objects.filter(pk=connection.pk).update(
        catalogue_status=CatalogueStatus.READY,
        catalogue_version=F("catalogue_version") + 1,
        catalogue_refreshed_at=timezone.now(),
        catalogue_error="",
        catalogue_progress={},
    )


@transaction.atomic
def catalogue_column_exclude(
    *, connection: Connection, actor: User, column: str, excluded: bool
) -> Connection:
    """Hide (or show again) a column: never sampled, never shown to the LLM. `column` is
    schema.table.column (or table.column where the engine has no schemas)."""
    columns = set(connection.excluded_columns)
    if excluded:
        columns.add(column)
    else:
        columns.discard(column)
    connection.excluded_columns = sorted(columns)
    connection.save(update_fields=["excluded_columns", "updated_at"])
    if excluded:
        # Forget samples already taken of it; the next refresh will not take new ones.
        table_part, _, name = column.rpartition(".")
        table_schema, _, table_name = table_part.rpartition(".")
        CatalogColumn.objects.filter(
            table__connection=connection, table__schema=table_schema, table__name=table_name, name=name
        ).update(samples=[])
    audit_log_record(
        action="connection.column_exclude" if excluded else "connection.column_include",
        org=connection.org,
        actor=actor,
        target=connection,
        metadata={"column": column},
    )
    return connection


@transaction.atomic
def catalogue_refresh_request(*, connection: Connection, actor: User) -> Connection:
    """Queue a catalogue refresh and mark it under way, so pages start following its progress.

    The current catalogue stays in place and in use until the new one is read and saved.
    """
    from apps.connections.tasks import catalogue_refresh_task  # tasks imports this module

    Connection.objects.filter(pk=connection.pk).update(
        catalogue_status=CatalogueStatus.REFRESHING,
        catalogue_progress={
            "phase": "queued",
            "message": "Waiting for a worker to read the schema…",
            "at": timezone.now().isoformat(),
        },
    )
    audit_log_record(
        action="connection.catalogue_refresh",
        org=connection.org,
        actor=actor,
        target=connection,
        metadata={"name": connection.name},
    )
    transaction.on_commit(lambda: catalogue_refresh_task.delay(connection.pk))
    connection.refresh_from_db(fields=["catalogue_status", "catalogue_progress"])
    return connection
