"""A warehouse going away in the middle of a query: the user is told at once that the connection
was lost (nothing waits for the statement timeout), and the next query works once it is back."""

import threading
import time

import pytest
from django.urls import reverse

from apps.connections.models import Engine
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.testing import TcpProxy

pytestmark = pytest.mark.django_db

# Each runs for far longer than the statement timeout: only the cut can end it before that. The
# server notices the lost client only when it writes the result, so its own timeout ends the
# query there (leaving nothing running on the shared servers).
STATEMENT_TIMEOUT_S = 8
SLOW_QUERIES = {
    Engine.POSTGRESQL: "SELECT count(*) FROM generate_series(1, 2000000000)",
    Engine.MYSQL: "SELECT sum(seq % 7) FROM seq_1_to_2000000000",  # MariaDB's sequence engine
}
SERVERS = {
    Engine.POSTGRESQL: {"port": 5432, "database": "postgres", "username": "postgres"},
    Engine.MYSQL: {"port": 3306, "database": "mysql", "username": "root"},
}


@pytest.mark.parametrize("engine", [Engine.POSTGRESQL, Engine.MYSQL])
def test_a_warehouse_hanging_up_mid_query_is_a_clear_error_and_the_next_query_works(client, personas, engine):
    proxy = TcpProxy(SERVERS[engine]["port"])
    connection = ConnectionFactory(org=personas.org, engine=engine, **{**SERVERS[engine], "port": proxy.port})
    connection.options = {**connection.options, "statement_timeout_s": STATEMENT_TIMEOUT_S}
    connection.save()
    client.force_login(personas.analyst)
    url = reverse("connections-api:connection-query", args=[connection.pk])
    cut = threading.Timer(1.0, proxy.cut)
    try:
        cut.start()
        started = time.monotonic()
        response = client.post(url, {"sql": SLOW_QUERIES[engine], "use_cache": False}, "application/json")
        elapsed = time.monotonic() - started

        assert response.status_code == 400, response.content
        assert response.json() == {
            "code": "query_error",
            "detail": "The connection to the database was lost during the query.",
            "retryable": True,
        }
        assert elapsed < STATEMENT_TIMEOUT_S / 2

        proxy.restore()
        response = client.post(
            url, {"sql": "SELECT 41 + 1 AS answer", "use_cache": False}, "application/json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["rows"] == [[42]]
    finally:
        cut.cancel()
        proxy.close()
