"""Outages of what DataMind depends on, on real processes: its own Postgres and Redis taken away
and brought back (through a `TcpProxy`, the shared servers are never stopped) and a warehouse
hanging up mid-query. Each time the user gets a clear answer within a bounded time, and the same
processes serve normally again once the service is back, without restarting anything."""

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from django.db import InterfaceError, OperationalError
from django.test import Client

from datamind.lib.api import DATABASE_UNAVAILABLE_DETAIL
from datamind.lib.exceptions import database_unavailable
from datamind.lib.testing import PRODUCTION_WEB, TcpProxy, subprocess_environment, wait_for

POOL_TIMEOUT_S = float(PRODUCTION_WEB["DATABASE_POOL_TIMEOUT"])
DOCKER_HEALTHCHECK_TIMEOUT_S = 5  # deploy/Dockerfile's HEALTHCHECK --timeout


def _session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


@pytest.fixture
def postgres_proxy(transactional_db):
    from django.db import connection

    settings_dict = connection.settings_dict
    proxy = TcpProxy(int(settings_dict["PORT"] or 5432), settings_dict["HOST"] or "127.0.0.1")
    yield proxy
    proxy.close()


def _get_all(http: requests.Session, url: str, times: int) -> set[int]:
    """Status codes of `times` requests, four at a time (so the pool holds several connections)."""
    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(lambda _: http.get(url, timeout=30).status_code, range(times)))


def test_postgres_going_away_gives_clean_503s_and_the_same_web_process_recovers(
    asgi_servers, postgres_proxy, personas
):
    database_url = postgres_proxy.url(subprocess_environment()["DATABASE_URL"])
    url = asgi_servers.start(**PRODUCTION_WEB, DATABASE_URL=database_url)
    http = requests.Session()
    http.cookies.update(_session_cookie(personas.analyst))
    assert _get_all(http, f"{url}/connections/", 8) == {200}

    # A restart between requests: every pooled connection dies with it, and the pool checks each
    # one before lending it, so no request is handed a dead connection.
    postgres_proxy.cut()
    postgres_proxy.restore()
    assert _get_all(http, f"{url}/connections/", 8) == {200}

    # Down for a while: pages and the API say so, within the pool's timeout.
    postgres_proxy.cut()
    for path in ("/connections/", "/api/v1/connections/"):
        started = time.monotonic()
        response = http.get(f"{url}{path}", timeout=30)
        assert time.monotonic() - started < POOL_TIMEOUT_S + 3
        assert response.status_code == 503, response.text[:500]
        assert response.headers["Retry-After"]
        if path.startswith("/api/"):
            assert response.json() == {
                "code": "database_unavailable",
                "detail": DATABASE_UNAVAILABLE_DETAIL,
                "retryable": True,
            }
        else:
            assert "DataMind can't reach its database right now" in response.text
            assert "Traceback" not in response.text
    health = requests.get(f"{url}/health/", timeout=30)  # a probe sends no session cookie
    assert health.status_code == 503
    assert health.json()["components"]["database"]["status"] == "error"

    postgres_proxy.restore()
    wait_for(
        lambda: http.get(f"{url}/connections/", timeout=30).status_code == 200,
        timeout=20,
        message="the web process did not recover once Postgres was back",
    )
    assert _get_all(http, f"{url}/api/v1/connections/", 8) == {200}
    assert requests.get(f"{url}/health/", timeout=10).status_code == 200


def test_the_health_probe_says_postgres_is_away_within_its_own_timeout(asgi_servers, postgres_proxy):
    database_url = postgres_proxy.url(subprocess_environment()["DATABASE_URL"])
    # A pool timeout far longer than the probe may take.
    url = asgi_servers.start(**{**PRODUCTION_WEB, "DATABASE_POOL_TIMEOUT": "30"}, DATABASE_URL=database_url)
    assert requests.get(f"{url}/health/", timeout=30).status_code == 200

    postgres_proxy.cut()
    started = time.monotonic()
    health = requests.get(f"{url}/health/", timeout=30)

    assert time.monotonic() - started < DOCKER_HEALTHCHECK_TIMEOUT_S
    assert health.status_code == 503
    assert health.json()["components"]["database"]["status"] == "error"
    postgres_proxy.restore()
    wait_for(
        lambda: requests.get(f"{url}/health/", timeout=30).status_code == 200,
        timeout=20,
        message="the probe did not see Postgres come back",
    )


@pytest.mark.parametrize(
    ("cause", "unavailable"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown(), True),  # 57P01: a restart ended the session
        (psycopg.errors.CannotConnectNow(), True),  # 57P03: still starting up
        (psycopg.errors.TooManyConnections(), True),
        (psycopg.errors.QueryCanceled(), False),  # 57014: a statement timeout is not an outage
        (psycopg.errors.SerializationFailure(), False),
    ],
)
def test_only_errors_that_mean_the_database_is_away_count_as_unavailable(cause, unavailable):
    exc = OperationalError(str(cause))
    exc.__cause__ = cause

    assert database_unavailable(exc) is unavailable
    assert database_unavailable(InterfaceError("connection already closed"))
    assert not database_unavailable(ValueError())
