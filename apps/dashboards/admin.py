"""The dashboards admin, scoped to the org admin's organisation. External recipients (the
addresses subscriptions may send to outside the organisation) are managed here only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.accounts.services import audit_log_record
from apps.dashboards.models import Dashboard, ExternalRecipient, Subscription, SubscriptionDelivery, Widget
from datamind.lib.admin import OrgScopedAdmin


class WidgetInline(admin.TabularInline):
    model = Widget
    fields = ("title", "kind", "connection", "position", "width", "height", "refreshed_at", "last_error")
    readonly_fields = ("refreshed_at", "last_error")
    extra = 0
    show_change_link = True


@admin.register(Dashboard)
class DashboardAdmin(OrgScopedAdmin):
    list_display = ("title", "org", "owner", "visibility", "schedule_minutes", "updated_at")
    list_select_related = ("org", "owner")
    list_filter = ("visibility",)
    search_fields = ("title", "description")
    readonly_fields = ("next_refresh_at", "created_at", "updated_at")
    inlines = [WidgetInline]


@admin.register(Widget)
class WidgetAdmin(OrgScopedAdmin):
    org_lookup = "dashboard__org"
    list_display = ("title", "dashboard", "kind", "connection", "refreshed_at")
    list_select_related = ("dashboard", "connection")
    list_filter = ("kind",)
    search_fields = ("title", "sql")
    readonly_fields = ("last_result", "refreshed_at", "last_error", "created_at", "updated_at")


@admin.register(Subscription)
class SubscriptionAdmin(OrgScopedAdmin):
    list_display = ("dashboard", "cron", "attachment_format", "is_active", "next_run_at", "created_by")
    list_select_related = ("dashboard", "created_by", "org")
    list_filter = ("is_active",)
    readonly_fields = ("next_run_at", "created_at", "unsubscribed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Made on the dashboard's page, where recipients are checked and the next run computed.
        return False


@admin.register(SubscriptionDelivery)
class SubscriptionDeliveryAdmin(OrgScopedAdmin):
    org_lookup = "subscription__org"
    list_display = ("subscription", "scheduled_for", "status", "sent_at")
    list_select_related = ("subscription", "subscription__dashboard")
    list_filter = ("status",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ExternalRecipient)
class ExternalRecipientAdmin(OrgScopedAdmin):
    list_display = ("address", "org", "created_at")
    search_fields = ("address",)
    readonly_fields = ("created_at",)

    def save_model(self, request: HttpRequest, obj: ExternalRecipient, form: Any, change: bool) -> None:
        obj.address = obj.address.strip().lower()
        super().save_model(request, obj, form, change)
        audit_log_record(
            action="subscription.recipient_allowed", org=obj.org, actor=request.user, target=obj,
            metadata={"address": obj.address},
        )  # fmt: skip
