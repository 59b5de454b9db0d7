"""Security headers on every response, and the client address behind trusted proxies."""

import ipaddress

import pytest
from django.test import RequestFactory, override_settings

from datamind.middleware import TrustedProxyMiddleware, client_address

NGINX = [ipaddress.ip_network("10.0.0.0/8")]


def test_pages_get_a_policy_that_allows_only_our_own_scripts_and_styles(client):
    response = client.get("/accounts/login/")

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"].startswith("'self'")
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"


def test_responses_carry_the_referrer_permissions_and_framing_headers(client):
    response = client.get("/health/")

    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),
        # The client may prepend anything; only the hop our proxy appended is believed.
        ("10.0.0.5", "1.2.3.4, 203.0.113.7", "203.0.113.7"),
        # Two trusted proxies in a row: skip both.
        ("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7"),
        # Not from a trusted proxy: the header is the client's own claim and is ignored.
        ("198.51.100.1", "203.0.113.7", "198.51.100.1"),
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
        ("10.0.0.5", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_is_read_only_as_far_as_trusted_proxies_vouch(remote, forwarded, expected):
    assert client_address(remote, forwarded, NGINX) == expected


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_the_middleware_puts_the_real_client_in_remote_addr():
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    seen = {}

    TrustedProxyMiddleware(lambda r: seen.setdefault("ip", r.META["REMOTE_ADDR"]))(request)

    assert seen["ip"] == "203.0.113.7"


@override_settings(TRUSTED_PROXIES=[])
def test_without_trusted_proxies_the_forwarded_header_is_ignored():
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    seen = {}

    TrustedProxyMiddleware(lambda r: seen.setdefault("ip", r.META["REMOTE_ADDR"]))(request)

    assert seen["ip"] == "10.1.1.1"


@override_settings(TRUSTED_PROXIES=["127.0.0.1/32"], LOGIN_RATE="2/m")
def test_login_rate_limits_count_per_real_client_behind_the_proxy(client, personas):
    def attempt(ip: str, email: str) -> int:
        data = {"email": email, "password": "wrong"}
        return client.post("/accounts/login/", data, HTTP_X_FORWARDED_FOR=ip).status_code

    # A different email each time, so only the per-IP limit can be reached.
    statuses = [attempt("203.0.113.7", f"someone{n}@acme.test") for n in range(3)]

    assert statuses[-1] == 429
    assert attempt("198.51.100.9", "another@acme.test") != 429


def test_a_peer_without_an_address_counts_as_local_so_rate_limits_still_work():
    request = RequestFactory().get("/")
    del request.META["REMOTE_ADDR"]
    seen = {}

    TrustedProxyMiddleware(lambda r: seen.setdefault("ip", r.META["REMOTE_ADDR"]))(request)

    assert seen["ip"] == "127.0.0.1"
