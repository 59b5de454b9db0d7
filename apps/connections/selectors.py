from django.db.models import Count, Prefetch, Q, QuerySet

from apps.accounts.models import Organization, User
from apps.connections.engines.base import ColumnInfo, TableInfo
from apps.connections.models import CatalogColumn, CatalogTable, Connection, ExportJob, QueryRun


def connection_list(*, org: Organization) -> QuerySet[Connection]:
    return (
        Connection.objects.filter(org=org)
        .select_related("created_by")
        .annotate(table_count=Count("catalog_tables"))
        .order_by("name")
    )


def connection_choices(*, org: Organization) -> QuerySet[Connection]:
    """The org's connections to choose from, by name (without the list page's table counts, a
    join over the whole catalogue)."""
    return Connection.objects.filter(org=org).order_by("name")


def connection_get(*, org: Organization, pk: int) -> Connection:
    """One connection of the org; another org's connection is simply not found (404)."""
    return Connection.objects.select_related("org", "created_by").get(org=org, pk=pk)


def catalogue_tables(*, connection: Connection, search: str = "") -> QuerySet[CatalogTable]:
    """The catalogue with its columns, optionally filtered by a table or column name."""
    tables = CatalogTable.objects.filter(connection=connection)
    columns = CatalogColumn.objects.order_by("position")
    if search:
        matching = Q(name__icontains=search) | Q(comment__icontains=search)
        tables = tables.filter(
            matching | Q(columns__name__icontains=search) | Q(columns__comment__icontains=search)
        ).distinct()
    return tables.prefetch_related(Prefetch("columns", queryset=columns)).order_by("schema", "name")


def query_history(*, user: User, connection: Connection, limit: int = 20) -> QuerySet[QueryRun]:
    return QueryRun.objects.filter(org=connection.org, user=user, connection=connection)[:limit]


def export_job_get(*, org: Organization, user: User, pk: int) -> ExportJob:
    """Exports are private to whoever started them."""
    return ExportJob.objects.select_related("connection").get(org=org, user=user, pk=pk)


def catalogue_snapshot(*, connection: Connection) -> list[TableInfo]:
    """The catalogue as plain engine objects (no ORM), minus excluded columns, in two queries.

    This is what the question pipeline and the built-in engine read: they never touch models.
    """
    excluded = set(connection.excluded_columns)
    tables = []
    for table in catalogue_tables(connection=connection):
        info = TableInfo(
            schema=table.schema,
            name=table.name,
            is_view=table.is_view,
            comment=table.comment,
            row_estimate=table.row_estimate,
        )
        for column in table.columns.all():
            if f"{info.qualified_name}.{column.name}" in excluded:
                continue
            info.columns.append(
                ColumnInfo(
                    name=column.name,
                    position=column.position,
                    data_type=column.data_type,
                    nullable=column.nullable,
                    is_primary_key=column.is_primary_key,
                    references=column.references,
                    comment=column.comment,
                    samples=list(column.samples),
                )
            )
        tables.append(info)
    return tables


def connection_activity(*, connection: Connection, limit: int = 10) -> QuerySet[QueryRun]:
    """The latest statements anyone in the org ran on a connection, for its overview."""
    return QueryRun.objects.filter(org=connection.org, connection=connection).select_related("user")[:limit]


def catalogue_column_get(*, connection: Connection, pk: int) -> CatalogColumn:
    """One catalogued column of this connection; a column of any other connection is not found."""
    return CatalogColumn.objects.select_related("table").get(table__connection=connection, pk=pk)
