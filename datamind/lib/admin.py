"""The Django admin, scoped to the organisation: the base of every org-owned model's admin.

Superusers see every org. An org admin (an active user with the admin role; `User.is_staff` says
so) sees and manages only their own org's rows: another org's row is not in any list, its change
page is a 404, and no form offers it as a choice. Roles decide what an org admin may do, not
Django's per-model permission table, which nobody in DataMind maintains.
"""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import ValidationError
from django.db import models
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect


class OrgScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows, choices and permissions are limited to the org admin's org.

    `org_lookup` is the path from the model to its Organization: "org" for a model with its own
    `org` field, "session__org" for a child reached through its parent, "pk" for Organization.
    """

    org_lookup: str = "org"

    # Who is asking --------------------------------------------------------------------------

    @staticmethod
    def sees_every_org(request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    @staticmethod
    def is_admin(request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    @property
    def org_field(self) -> str | None:
        """The model's own foreign key to its org, which org admins never see or set."""
        return None if "__" in self.org_lookup or self.org_lookup == "pk" else self.org_lookup

    def org_id_of(self, obj: models.Model) -> int | None:
        *path, last = self.org_lookup.split("__")
        owner: Any = obj
        for name in path:
            owner = getattr(owner, name, None)
            if owner is None:
                return None
        return owner.pk if last == "pk" else getattr(owner, f"{last}_id")

    def in_scope(self, request: HttpRequest, obj: models.Model | None) -> bool:
        return obj is None or self.sees_every_org(request) or self.org_id_of(obj) == request.user.org_id

    # Rows ---------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if self.sees_every_org(request):
            return queryset
        return queryset.filter(**{self.org_lookup: request.user.org_id})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # The same 404 whether the row is another org's or does not exist: nothing is confirmed.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object in your organisation.")
        return obj

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        if not change and self.org_field and not self.sees_every_org(request):
            setattr(obj, f"{self.org_field}_id", request.user.org_id)
        super().save_model(request, obj, form, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            # A service refused the change (say, demoting the org's last admin). The form's
            # transaction rolled back, so nothing was saved; say why and show the form again.
            for message in error.messages:
                self.message_user(request, message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # Forms --------------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: models.Model | None = None) -> list:
        fieldsets = super().get_fieldsets(request, obj)
        hidden = self.superuser_only_fields(request)
        if not hidden:
            return fieldsets
        return [
            (name, {**options, "fields": _without(options["fields"], hidden)}) for name, options in fieldsets
        ]

    def superuser_only_fields(self, request: HttpRequest) -> set[str]:
        """Fields an org admin must not see or set; subclasses add theirs (e.g. is_superuser)."""
        if self.sees_every_org(request) or not self.org_field:
            return set()
        return {self.org_field}

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if isinstance(field, ModelChoiceField):
            field.queryset = self._scoped_choices(request, field.queryset)
        return field

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if isinstance(field, ModelMultipleChoiceField):
            field.queryset = self._scoped_choices(request, field.queryset)
        return field

    def _scoped_choices(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
        if self.sees_every_org(request):
            return queryset
        # The related model's own admin knows how it is scoped (children reach the org through
        # their parent); otherwise a model with an `org` field is scoped by it.
        related_admin = self.admin_site._registry.get(queryset.model)
        if isinstance(related_admin, OrgScopedAdmin):
            return queryset.filter(pk__in=related_admin.get_queryset(request).values("pk"))
        if any(f.name == "org" for f in queryset.model._meta.get_fields()):
            return queryset.filter(org_id=request.user.org_id)
        return queryset

    # Lists --------------------------------------------------------------------------------

    def get_list_display(self, request: HttpRequest) -> Sequence[Any]:
        columns = super().get_list_display(request)
        hidden = self.superuser_only_fields(request)
        return [c for c in columns if c not in hidden]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        filters = list(super().get_list_filter(request))
        if self.sees_every_org(request):
            return [self.org_lookup, *filters] if self.org_lookup != "pk" else filters
        # Django's related filter lists every row of the related model, other orgs' included;
        # the "related only" one lists the values present in the (scoped) rows.
        return [self._related_only(f) for f in filters]

    def _related_only(self, list_filter: Any) -> Any:
        if isinstance(list_filter, str) and get_fields_from_path(self.model, list_filter)[-1].is_relation:
            return (list_filter, admin.RelatedOnlyFieldListFilter)
        return list_filter

    # Permissions: decided by role and org, not by Django's permission table --------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.is_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.is_admin(request) and self.in_scope(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.is_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.is_admin(request) and self.in_scope(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.is_admin(request) and self.in_scope(request, obj)


def _without(fields: Sequence[Any], hidden: set[str]) -> list[Any]:
    """A fieldset's fields minus `hidden`, also inside the tuples that put fields on one line."""
    kept: list[Any] = []
    for field in fields:
        if isinstance(field, list | tuple):
            row = [f for f in field if f not in hidden]
            if row:
                kept.append(tuple(row))
        elif field not in hidden:
            kept.append(field)
    return kept
