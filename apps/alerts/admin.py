"""Alerts in the Django admin, per org. Events, deliveries and notifications are records: read-only."""

from django.contrib import admin

from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Notification
from apps.alerts.services.alerts import alert_update
from datamind.lib.admin import OrgScopedAdmin


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(OrgScopedAdmin):
    list_display = (
        "name",
        "owner",
        "connection",
        "condition_kind",
        "schedule_kind",
        "state",
        "is_active",
        "next_run_at",
    )
    list_filter = ("state", "is_active", "condition_kind", "schedule_kind")
    search_fields = ("name", "sql")

    exclude = ("channels",)

    def get_readonly_fields(self, request, obj=None) -> tuple:
        # The SQL, condition and schedule are checked together by the alert form and the API;
        # here an admin renames, pauses, mutes or changes the cooldown.
        editable = {"name", "is_active", "muted_until", "cooldown_minutes"}
        names = [f.name for f in self.model._meta.fields if f.name not in editable and f.name != "id"]
        return tuple(n for n in names if n not in self.exclude)

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        alert_update(alert=obj)  # recomputes the next run for a paused or resumed alert


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyMixin, OrgScopedAdmin):
    org_lookup = "alert__org"
    list_display = ("alert", "scheduled_for", "state", "value", "expected", "score", "evaluated_at")
    list_filter = ("state",)
    exclude = ("points", "rows", "columns")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyMixin, OrgScopedAdmin):
    org_lookup = "event__alert__org"
    list_display = ("event", "kind", "reason", "target", "status", "attempts", "sent_at")
    list_filter = ("kind", "status", "reason")
    exclude = ("config",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, OrgScopedAdmin):
    list_display = ("title", "user", "level", "created_at", "read_at")
    list_filter = ("level",)
