"""DRF plumbing shared by every app: one error body, one pagination."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from datamind.lib.exceptions import DataMindError


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def _django_validation_detail(error: DjangoValidationError) -> tuple[str, dict]:
    if hasattr(error, "error_dict"):
        fields = {name: [str(m) for e in errors for m in e.messages] for name, errors in error.error_dict.items()}
        first = next(iter(fields.values()))[0] if fields else "Invalid input."
        return first, fields
    return " ".join(error.messages), {}


def exception_handler(exc, context):
    """Every API error has the same body: {"code": ..., "detail": ..., "fields": {...}}.

    `code` is machine-readable, `detail` is a sentence for a person, `fields` maps a field name to
    its problems when the input was at fault.
    """
    if isinstance(exc, DataMindError):
        body = {"code": exc.code, "detail": exc.detail, "retryable": exc.retryable}
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail, fields = _django_validation_detail(exc)
        return Response(
            {"code": "invalid", "detail": detail, "fields": fields}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {name: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])] for name, msgs in data.items()}
        first = next(iter(fields.values()))[0] if fields else "Invalid input."
        response.data = {"code": "invalid", "detail": first, "fields": fields}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"code": str(code), "detail": str(detail)}
    return response
