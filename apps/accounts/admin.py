"""The accounts admin: organisations, users, invitations and the audit log, scoped to the org.

Changes that the rest of DataMind makes through services (a role change, a deactivation, an
invitation, a revocation) go through the same services here, so the last admin stays protected,
invitation emails are sent, and the audit log records who did what.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.forms import BaseUserCreationForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.timezone import now
from django.views.decorators.debug import sensitive_post_parameters

from apps.accounts import services
from apps.accounts.models import ApiKey, AuditLog, Invitation, Organization, User
from datamind.lib.admin import OrgScopedAdmin

admin.site.site_header = "DataMind admin"
admin.site.site_title = "DataMind admin"
admin.site.index_title = "Administration"


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_lookup = "pk"
    list_display = ("name", "slug", "plan", "timezone", "created_at")
    list_filter = ("plan",)
    search_fields = ("name", "slug")
    fields = ("name", "slug", "plan", "timezone", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Organization | None = None) -> tuple[str, ...]:
        if self.sees_every_org(request):
            return ("created_at",)
        # The plan is billing's to change, and the slug is part of links already handed out.
        return ("slug", "plan", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.sees_every_org(request)

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return self.sees_every_org(request)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # The service audits what changed, so it is given the org as stored, not as edited.
        services.organization_update(
            org=Organization.objects.get(pk=obj.pk),
            actor=request.user,
            name=obj.name,
            timezone_name=obj.timezone,
        )
        if self.sees_every_org(request):
            super().save_model(request, obj, form, change)  # the plan and slug, theirs alone to edit


class UserCreationForm(BaseUserCreationForm):
    """A new user with a password typed twice (and checked by the password validators)."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class UserChangeForm(forms.ModelForm):
    """A user's details; the password is never shown (people reset their own)."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


@admin.register(User)
class UserAdmin(OrgScopedAdmin):
    list_display = ("email", "full_name", "role", "is_active", "org", "last_login")
    list_filter = ("role", "is_active")
    search_fields = ("email", "full_name")
    list_select_related = ("org",)
    readonly_fields = ("last_login", "date_joined")
    add_fields = ("email", "full_name", "role", "org", "is_superuser", "password1", "password2")
    change_fields = (
        "email",
        "full_name",
        "role",
        "is_active",
        "org",
        "is_superuser",
        "last_login",
        "date_joined",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        queryset = super().get_queryset(request)
        # A superuser who also belongs to an org is still not theirs to edit.
        return queryset if self.sees_every_org(request) else queryset.filter(is_superuser=False)

    def get_fields(self, request: HttpRequest, obj: User | None = None) -> tuple[str, ...]:
        return self.add_fields if obj is None else self.change_fields

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # People leave by deactivation, which keeps their audit trail and the org's last admin.
        return self.sees_every_org(request)

    def superuser_only_fields(self, request: HttpRequest) -> set[str]:
        hidden = super().superuser_only_fields(request)
        return hidden if self.sees_every_org(request) else hidden | {"is_superuser"}

    def get_form(
        self, request: HttpRequest, obj: User | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = UserCreationForm if obj is None else UserChangeForm
        return super().get_form(request, obj, change, **kwargs)

    @method_decorator(sensitive_post_parameters("password1", "password2"))
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            services.audit_log_record(
                action="user.create",
                org=obj.org,
                actor=request.user,
                target=obj,
                metadata={"email": obj.email, "role": obj.role, "via": "admin"},
                request=request,
            )
            return
        wanted_role, wanted_active = obj.role, obj.is_active
        stored = User.objects.get(pk=obj.pk)
        obj.role, obj.is_active = stored.role, stored.is_active
        super().save_model(request, obj, form, change)
        # Role and activity go through the services: they keep the org's last admin and audit.
        if wanted_role != obj.role:
            services.user_change_role(actor=request.user, user=obj, role=wanted_role)
        if wanted_active and not obj.is_active:
            services.user_reactivate(actor=request.user, user=obj)
        elif obj.is_active and not wanted_active:
            services.user_deactivate(actor=request.user, user=obj)


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    list_display = ("email", "role", "org", "status", "invited_by", "created_at", "expires_at")
    list_filter = ("role",)
    search_fields = ("email",)
    list_select_related = ("org", "invited_by")
    fields = ("email", "role", "org", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at")
    add_fields = ("email", "role", "org")
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: Invitation | None = None) -> tuple[str, ...]:
        return self.add_fields if obj is None else self.fields

    @admin.display(description="status")
    def status(self, invitation: Invitation) -> str:
        if invitation.accepted_at:
            return "accepted"
        if invitation.revoked_at:
            return "revoked"
        return "expired" if invitation.expires_at <= now() else "pending"

    # An invitation is a promise already emailed: it is revoked, never edited or deleted.
    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        invitation = services.user_invite(
            org=obj.org if self.sees_every_org(request) else request.user.org,
            invited_by=request.user,
            email=obj.email,
            role=obj.role,
            base_url=request.build_absolute_uri("/"),
        )
        obj.pk = invitation.pk
        obj.refresh_from_db()

    @admin.action(description="Revoke the selected invitations")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        pending = queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True).select_related("org")
        revoked = [services.invitation_revoke(invitation=i, actor=request.user) for i in pending]
        self.message_user(request, f"Revoked {len(revoked)} invitation(s).", messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(OrgScopedAdmin):
    """The audit trail: read-only for everyone, superusers included, so it can be trusted."""

    list_display = ("created_at", "action", "actor", "org", "target_type", "target_id", "ip")
    list_filter = ("action", "actor", "created_at")
    search_fields = ("action", "target_id", "actor__email", "ip")
    list_select_related = ("actor", "org")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "action",
        "org",
        "actor",
        "target_type",
        "target_id",
        "metadata",
        "ip",
        "user_agent",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(OrgScopedAdmin):
    """API keys, to see and revoke. Keys are made on the Settings page, the only place the key
    itself is shown; revoking (not deleting) keeps who made it and when it was last used."""

    list_display = ("name", "prefix", "role", "org", "created_by", "created_at", "last_used_at", "revoked_at")
    list_filter = ("role", "created_at")
    search_fields = ("name", "prefix", "created_by__email")
    list_select_related = ("org", "created_by")
    fields = ("name", "prefix", "role", "org", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        # The queryset is already scoped to the admin's org by OrgScopedAdmin.
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("org"):
            services.api_key_revoke(api_key=api_key, actor=request.user)
        self.message_user(request, "The selected keys are revoked.", messages.SUCCESS)
