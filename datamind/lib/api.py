"""DRF plumbing shared by every app: one error body, one pagination.

Every API error, whoever raises it (DRF, simplejwt, Django, django-ratelimit or our services),
leaves as {"code": ..., "detail": ..., "fields": {...}}: `code` is machine-readable, `detail` is a
sentence for a person, `fields` (validation errors only) maps a field to its problems.
"""

import sys
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from django_ratelimit.exceptions import Ratelimited
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, set_rollback
from rest_framework.views import exception_handler as drf_exception_handler

from datamind.lib.exceptions import DataMindError, database_unavailable

RATE_LIMITED_DETAIL = "Too many attempts. Wait a minute and try again."
DATABASE_UNAVAILABLE_DETAIL = "DataMind can't reach its database right now. Try again in a moment."
# Seconds a client is asked to wait before retrying while the database is away.
DATABASE_RETRY_AFTER_S = 5


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def paginated_response(
    *, queryset: QuerySet, serializer_class: type[serializers.Serializer], request: Request, view: APIView
) -> Response:
    """One page of `queryset` in the standard envelope (count, next, previous, results)."""
    paginator = getattr(view, "pagination_class", None) or Pagination
    pager = paginator()
    page = pager.paginate_queryset(queryset, request, view=view)
    return pager.get_paginated_response(serializer_class(page, many=True).data)


class JWTScheme(SimpleJWTScheme):
    """The schema describes our JWT authentication as the simplejwt one it extends."""

    target_class = "datamind.lib.authentication.JWTAuthentication"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "datamind.lib.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An organisation admin's API key (Settings, API keys), sent as `Api-Key <key>`.",
        }


# Errors ---------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (for the schema; the handler builds it)."""

    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, not_authenticated, rate_limited.")
    detail = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors only: each field's problems.",
    )
    retryable = serializers.BooleanField(
        required=False, help_text="Project errors only: whether trying again later could succeed."
    )

    class Meta:
        ref_name = "Error"


_ERROR_DESCRIPTIONS = {
    400: "The input is invalid; `fields` says where.",
    401: "No valid credentials (missing, expired or revoked token).",
    403: "Authenticated, but not allowed to do this.",
    404: "Not found in your organisation.",
    405: "The method is not allowed here.",
    429: "Too many attempts; wait and try again.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error statuses an endpoint can answer, all with the error body."""
    return {s: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[s]) for s in statuses}


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            key = api_settings.NON_FIELD_ERRORS_KEY
            return exceptions.ValidationError(
                {
                    key if name == NON_FIELD_ERRORS else name: [m for e in errors for m in e.messages]
                    for name, errors in exc.error_dict.items()
                }
            )
        return exceptions.ValidationError(exc.messages)
    if isinstance(exc, Ratelimited):
        return exceptions.Throttled(detail=RATE_LIMITED_DETAIL)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    return exc


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as {"org.name": [...], "items.0.email": [...]}."""
    if isinstance(errors, Mapping):
        items = errors.items()
    elif isinstance(errors, list) and any(isinstance(e, Mapping | list) for e in errors):
        items = ((str(i), e) for i, e in enumerate(errors))
    else:
        messages = errors if isinstance(errors, list) else [errors]
        return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for name, nested in items:
        flat.update(_flatten(nested, f"{prefix}.{name}" if prefix else str(name)))
    return flat


def _error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = {name: msgs for name, msgs in _flatten(exc.detail).items() if msgs}
        first = next(iter(fields.values()))[0] if fields else "Invalid input."
        return {"code": "invalid", "detail": first, "fields": fields}
    if isinstance(exc, exceptions.Throttled):
        # DRF throttles and django-ratelimit both end here: clients see one code for "slow down".
        return {"code": "rate_limited", "detail": str(exc.detail)}
    detail: Any = exc.detail
    code = getattr(detail, "code", None)
    if isinstance(detail, Mapping):
        # simplejwt puts {"detail", "code", "messages"} in the exception's detail.
        code = detail.get("code", code)
        detail = detail.get("detail", "")
    elif isinstance(detail, list):
        detail = " ".join(str(d) for d in detail)
    return {"code": str(code or exc.default_code), "detail": str(detail)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error in the same body; anything else is a real 500."""
    if isinstance(exc, DataMindError):
        set_rollback()
        return Response(
            {"code": exc.code, "detail": exc.detail, "retryable": exc.retryable}, status=exc.status
        )
    exc = _as_api_exception(exc)
    # DRF's own handler adds the WWW-Authenticate and Retry-After headers and rolls back.
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None
    response.data = _error_body(exc)
    return response


def _is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for URLs no view matched: the API error body under /api/, the page elsewhere."""
    if _is_api_request(request):
        return JsonResponse(
            {"code": "not_found", "detail": str(exceptions.NotFound.default_detail)}, status=404
        )
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """Django's 500 (after logging and Sentry saw the exception), in the API's shape under /api/.

    When the exception says our own database is unreachable, a 503 that says so instead: the
    request can succeed as soon as the database is back, without anything restarting.
    """
    exc = sys.exc_info()[1]
    if exc is not None and database_unavailable(exc):
        return _database_unavailable(request)
    if _is_api_request(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something went wrong on our side. Try again later."},
            status=500,
        )
    return defaults.server_error(request)


def _database_unavailable(request: HttpRequest) -> HttpResponse:
    # Rendered without the request: context processors and the session would ask the database.
    if _is_api_request(request):
        response: HttpResponse = JsonResponse(
            {"code": "database_unavailable", "detail": DATABASE_UNAVAILABLE_DETAIL, "retryable": True},
            status=503,
        )
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response
