import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from datamind.lib.testing import Personas
from datamind.logging import make_formatter

HEX32 = re.compile(r"[0-9a-f]{32}")


class _JsonLines(logging.Handler):
    """Renders each record as production does (JSON), at the moment it is logged."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(make_formatter("json"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict]]:
    handler = _JsonLines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_supplied_request_id_is_echoed(db):
    response = Client().get("/health/", headers={"X-Request-ID": "lb-7f3a.42_x"})

    assert response["X-Request-ID"] == "lb-7f3a.42_x"


def test_a_request_id_is_generated_when_none_is_supplied(db):
    first = Client().get("/health/")["X-Request-ID"]
    second = Client().get("/health/")["X-Request-ID"]

    assert HEX32.fullmatch(first) and HEX32.fullmatch(second)
    assert first != second


@pytest.mark.parametrize(
    "supplied",
    ["has spaces", "forged\nline", "trailing-newline\n", "x" * 129, 'quote"s', "ünïcode", ""],
)
def test_an_unsafe_request_id_is_replaced_by_a_generated_one(db, supplied: str):
    response = Client().get("/health/", headers={"X-Request-ID": supplied})

    assert HEX32.fullmatch(response["X-Request-ID"])


def test_an_error_response_carries_the_request_id_too(db):
    response = Client().get("/api/v1/me/", headers={"X-Request-ID": "abc-123"})

    assert response.status_code == 401
    assert response["X-Request-ID"] == "abc-123"


def test_log_lines_of_a_session_request_carry_request_user_and_org(personas: Personas, log_lines: list[dict]):
    client = APIClient()
    client.force_login(personas.analyst)
    refresh = str(RefreshToken.for_user(personas.analyst))

    client.post(
        "/api/v1/auth/logout/", {"refresh": refresh}, format="json", headers={"X-Request-ID": "req-1"}
    )

    audit = next(line for line in log_lines if line["event"] == "audit")
    assert audit["request_id"] == "req-1"
    assert (audit["user_id"], audit["org_id"]) == (personas.analyst.pk, personas.org.pk)


def test_log_lines_of_a_token_request_carry_request_user_and_org(personas: Personas, log_lines: list[dict]):
    client = APIClient()
    refresh = RefreshToken.for_user(personas.admin)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refresh.access_token}")

    client.post(
        "/api/v1/auth/logout/", {"refresh": str(refresh)}, format="json", headers={"X-Request-ID": "req-2"}
    )

    audit = next(line for line in log_lines if line["event"] == "audit")
    assert (audit["request_id"], audit["user_id"], audit["org_id"]) == (
        "req-2",
        personas.admin.pk,
        personas.org.pk,
    )


def test_djangos_own_lines_about_a_request_carry_its_id(personas: Personas, log_lines: list[dict]):
    client = Client()
    client.force_login(personas.viewer)

    client.get("/no-such-page/", headers={"X-Request-ID": "req-404"})

    not_found = next(line for line in log_lines if line["logger"] == "django.request")
    assert not_found["event"] == "Not Found: /no-such-page/"
    assert (not_found["request_id"], not_found["user_id"]) == ("req-404", personas.viewer.pk)


def test_the_log_context_does_not_leak_into_the_next_request(personas: Personas, log_lines: list[dict]):
    client = APIClient()
    client.force_login(personas.analyst)
    refresh = str(RefreshToken.for_user(personas.analyst))
    client.post(
        "/api/v1/auth/logout/", {"refresh": refresh}, format="json", headers={"X-Request-ID": "first"}
    )
    assert structlog.contextvars.get_contextvars() == {}

    # An anonymous request that logs: a failed log-in is audited.
    APIClient().post(
        "/api/v1/auth/token/",
        {"email": "nobody@acme.test", "password": "wrong"},
        format="json",
        headers={"X-Request-ID": "second"},
    )

    second = [line for line in log_lines if line.get("request_id") == "second"]
    assert second
    assert all("user_id" not in line and "org_id" not in line for line in second)
