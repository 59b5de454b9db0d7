import re
import uuid
from collections.abc import Callable
from typing import Any

import sentry_sdk
import structlog
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from datamind.logging import bind_user

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied id is honoured only if it is short and plain, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id_for(supplied: str) -> str:
    """The supplied id when it is safe to log, else a new one (32 hex digits)."""
    return supplied if _VALID_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Honour or generate X-Request-ID, bind it to every log line, echo it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER, ""))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Start from an empty context: a worker thread serves many requests one after another.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        sentry_sdk.set_tag("request_id", request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _clear_log_context(**kwargs: Any) -> None:
    structlog.contextvars.clear_contextvars()


# The context is cleared when the response is closed, not when the middleware returns, so that
# Django's own "Not Found: /x" and error lines (logged after the middleware chain) still carry it.
request_finished.connect(_clear_log_context, dispatch_uid="datamind.clear_log_context")


class LogContextMiddleware:
    """Bind the session's user and their org to the log context (after authentication).

    API requests authenticated by a token are bound by `datamind.lib.authentication.JWTAuthentication`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            bind_user(user)
        return self.get_response(request)
