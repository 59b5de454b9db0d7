"""The connections API: connections, their schema catalogue, running SQL and exporting results.

Every view calls the services and selectors the HTML pages call, so both locks of SQL safety, the
target checks and the audit trail are the same whichever door a request comes through.

A connection is always looked up in the caller's org *before* the caller's role is checked:
another org's connection is a 404 for everyone, and a 403 only ever speaks of the caller's own.
"""

from typing import Any

from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.connections import selectors
from apps.connections.engines.base import EngineError
from apps.connections.models import (
    OPTION_DEFAULTS,
    CatalogTable,
    CatalogueStatus,
    Connection,
    ConnectionStatus,
    Engine,
    ExportFormat,
    ExportJob,
    ExportStatus,
)
from apps.connections.safety import MAX_SQL_BYTES, UnsafeSQLError
from apps.connections.services.catalogue import catalogue_refresh_request
from apps.connections.services.connections import (
    connection_create,
    connection_delete,
    connection_test,
    connection_update,
)
from apps.connections.services.execution import query_execute
from apps.connections.services.export import export_job_create, export_stream
from datamind.lib.api import ErrorSerializer, Pagination, error_responses, paginated_response
from datamind.lib.permissions import HasRole, IsMember, ReadOrRole

_TAGS = ["connections"]
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_TIMEOUT_RESPONSE = {
    504: OpenApiResponse(
        ErrorSerializer, description="The database did not answer in time (`code` is `timeout`)."
    )
}
_REFUSED_DESCRIPTION = (
    " A statement that is not one read-only query is refused with `code` `unsafe_sql`, the reason in"
    " `detail` and the check that refused it in `rule`; the refusal is kept in the audit log."
)


# Permissions --------------------------------------------------------------------------------


class MembersReadAdminsWrite(ReadOrRole):
    write_minimum = Role.ADMIN


class ConnectionRole(HasRole):
    """Members pass the door; the role a method needs is checked on the connection once it has
    been found in the caller's org (see `ConnectionApi.get_connection`)."""

    read_minimum: Role = Role.VIEWER
    write_minimum: Role = Role.ADMIN

    def has_permission(self, request: Request, view: APIView) -> bool:
        self.minimum = Role.VIEWER
        return super().has_permission(request, view)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        self.minimum = self.read_minimum if request.method in SAFE_METHODS else self.write_minimum
        return super().has_permission(request, view)

    @classmethod
    def needing(cls, *, write: Role, read: Role = Role.VIEWER) -> type["ConnectionRole"]:
        return type(
            f"ConnectionRole{read.label}{write.label}", (cls,), {"read_minimum": read, "write_minimum": write}
        )


class ConnectionApi(APIView):
    """A view about one connection of the caller's org."""

    def get_connection(self, pk: int) -> Connection:
        try:
            connection = selectors.connection_get(org=self.request.user.org, pk=pk)
        except Connection.DoesNotExist:
            raise exceptions.NotFound()
        self.check_object_permissions(self.request, connection)
        return connection


def _refused(exc: UnsafeSQLError) -> Response:
    # The shared handler's body for project errors, plus the rule that refused the statement.
    return Response(
        {"code": exc.code, "detail": exc.detail, "retryable": exc.retryable, "rule": exc.rule},
        status=exc.status,
    )


def _as_gateway_timeout(exc: EngineError) -> EngineError:
    # The database, DataMind's upstream, ran out of time: a 504 tells clients and proxies so.
    if exc.code == "timeout":
        exc.status = status.HTTP_504_GATEWAY_TIMEOUT
    return exc


# Connections --------------------------------------------------------------------------------


class ConnectionListApi(APIView):
    """The org's connections (members) and adding one (admins)."""

    permission_classes = [MembersReadAdminsWrite]
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        engine = serializers.ChoiceField(choices=Engine.choices)
        # Defaults apply to a create or a PUT, which replace every setting, but not to a PATCH.
        host = serializers.CharField(
            max_length=255, default="", allow_blank=True, help_text="Empty for SQLite and DuckDB."
        )
        port = serializers.IntegerField(min_value=1, max_value=65535, default=None, allow_null=True)
        database = serializers.CharField(
            max_length=255,
            help_text="The database name, or for SQLite and DuckDB a file name in the warehouse folder.",
        )
        username = serializers.CharField(max_length=255, default="", allow_blank=True)
        password = serializers.CharField(
            required=False,
            allow_blank=True,
            trim_whitespace=False,
            write_only=True,
            style={"input_type": "password"},
            help_text="Write-only: never returned. Left out of an update, the stored one is kept.",
        )
        options = serializers.DictField(
            default=dict, help_text=f"Only these keys are accepted: {', '.join(OPTION_DEFAULTS)}."
        )

        class Meta:
            ref_name = "ConnectionSettings"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        engine = serializers.ChoiceField(choices=Engine.choices)
        host = serializers.CharField()
        port = serializers.IntegerField(allow_null=True)
        database = serializers.CharField()
        username = serializers.CharField()
        has_password = serializers.SerializerMethodField()
        options = serializers.DictField()
        status = serializers.ChoiceField(choices=ConnectionStatus.choices)
        last_tested_at = serializers.DateTimeField(allow_null=True)
        last_error = serializers.CharField()
        catalogue_status = serializers.ChoiceField(choices=CatalogueStatus.choices)
        catalogue_version = serializers.IntegerField()
        catalogue_refreshed_at = serializers.DateTimeField(allow_null=True)
        catalogue_error = serializers.CharField()
        excluded_columns = serializers.ListField(
            child=serializers.CharField(), help_text="schema.table.column, never sampled nor shown."
        )
        created_by = serializers.EmailField(source="created_by.email", allow_null=True)
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Connection"

        def get_has_password(self, connection: Connection) -> bool:
            return bool(connection.password)

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer(many=True), **error_responses(401, 403)},
        summary="List the organisation's connections",
    )
    def get(self, request: Request) -> Response:
        connections = selectors.connection_list(org=request.user.org)
        return paginated_response(
            queryset=connections, serializer_class=self.OutputSerializer, request=request, view=self
        )

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403)},
        summary="Add a connection",
        description=(
            "Where it points is checked first: no link-local or metadata address, no DataMind database,"
            " file databases only inside the warehouse folder, known options only. A catalogue refresh"
            " is queued once it is saved."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        password = data.pop("password", "")
        connection = connection_create(org=request.user.org, actor=request.user, data=data, password=password)
        return Response(self.OutputSerializer(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetailApi(ConnectionApi):
    """One connection: members read it; admins change or remove it."""

    permission_classes = [ConnectionRole.needing(write=Role.ADMIN)]

    InputSerializer = ConnectionListApi.InputSerializer
    OutputSerializer = ConnectionListApi.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Get a connection",
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.OutputSerializer(self.get_connection(pk)).data)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Replace a connection's settings",
        description=(
            "Settings left out go back to their defaults, except the password: left out, it is kept."
        ),
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Change some of a connection's settings",
        description="Only the fields given change; an empty password removes the stored one.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        tags=_TAGS,
        responses={204: OpenApiResponse(description="Removed."), **error_responses(401, 403, 404)},
        summary="Remove a connection",
        description="Its catalogue, query history and exports go with it.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        connection_delete(connection=self.get_connection(pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        connection = self.get_connection(pk)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        connection = connection_update(
            connection=connection, actor=request.user, data=data, password=password
        )
        return Response(self.OutputSerializer(connection).data)


class ConnectionTestApi(ConnectionApi):
    """Try to connect now, and remember the outcome as the connection's status."""

    permission_classes = [ConnectionRole.needing(write=Role.ADMIN)]

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        message = serializers.CharField(help_text="The server's version, or why it could not be reached.")

        class Meta:
            ref_name = "ConnectionTestResult"

    @extend_schema(
        tags=_TAGS,
        request=None,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Test a connection",
        description="A connection that fails still answers 200, with `ok` false and the reason.",
    )
    def post(self, request: Request, pk: int) -> Response:
        ok, message = connection_test(connection=self.get_connection(pk))
        return Response(self.OutputSerializer({"ok": ok, "message": message}).data)


# The schema catalogue -----------------------------------------------------------------------


class ConnectionSchemaApi(ConnectionApi):
    """The tables and columns of a connection, as its last catalogue refresh read them."""

    permission_classes = [ConnectionRole.needing(write=Role.ADMIN)]
    pagination_class = Pagination

    class OutputSerializer(serializers.Serializer):
        class ColumnSerializer(serializers.Serializer):
            name = serializers.CharField()
            type = serializers.CharField(source="data_type")
            nullable = serializers.BooleanField()
            pk = serializers.BooleanField(source="is_primary_key", help_text="Part of the primary key.")
            references = serializers.CharField(help_text="schema.table.column of a foreign key, or empty.")
            comment = serializers.CharField()
            samples = serializers.ListField(child=serializers.CharField())

            class Meta:
                ref_name = "CatalogColumn"

        schema = serializers.CharField()
        name = serializers.CharField()
        qualified_name = serializers.CharField()
        is_view = serializers.BooleanField()
        comment = serializers.CharField()
        row_estimate = serializers.IntegerField(allow_null=True)
        columns = serializers.SerializerMethodField()

        class Meta:
            ref_name = "CatalogTable"

        @extend_schema_field(ColumnSerializer(many=True))
        def get_columns(self, table: CatalogTable) -> list:
            excluded = self.context["excluded"]
            visible = [c for c in table.columns.all() if f"{table.qualified_name}.{c.name}" not in excluded]
            return self.ColumnSerializer(visible, many=True).data

    @extend_schema(
        tags=_TAGS,
        parameters=[
            OpenApiParameter(
                "search", str, description="Only tables whose name, comment or a column's matches."
            )
        ],
        responses={200: OutputSerializer(many=True), **error_responses(401, 403, 404)},
        summary="Browse a connection's schema",
        description="Excluded columns are left out. The catalogue is read by a refresh, not live.",
    )
    def get(self, request: Request, pk: int) -> Response:
        connection = self.get_connection(pk)
        tables = selectors.catalogue_tables(
            connection=connection, search=request.query_params.get("search", "")
        )
        pager = self.pagination_class()
        page = pager.paginate_queryset(tables, request, view=self)
        context = {"excluded": frozenset(connection.excluded_columns)}
        return pager.get_paginated_response(self.OutputSerializer(page, many=True, context=context).data)


class ConnectionRefreshSchemaApi(ConnectionApi):
    """Read a connection's schema again, in the background."""

    permission_classes = [ConnectionRole.needing(write=Role.ADMIN)]

    class OutputSerializer(serializers.Serializer):
        catalogue_status = serializers.ChoiceField(choices=CatalogueStatus.choices)
        catalogue_version = serializers.IntegerField()
        catalogue_refreshed_at = serializers.DateTimeField(allow_null=True)
        catalogue_error = serializers.CharField()
        catalogue_progress = serializers.DictField(help_text="The running refresh's phase and message.")

        class Meta:
            ref_name = "CatalogueStatus"

    @extend_schema(
        tags=_TAGS,
        request=None,
        responses={202: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Refresh a connection's schema",
        description="Queues a refresh; poll the connection for its catalogue status.",
    )
    def post(self, request: Request, pk: int) -> Response:
        connection = catalogue_refresh_request(connection=self.get_connection(pk), actor=request.user)
        return Response(self.OutputSerializer(connection).data, status=status.HTTP_202_ACCEPTED)


# Running SQL --------------------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "array", "items": {}}})
class RowsField(serializers.JSONField):
    """Rows as the engine made them (already JSON-safe): passed through, not walked value by value."""


class ConnectionQueryApi(ConnectionApi):
    """Run one read-only query, with the connection's row and time limits."""

    permission_classes = [ConnectionRole.needing(write=Role.ANALYST)]

    class InputSerializer(serializers.Serializer):
        sql = serializers.CharField(max_length=MAX_SQL_BYTES, trim_whitespace=False)
        limit = serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            help_text="At most this many rows (never more than the connection's row cap).",
        )
        use_cache = serializers.BooleanField(
            default=True, help_text="Answer from a recent identical query's result when there is one."
        )

        class Meta:
            ref_name = "Query"

    class OutputSerializer(serializers.Serializer):
        class ColumnSerializer(serializers.Serializer):
            name = serializers.CharField()
            type = serializers.CharField()

            class Meta:
                ref_name = "ResultColumn"

        columns = ColumnSerializer(many=True)
        rows = RowsField()
        row_count = serializers.IntegerField()
        truncated = serializers.BooleanField(help_text="More rows exist than were returned.")
        elapsed_ms = serializers.IntegerField()
        cached = serializers.BooleanField()

        class Meta:
            ref_name = "QueryResult"

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404), **_TIMEOUT_RESPONSE},
        summary="Run a query",
        description=(
            "Runs inside the database's read-only mode with the connection's timeout and row cap, and is"
            " kept in the caller's query history. A database error is a 400 with the database's `code`"
            " and whether a retry could help (`retryable`); a timeout is a 504." + _REFUSED_DESCRIPTION
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        connection = self.get_connection(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            executed = query_execute(
                connection=connection,
                sql=data["sql"],
                user=request.user,
                row_cap=data.get("limit"),
                use_cache=data["use_cache"],
                record=True,
            )
        except UnsafeSQLError as exc:
            return _refused(exc)
        except EngineError as exc:
            raise _as_gateway_timeout(exc)
        return Response(self.OutputSerializer({**executed.result.as_dict(), "cached": executed.cached}).data)


# Exports ------------------------------------------------------------------------------------


class ExportJobApi(APIView):
    """An export running in the background, started by the caller."""

    permission_classes = [IsMember]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        connection = serializers.IntegerField(source="connection_id")
        format = serializers.ChoiceField(choices=ExportFormat.choices)
        status = serializers.ChoiceField(choices=ExportStatus.choices)
        rows_written = serializers.IntegerField(
            help_text="Rows so far while running; all of them when ready."
        )
        capped = serializers.BooleanField(help_text="XLSX only: cut at Excel's row limit.")
        error = serializers.CharField()
        created_at = serializers.DateTimeField()
        finished_at = serializers.DateTimeField(allow_null=True)
        url = serializers.SerializerMethodField()
        download_url = serializers.SerializerMethodField()

        class Meta:
            ref_name = "ExportJob"

        def get_url(self, job: ExportJob) -> str:
            path = reverse("connections-api:export-detail", args=[job.pk])
            return self.context["request"].build_absolute_uri(path)

        @extend_schema_field(serializers.URLField(allow_null=True, help_text="Set once the file is ready."))
        def get_download_url(self, job: ExportJob) -> str | None:
            if job.status != ExportStatus.READY:
                return None
            return self.context["request"].build_absolute_uri(
                reverse("connections:export-file", args=[job.pk])
            )

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Follow an export",
        description="Exports are private to whoever started them: anyone else's is a 404.",
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            job = selectors.export_job_get(org=request.user.org, user=request.user, pk=pk)
        except ExportJob.DoesNotExist:
            raise exceptions.NotFound()
        return Response(self.OutputSerializer(job, context={"request": request}).data)


class ConnectionExportApi(ConnectionApi):
    """The whole result of a query as a CSV or XLSX file: streamed now, or written in the background."""

    permission_classes = [ConnectionRole.needing(write=Role.ANALYST)]

    class InputSerializer(serializers.Serializer):
        sql = serializers.CharField(max_length=MAX_SQL_BYTES, trim_whitespace=False)
        format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.CSV)
        background = serializers.BooleanField(
            default=False, help_text="Write the file in the background and answer 202 with the export job."
        )

        class Meta:
            ref_name = "Export"

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # A client asking for the file (Accept: text/csv) gets it, and its errors in JSON, not a 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            (200, _XLSX): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            (202, "application/json"): OpenApiResponse(
                ExportJobApi.OutputSerializer, description="Queued: follow it at `url`."
            ),
            **error_responses(400, 401, 403, 404),
            **_TIMEOUT_RESPONSE,
        },
        summary="Export a query's result",
        description=(
            "Without a row cap: the export is the whole result. Errors are found before the first byte"
            " is sent, so a download that starts is the real file." + _REFUSED_DESCRIPTION
        ),
    )
    def post(self, request: Request, pk: int) -> Response | StreamingHttpResponse:
        connection = self.get_connection(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            if data["background"]:
                job = export_job_create(
                    connection=connection, user=request.user, sql=data["sql"], fmt=data["format"]
                )
                body = ExportJobApi.OutputSerializer(job, context={"request": request}).data
                return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})
            download = export_stream(
                connection=connection, sql=data["sql"], user=request.user, fmt=data["format"]
            )
        except UnsafeSQLError as exc:
            return _refused(exc)
        except EngineError as exc:
            raise _as_gateway_timeout(exc)
        response = StreamingHttpResponse(download, content_type=download.content_type)
        response["Content-Disposition"] = content_disposition_header(True, download.file_name)
        return response
