"""The billing admin. Prices are global (superusers edit them, org admins read them); budget
settings go through `budget_update` so a change is audited; periods, reservations and the ledger
are records of what happened: read-only, each org admin seeing only their org's."""

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from apps.billing.models import BudgetPeriod, BudgetSettings, ModelPrice, Reservation, UsageRecord
from apps.billing.services import budget_update
from datamind.lib.admin import OrgScopedAdmin


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("provider", "model", "input_per_million", "output_per_million", "updated_at")
    list_filter = ("provider",)
    search_fields = ("model",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(BudgetSettings)
class BudgetSettingsAdmin(OrgScopedAdmin):
    list_display = ("org", "monthly_override", "warn_at_80", "warn_at_100", "updated_by", "updated_at")
    list_select_related = ("org", "updated_by")
    fields = ("org", "monthly_override", "warn_at_80", "warn_at_100", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Removing the row would silently drop an override; clearing the field is the way.
        return False

    def save_model(self, request: HttpRequest, obj: BudgetSettings, form: Any, change: bool) -> None:
        org = obj.org if self.sees_every_org(request) else request.user.org
        saved = budget_update(
            org=org,
            actor=request.user,
            override=form.cleaned_data.get("monthly_override"),
            warn_at_80=form.cleaned_data.get("warn_at_80", True),
            warn_at_100=form.cleaned_data.get("warn_at_100", True),
        )
        obj.pk = saved.pk
        obj.refresh_from_db()


class ReadOnlyOrgAdmin(OrgScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(BudgetPeriod)
class BudgetPeriodAdmin(ReadOnlyOrgAdmin):
    list_display = ("period_start", "period_end", "budget", "used", "reserved", "warned_80_at", "org")
    list_select_related = ("org",)
    date_hierarchy = "starts_at"


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyOrgAdmin):
    list_display = ("created_at", "user", "amount", "expires_at", "settled_at", "released_at", "org")
    list_filter = ("user",)
    list_select_related = ("user", "org")
    date_hierarchy = "created_at"


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyOrgAdmin):
    list_display = (
        "created_at",
        "user",
        "provider",
        "model",
        "purpose",
        "input_tokens",
        "output_tokens",
        "estimated_cost",
        "org",
    )
    list_filter = ("purpose", "provider", "user")
    search_fields = ("model", "user__email")
    list_select_related = ("user", "org")
    date_hierarchy = "created_at"
