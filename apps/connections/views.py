"""The connection pages: the list, managing a connection, its schema, the SQL runner and exports.

Viewers see connections and their catalogue; analysts also run SQL and export; admins also
manage connections and their catalogue. A connection or export of another organisation (or an
export of another person) is not found: 404, never 403.
"""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget, trigger_client_event

from apps.accounts.models import Role
from apps.connections import selectors
from apps.connections.engines.base import EngineError
from apps.connections.forms import CatalogueSearchForm, ColumnExcludeForm, ConnectionForm, ExportForm, SqlForm
from apps.connections.models import CatalogColumn, CatalogueStatus, Connection, ExportJob
from apps.connections.safety import UnsafeSQLError
from apps.connections.services import catalogue, connections, execution, export
from apps.connections.services.execution import ExecutedQuery
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest

# Invalid input is answered 422, which base.html lets htmx swap like a success.
INVALID = 422
SCHEMA_PAGE_SIZE = 50
RESULT_PAGE_SIZE = 100
NOTHING_TO_EXPORT = {
    "refused": False,
    "detail": "Run a query, then export it as CSV or XLSX.",
    "retryable": False,
}


def _connection_or_404(request: AuthenticatedRequest, pk: int) -> Connection:
    try:
        return selectors.connection_get(org=request.user.org, pk=pk)
    except Connection.DoesNotExist:
        raise Http404("No such connection in your organisation.")


def _export_job_or_404(request: AuthenticatedRequest, pk: int) -> ExportJob:
    try:
        return selectors.export_job_get(org=request.user.org, user=request.user, pk=pk)
    except ExportJob.DoesNotExist:
        raise Http404("No such export of yours.")


def _runner_url(connection: Connection, sql: str = "") -> str:
    url = reverse("connections:sql-runner", args=[connection.pk])
    return f"{url}?{urlencode({'sql': sql})}" if sql else url


# The list ------------------------------------------------------------------------------------


@require_GET
@role_required(Role.VIEWER)
def index(request: AuthenticatedRequest) -> HttpResponse:
    context = {"connections": selectors.connection_list(org=request.user.org)}
    return render(request, "connections/index.html", context)


# Managing a connection (admins) --------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def connection_create(request: AuthenticatedRequest) -> HttpResponse:
    form = ConnectionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            connection = connections.connection_create(
                org=request.user.org,
                actor=request.user,
                data=form.service_data(),
                password=form.service_password() or "",
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(
                request,
                f"{connection.name} was added and its schema is being read. "
                "Test the connection to check that DataMind can reach it.",
            )
            return redirect("connections:connection-detail", pk=connection.pk)
    status = INVALID if form.is_bound else 200
    return render(request, "connections/connection_form.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def connection_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = ConnectionForm(request.POST if request.method == "POST" else None, instance=connection)
    if form.is_valid():
        try:
            connections.connection_update(
                connection=connection,
                actor=request.user,
                data=form.service_data(),
                password=form.service_password(),
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"{connection.name} was saved.")
            return redirect("connections:connection-detail", pk=connection.pk)
        # The failed save changed the instance in memory; the page shows the stored connection.
        connection = _connection_or_404(request, pk)
    status = INVALID if form.is_bound else 200
    context = {"form": form, "connection": connection}
    return render(request, "connections/connection_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def connection_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    if request.method == "POST":
        name = connection.name
        connections.connection_delete(connection=connection, actor=request.user)
        messages.success(
            request, f"{name} was deleted, with its schema catalogue, query history and exports."
        )
        return redirect("connections:index")
    return render(request, "connections/connection_delete.html", {"connection": connection})


@require_POST
@role_required(Role.ADMIN)
@vary_on_headers("HX-Request")
def connection_test(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    ok, message = connections.connection_test(connection=connection)
    if request.htmx:
        context = {"connection": connection, "ok": ok, "message": message}
        return render(request, "connections/partials/test_result.html", context)
    (messages.success if ok else messages.error)(request, message)
    return redirect("connections:connection-detail", pk=connection.pk)


# Overview ------------------------------------------------------------------------------------


@require_GET
@role_required(Role.VIEWER)
def connection_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    # Statements are for those who may run them; viewers see the connection and its catalogue.
    activity = (
        selectors.connection_activity(connection=connection) if request.user.has_role(Role.ANALYST) else None
    )
    context = {"connection": connection, "activity": activity}
    return render(request, "connections/connection_detail.html", context)


# Schema catalogue ----------------------------------------------------------------------------


def _catalogue_status(request: AuthenticatedRequest, connection: Connection) -> HttpResponse:
    return render(request, "connections/schema_browser.html#catalogue-status", {"connection": connection})


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Target")
def schema_browser(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    if request.htmx and request.htmx.target == "catalogue-status":
        # Only the status region, polled while a refresh runs.
        response = _catalogue_status(request, connection)
        if connection.catalogue_status != CatalogueStatus.REFRESHING:
            # The refresh it was following has ended: the table list reloads itself.
            trigger_client_event(response, "catalogue-refreshed")
        return response
    form = CatalogueSearchForm(request.GET)
    query = form.query()
    tables = selectors.catalogue_tables(connection=connection, search=query)
    context = {
        "connection": connection,
        "form": form,
        "query": query,
        "page": Paginator(tables, SCHEMA_PAGE_SIZE).get_page(request.GET.get("page")),
        "excluded_columns": connection.excluded_columns,
    }
    return render_page_or_partial(
        request, "connections/schema_browser.html", context, partial="schema-tables"
    )


@require_POST
@role_required(Role.ADMIN)
@vary_on_headers("HX-Request")
def schema_refresh(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    catalogue.catalogue_refresh_request(connection=connection, actor=request.user)
    if request.htmx:
        return _catalogue_status(request, connection)
    messages.info(request, f"The schema of {connection.name} is being read again.")
    return redirect("connections:schema-browser", pk=connection.pk)


@require_POST
@role_required(Role.ADMIN)
@vary_on_headers("HX-Request")
def column_exclude(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = ColumnExcludeForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Name a column of the catalogue.")
    try:
        column = selectors.catalogue_column_get(connection=connection, pk=form.cleaned_data["column"])
    except CatalogColumn.DoesNotExist:
        raise Http404("No such column in this connection's catalogue.")
    qualified = f"{column.table.qualified_name}.{column.name}"
    excluded = form.cleaned_data["excluded"]
    catalogue.catalogue_column_exclude(
        connection=connection, actor=request.user, column=qualified, excluded=excluded
    )
    if request.htmx:
        context = {
            "connection": connection,
            "table": column.table,
            "column": column,
            "excluded_columns": connection.excluded_columns,
        }
        return render(request, "connections/schema_browser.html#column-row", context)
    if excluded:
        messages.success(request, f"{qualified} is excluded: it is never sampled nor shown to the AI.")
    else:
        messages.success(request, f"{qualified} is included again; the next refresh samples it.")
    url = reverse("connections:schema-browser", args=[connection.pk])
    return redirect(f"{url}?{urlencode({'q': column.table.name})}")


# SQL runner (analysts) -----------------------------------------------------------------------


def _runner_page(
    request: AuthenticatedRequest,
    connection: Connection,
    form: SqlForm,
    *,
    executed: ExecutedQuery | None = None,
    rows: Page | None = None,
    error: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The runner page, or its `results` fragment (which also refreshes the history) for htmx."""
    context = {
        "connection": connection,
        "form": form,
        "sql": getattr(form, "cleaned_data", {}).get("sql", ""),
        "executed": executed,
        "rows": rows,
        "error": error,
        "history": selectors.query_history(user=request.user, connection=connection),
    }
    return render_page_or_partial(
        request, "connections/sql_runner.html", context, partial="results", status=status
    )


def _failure(exc: UnsafeSQLError | EngineError | ValidationError) -> dict[str, Any]:
    """What the results region says when a statement produced no rows: refused by the validator,
    failed in the database, or the connection itself may no longer be reached."""
    if isinstance(exc, UnsafeSQLError):
        return {"refused": True, "detail": exc.detail, "rule": exc.rule}
    if isinstance(exc, EngineError):
        return {"refused": False, "detail": exc.detail, "retryable": exc.retryable}
    return {"refused": False, "detail": " ".join(exc.messages), "retryable": False}


@require_GET
@role_required(Role.ANALYST)
def sql_runner(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = SqlForm(initial={"sql": request.GET.get("sql", "")})
    return _runner_page(request, connection, form)


@require_POST
@role_required(Role.ANALYST)
def sql_run(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = SqlForm(request.POST)
    if not form.is_valid():
        return _runner_page(request, connection, form, status=INVALID)
    page = form.cleaned_data["page"]
    try:
        # Turning pages re-posts the statement and is served from the results cache; only a
        # run from the editor (no page) goes into the history.
        executed = execution.query_execute(
            connection=connection, sql=form.cleaned_data["sql"], user=request.user, record=page is None
        )
    except (UnsafeSQLError, EngineError, ValidationError) as exc:
        return _runner_page(request, connection, form, error=_failure(exc), status=INVALID)
    rows = Paginator(executed.result.rows, RESULT_PAGE_SIZE).get_page(page)
    return _runner_page(request, connection, form, executed=executed, rows=rows)


# Exports (analysts) --------------------------------------------------------------------------


def _export_refused(
    request: AuthenticatedRequest, connection: Connection, sql: str, error: dict[str, Any]
) -> HttpResponse:
    if request.htmx:
        form = SqlForm({"sql": sql})
        form.is_valid()
        response = _runner_page(request, connection, form, error=error, status=INVALID)
        return reswap(retarget(response, "#sql-results"), "outerHTML")
    messages.error(request, f"The export did not run: {error['detail']}")
    return redirect(_runner_url(connection, sql))


@require_POST
@role_required(Role.ANALYST)
@vary_on_headers("HX-Request")
def export_download(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = ExportForm(request.POST)
    if not form.is_valid():
        return _export_refused(request, connection, request.POST.get("sql", ""), NOTHING_TO_EXPORT)
    sql = form.cleaned_data["sql"]
    try:
        download = export.export_stream(
            connection=connection, sql=sql, user=request.user, fmt=form.cleaned_data["format"]
        )
    except (UnsafeSQLError, EngineError, ValidationError) as exc:
        return _export_refused(request, connection, sql, _failure(exc))
    response = StreamingHttpResponse(download, content_type=download.content_type)
    response["Content-Disposition"] = content_disposition_header(True, download.file_name)
    return response


@require_POST
@role_required(Role.ANALYST)
@vary_on_headers("HX-Request")
def export_start(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    connection = _connection_or_404(request, pk)
    form = ExportForm(request.POST)
    if not form.is_valid():
        return _export_refused(request, connection, request.POST.get("sql", ""), NOTHING_TO_EXPORT)
    sql = form.cleaned_data["sql"]
    try:
        job = export.export_job_create(
            connection=connection, user=request.user, sql=sql, fmt=form.cleaned_data["format"]
        )
    except UnsafeSQLError as exc:
        return _export_refused(request, connection, sql, _failure(exc))
    if request.htmx:
        return render(request, "connections/export_status.html#export-job", {"job": job})
    return redirect("connections:export-status", pk=job.pk)


@require_GET
@role_required(Role.ANALYST)
def export_status(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    job = _export_job_or_404(request, pk)
    return render_page_or_partial(
        request, "connections/export_status.html", {"job": job}, partial="export-job"
    )


@require_GET
@role_required(Role.ANALYST)
def export_file(request: AuthenticatedRequest, pk: int) -> FileResponse:
    job = _export_job_or_404(request, pk)
    try:
        path = export.export_job_file(job)
    except export.ExportUnavailable as exc:
        raise Http404(exc.detail)
    name = export.export_download_name(connection=job.connection, fmt=job.format, at=job.finished_at)
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type=export.CONTENT_TYPES[job.format]
    )
