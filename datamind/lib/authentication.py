"""DRF authentication classes. Kept apart from `datamind.lib.api`: DRF imports these while its
views module loads, so this module must not import `rest_framework.views` (directly or not)."""

from typing import Any

from rest_framework.request import Request
from rest_framework_simplejwt import authentication

from datamind.logging import bind_user


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's authentication, plus the caller bound to the log context.

    DRF authenticates inside the view, after `LogContextMiddleware` has run, so a token user
    would otherwise be missing from the request's log lines.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            bind_user(result[0])
        return result
