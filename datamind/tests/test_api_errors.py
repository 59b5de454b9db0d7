"""Every API error has one body, whoever raises it: {"code", "detail"} plus "fields" for bad input.

The views below raise each kind of error the project meets; this module is their URLconf.
"""

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.test import Client
from django.urls import path
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from datamind import urls as project_urls
from datamind.lib.exceptions import DataMindError
from datamind.lib.testing import Personas


class WarehouseTimeout(DataMindError):
    """The warehouse did not answer in time."""

    code = "warehouse_timeout"
    status = 504
    retryable = True


ERRORS = {
    "django-validation": lambda: DjangoValidationError(
        {"email": ["Enter a valid email."], "__all__": ["Try again."]}
    ),
    "django-validation-message": lambda: DjangoValidationError("This invitation has expired."),
    "nested": lambda: serializers.ValidationError(
        {"org": {"name": ["Too long."]}, "members": [{}, {"email": ["Enter a valid email."]}]}
    ),
    "http404": lambda: Http404("Connection 42 of org 7"),
    "django-permission": lambda: DjangoPermissionDenied("Only admins can do this."),
    "ratelimited": Ratelimited,
    "throttled": lambda: exceptions.Throttled(wait=30),
    "project": lambda: WarehouseTimeout(),
    "crash": lambda: RuntimeError("boom"),
}


class RaiseApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request, kind: str) -> Response:
        raise ERRORS[kind]()


urlpatterns = [path("api/v1/raise/<str:kind>/", RaiseApi.as_view()), *project_urls.urlpatterns]
handler404 = "datamind.lib.api.handler404"
handler500 = "datamind.lib.api.handler500"

uses_the_raising_views = pytest.mark.urls(__name__)


@pytest.fixture
def api() -> APIClient:
    return APIClient(raise_request_exception=False)


@uses_the_raising_views
def test_a_django_validation_error_becomes_a_400_naming_the_fields(api: APIClient):
    response = api.get("/api/v1/raise/django-validation/")

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Enter a valid email.",
        "fields": {"email": ["Enter a valid email."], "non_field_errors": ["Try again."]},
    }


@uses_the_raising_views
def test_a_django_validation_message_without_a_field_is_a_non_field_error(api: APIClient):
    response = api.get("/api/v1/raise/django-validation-message/")

    assert response.json() == {
        "code": "invalid",
        "detail": "This invitation has expired.",
        "fields": {"non_field_errors": ["This invitation has expired."]},
    }


@uses_the_raising_views
def test_nested_validation_errors_are_named_by_their_path(api: APIClient):
    response = api.get("/api/v1/raise/nested/")

    assert response.json()["fields"] == {
        "org.name": ["Too long."],
        "members.1.email": ["Enter a valid email."],
    }


@uses_the_raising_views
def test_a_404_does_not_repeat_what_was_looked_for(api: APIClient):
    response = api.get("/api/v1/raise/http404/")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@uses_the_raising_views
def test_a_django_permission_denied_keeps_its_reason(api: APIClient):
    response = api.get("/api/v1/raise/django-permission/")

    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "detail": "Only admins can do this."}


@uses_the_raising_views
@pytest.mark.parametrize("kind", ["ratelimited", "throttled"])
def test_every_kind_of_rate_limit_is_a_429_rate_limited(api: APIClient, kind: str):
    response = api.get(f"/api/v1/raise/{kind}/")

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"


@uses_the_raising_views
def test_drf_throttling_says_when_to_retry(api: APIClient):
    response = api.get("/api/v1/raise/throttled/")

    assert response["Retry-After"] == "30"


@uses_the_raising_views
def test_a_project_error_keeps_its_code_status_and_retryability(api: APIClient):
    response = api.get("/api/v1/raise/project/")

    assert response.status_code == 504
    assert response.json() == {
        "code": "warehouse_timeout",
        "detail": "The warehouse did not answer in time.",
        "retryable": True,
    }


@uses_the_raising_views
def test_an_unknown_api_url_is_a_404_in_the_api_shape(api: APIClient, db):
    response = api.get("/api/v1/no-such-endpoint/")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@uses_the_raising_views
def test_an_unknown_page_outside_the_api_is_still_an_html_404(db):
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@uses_the_raising_views
def test_a_crash_is_a_500_in_the_api_shape_without_details(api: APIClient):
    response = api.get("/api/v1/raise/crash/")

    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert "boom" not in response.text


# The real endpoints --------------------------------------------------------------------------


def test_no_credentials_is_a_401_that_names_the_scheme(db):
    response = APIClient().get("/api/v1/me/")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_malformed_authorization_header_is_a_401_in_the_same_shape(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not a token")

    response = client.get("/api/v1/me/")

    assert response.status_code == 401
    assert set(response.json()) == {"code", "detail"}


def test_a_session_post_without_the_csrf_token_is_a_403_in_the_same_shape(personas: Personas):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(personas.analyst)

    response = client.post(
        "/api/v1/auth/logout/", {"refresh": str(RefreshToken.for_user(personas.analyst))}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["detail"].startswith("CSRF Failed")


def test_a_wrong_method_is_a_405_in_the_same_shape(personas: Personas):
    client = APIClient()
    client.force_login(personas.admin)

    response = client.put("/api/v1/members/", {}, format="json")

    assert response.status_code == 405
    assert response.json() == {"code": "method_not_allowed", "detail": 'Method "PUT" not allowed.'}


def test_a_body_that_is_not_json_is_a_400_in_the_same_shape(db):
    response = APIClient().post("/api/v1/auth/token/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
