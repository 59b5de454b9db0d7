"""Role checks in one place: viewers read, analysts also ask/run/create, admins also manage.

`role_required` guards HTML views; `HasRole` guards DRF views. Both answer 403 to a member of the
org whose role is too low; objects of another org never get this far (they are 404 by lookup).
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.accounts.models import Role

ROLE_DENIED_MESSAGE = {
    Role.ANALYST: (
        "Only analysts and admins can do this. Ask an admin of your organisation to change your role."
    ),
    Role.ADMIN: "Only admins of your organisation can do this.",
    Role.VIEWER: "Your account is not active.",
}


def role_required(minimum: Role) -> Callable:
    """Log in, belong to an org, and hold at least `minimum`; otherwise 403 with a reason."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.user.org_id is None or not request.user.has_role(minimum):
                raise PermissionDenied(ROLE_DENIED_MESSAGE[minimum])
            return view(request, *args, **kwargs)

        # Read by the isolation matrix (datamind/tests/test_isolation_matrix.py); functools.wraps
        # in outer decorators copies it up to the view the URL resolver holds.
        wrapped.minimum_role = minimum  # type: ignore[attr-defined]
        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF: the caller belongs to an org and holds at least `minimum`."""

    minimum: Role = Role.VIEWER

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.org_id is not None and user.has_role(self.minimum)):
            self.message = ROLE_DENIED_MESSAGE[self.minimum]
            return False
        return True

    @classmethod
    def at_least(cls, minimum: Role) -> type["HasRole"]:
        return type(f"HasRole{minimum.label}", (cls,), {"minimum": minimum})


IsMember = HasRole.at_least(Role.VIEWER)
IsAnalyst = HasRole.at_least(Role.ANALYST)
IsOrgAdmin = HasRole.at_least(Role.ADMIN)


class ReadOrRole(HasRole):
    """Members read; writes need `write_minimum` (analyst unless a subclass says otherwise)."""

    write_minimum: Role = Role.ANALYST

    def has_permission(self, request, view) -> bool:
        self.minimum = Role.VIEWER if request.method in SAFE_METHODS else self.write_minimum
        return super().has_permission(request, view)
