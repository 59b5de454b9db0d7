from django.db.models import Count, Prefetch, Q, QuerySet

from apps.accounts.models import Organization, User
from apps.connections.models import CatalogColumn, CatalogTable, Connection, ExportJob, QueryRun


def connection_list(*, org: Organization) -> QuerySet[Connection]:
    return (
        Connection.objects.filter(org=org)
        .select_related("created_by")
        .annotate(table_count=Count("catalog_tables"))
        .order_by("name")
    )


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
