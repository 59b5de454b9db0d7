"""DRF authentication classes. Kept apart from `datamind.lib.api`: DRF imports these while its
views module loads, so this module must not import `rest_framework.views` (directly or not)."""

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
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


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>`: an org admin's key for an integration (see `ApiKey`).

    Tried after JWT; a request with no such header is left to the other authenticators.
    """

    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        from apps.accounts import services  # the accounts app loads after DRF reads its settings

        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the key as `Authorization: Api-Key <key>`.")
        try:
            user, api_key = services.api_key_authenticate(key=parts[1].decode(errors="replace"))
        except services.ApiKeyInvalid as error:
            raise exceptions.AuthenticationFailed(str(error))
        bind_user(user)
        return user, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
