"""The connections admin: connections, their catalogue, the query history and exports, per org.

A connection is created, changed and removed through the same services as everywhere else, so
its target is checked, its password encrypted and never shown, and the audit log records who did
it. The catalogue, the history and the exports are records of what happened: read-only.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.connections.models import (
    OPTION_DEFAULTS,
    CatalogColumn,
    CatalogTable,
    Connection,
    ExportJob,
    QueryRun,
)
from apps.connections.services.catalogue import catalogue_refresh_request
from apps.connections.services.connections import (
    EDITABLE_FIELDS,
    connection_create,
    connection_delete,
    connection_test,
    connection_update,
)
from apps.connections.services.targets import connection_target_validate
from datamind.lib.admin import OrgScopedAdmin


class ConnectionAdminForm(forms.ModelForm):
    """A connection's settings. The password is write-only: never rendered, and left empty on an
    edit it keeps the stored one."""

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Stored encrypted and never shown. Leave empty to keep the current password.",
    )

    class Meta:
        model = Connection
        fields = (*EDITABLE_FIELDS, "password")
        help_texts = {"options": f"A JSON object with only these keys: {', '.join(OPTION_DEFAULTS)}."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The model form copies every field's stored value into `initial`: not this one.
        self.initial.pop("password", None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if any(name in self.errors for name in EDITABLE_FIELDS):
            return cleaned
        # The same checks as every other door, here so that a refusal shows on its field.
        cleaned["options"] = connection_target_validate(
            engine=cleaned.get("engine", ""),
            host=(cleaned.get("host") or "").strip(),
            port=cleaned.get("port"),
            database=(cleaned.get("database") or "").strip(),
            username=(cleaned.get("username") or "").strip(),
            options=cleaned.get("options"),
        )
        return cleaned


@admin.register(Connection)
class ConnectionAdmin(OrgScopedAdmin):
    form = ConnectionAdminForm
    list_display = (
        "name",
        "engine",
        "target",
        "status",
        "last_tested_at",
        "catalogue_status",
        "catalogue_version",
        "catalogue_refreshed_at",
        "org",
    )
    list_filter = ("engine", "status", "catalogue_status")
    search_fields = ("name", "host", "database")
    list_select_related = ("org",)
    fieldsets = (
        (None, {"fields": ("name", "org", "engine", ("host", "port"), "database", ("username", "password"))}),
        ("Options", {"fields": ("options",)}),
        ("Status", {"fields": ("status", "last_tested_at", "last_error")}),
        (
            "Catalogue",
            {
                "fields": (
                    "catalogue_status",
                    "catalogue_version",
                    "catalogue_refreshed_at",
                    "catalogue_error",
                    "excluded_columns",
                )
            },
        ),
        ("History", {"fields": ("created_by", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "status",
        "last_tested_at",
        "last_error",
        "catalogue_status",
        "catalogue_version",
        "catalogue_refreshed_at",
        "catalogue_error",
        "excluded_columns",
        "created_by",
        "created_at",
        "updated_at",
    )
    actions = ("test_connections", "refresh_catalogues")

    @admin.display(description="target")
    def target(self, connection: Connection) -> str:
        if connection.is_file_engine:
            return connection.database
        port = f":{connection.port}" if connection.port else ""
        return f"{connection.host}{port}/{connection.database}"

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data.get(name) for name in EDITABLE_FIELDS}
        password = form.cleaned_data.get("password") or ""
        if change:
            saved = connection_update(
                # The service audits what changed, so it is given the connection as stored.
                connection=Connection.objects.get(pk=obj.pk),
                actor=request.user,
                data=data,
                password=password or None,
            )
        else:
            org = obj.org if self.sees_every_org(request) else request.user.org
            saved = connection_create(org=org, actor=request.user, data=data, password=password)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        connection_delete(connection=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.select_related("org"):
            connection_delete(connection=connection, actor=request.user)

    @admin.action(description="Test the selected connections")
    def test_connections(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.select_related("org"):
            ok, message = connection_test(connection=connection)
            self.message_user(
                request, f"{connection.name}: {message}", messages.SUCCESS if ok else messages.ERROR
            )

    @admin.action(description="Refresh the selected connections' catalogues")
    def refresh_catalogues(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        connections = list(queryset.select_related("org"))
        for connection in connections:
            catalogue_refresh_request(connection=connection, actor=request.user)
        self.message_user(request, f"Queued {len(connections)} catalogue refresh(es).", messages.SUCCESS)


class ReadOnlyOrgAdmin(OrgScopedAdmin):
    """Records of what happened: anyone who may see them reads them, nobody edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CatalogColumnInline(admin.TabularInline):
    model = CatalogColumn
    fields = (
        "position",
        "name",
        "data_type",
        "nullable",
        "is_primary_key",
        "references",
        "comment",
        "samples",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    # Inlines ask Django's permission table by default; here the table's admin has decided.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CatalogTable)
class CatalogTableAdmin(ReadOnlyOrgAdmin):
    org_lookup = "connection__org"
    list_display = ("__str__", "connection", "is_view", "row_estimate")
    list_filter = ("connection", "is_view")
    search_fields = ("schema", "name", "comment")
    list_select_related = ("connection",)
    fields = ("connection", "schema", "name", "is_view", "comment", "row_estimate")
    inlines = (CatalogColumnInline,)


@admin.register(QueryRun)
class QueryRunAdmin(ReadOnlyOrgAdmin):
    list_display = (
        "created_at",
        "user",
        "connection",
        "status",
        "row_count",
        "elapsed_ms",
        "statement",
        "org",
    )
    list_filter = ("status", "connection", "user")
    search_fields = ("sql", "user__email")
    list_select_related = ("user", "connection", "org")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "org",
        "connection",
        "user",
        "status",
        "sql",
        "error",
        "row_count",
        "truncated",
        "elapsed_ms",
    )

    @admin.display(description="SQL")
    def statement(self, run: QueryRun) -> str:
        return _shortened(run.sql)


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyOrgAdmin):
    list_display = (
        "created_at",
        "user",
        "connection",
        "format",
        "status",
        "rows_written",
        "finished_at",
        "statement",
        "org",
    )
    list_filter = ("status", "format", "connection", "user")
    search_fields = ("sql", "user__email")
    list_select_related = ("user", "connection", "org")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "org",
        "connection",
        "user",
        "format",
        "status",
        "sql",
        "rows_written",
        "capped",
        "error",
        "finished_at",
    )

    @admin.display(description="SQL")
    def statement(self, job: ExportJob) -> str:
        return _shortened(job.sql)


def _shortened(sql: str, length: int = 80) -> str:
    return sql if len(sql) <= length else f"{sql[: length - 1]}…"
