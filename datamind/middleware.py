import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Any

import sentry_sdk
import structlog
from django.conf import settings
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCAL_PEER = "127.0.0.1"


def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_address(remote_addr: str, forwarded_for: str, trusted: list[Network]) -> str:
    """The address of the client, reading X-Forwarded-For only as far as trusted proxies vouch.

    Walk the chain from the right (the hop nearest to us) while each hop is a trusted proxy; the
    first address that is not one is the client. Anything further left was written by the client
    itself and could be forged, so it is never read. A garbled entry stops the walk at the last
    trusted hop, as does an empty header.
    """
    current = _parse_address(remote_addr)
    if current is None or not any(current in network for network in trusted):
        return remote_addr
    for hop in reversed([part for part in forwarded_for.split(",") if part.strip()]):
        address = _parse_address(hop)
        if address is None:
            break
        current = address
        if not any(address in network for network in trusted):
            break
    return str(current)


class TrustedProxyMiddleware:
    """Behind nginx, REMOTE_ADDR is the proxy: put the real client there for rate limits and audit.

    Only requests that come from a proxy listed in TRUSTED_PROXIES have X-Forwarded-For read, so a
    client talking to a replica directly cannot pick its own address. Without the setting the
    header is ignored.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.trusted = [ipaddress.ip_network(net, strict=False) for net in settings.TRUSTED_PROXIES]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        # A peer without an address is on this machine (a Unix socket); rate limits need one.
        remote = meta.get("REMOTE_ADDR") or LOCAL_PEER
        meta["REMOTE_ADDR"] = (
            client_address(remote, meta.get("HTTP_X_FORWARDED_FOR", ""), self.trusted)
            if self.trusted
            else remote
        )
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """Send PERMISSIONS_POLICY as the Permissions-Policy header (Django has no setting for it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
