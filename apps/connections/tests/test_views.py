"""The connection pages: who sees what, the forms, the schema browser, the SQL runner, exports."""

import json
import os
import re
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import AuditLog, User
from apps.connections import tasks
from apps.connections.models import (
    CatalogColumn,
    CatalogTable,
    CatalogueStatus,
    Connection,
    ConnectionStatus,
    ExportJob,
    ExportStatus,
    QueryRun,
    QueryStatus,
)
from apps.connections.services.catalogue import catalogue_refresh
from apps.connections.services.export import export_job_run
from apps.connections.tests.conftest import free_port
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.testing import Personas

HTMX = {"HX-Request": "true"}
SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "autocommit": True}
SCRATCH_DB = f"dm_views_{os.getpid()}"
NETWORK_FORM = {
    "name": "Sales",
    "engine": "postgresql",
    "host": "127.0.0.1",
    "port": "5432",
    "database": "postgres",
    "username": "postgres",
    "sslmode": "prefer",
}

# Every URL of the app, the least role that may use it, and its method.
CONNECTION_URLS = {
    "connections:connection-detail": ("viewer", "get"),
    "connections:schema-browser": ("viewer", "get"),
    "connections:sql-runner": ("analyst", "get"),
    "connections:sql-run": ("analyst", "post"),
    "connections:export-download": ("analyst", "post"),
    "connections:export-start": ("analyst", "post"),
    "connections:connection-edit": ("admin", "get"),
    "connections:connection-delete": ("admin", "get"),
    "connections:connection-test": ("admin", "post"),
    "connections:schema-refresh": ("admin", "post"),
    "connections:column-exclude": ("admin", "post"),
}
JOB_URLS = {
    "connections:export-status": ("analyst", "get"),
    "connections:export-file": ("analyst", "get"),
}
ORG_URLS = {
    "connections:index": ("viewer", "get"),
    "connections:connection-create": ("admin", "get"),
}
ALL_URLS = {**ORG_URLS, **CONNECTION_URLS, **JOB_URLS}
RANK = {"viewer": 0, "analyst": 1, "admin": 2}


@pytest.fixture
def connection(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.org, name="Warehouse")


@pytest.fixture
def job(personas: Personas, connection: Connection) -> ExportJob:
    return ExportJob.objects.create(
        org=personas.org, connection=connection, user=personas.analyst, sql="SELECT 1 AS one", format="csv"
    )


def url_for(name: str, connection: Connection, job: ExportJob) -> str:
    if name in ORG_URLS:
        return reverse(name)
    return reverse(name, args=[job.pk if name in JOB_URLS else connection.pk])


def request(client, method: str, url: str, data: dict | None = None, **headers):
    return getattr(client, method)(url, data or {}, headers=headers)


def persona(personas: Personas, role: str) -> User:
    return getattr(personas, role)


def is_fragment(response) -> bool:
    return "<html" not in response.text and "HX-Request" in response.headers.get("Vary", "")


# Who may do what ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_URLS)
def test_anonymous_visitors_are_sent_to_log_in(client, connection, job, name):
    _, method = ALL_URLS[name]
    url = url_for(name, connection, job)

    response = request(client, method, url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize(
    ("name", "role"),
    [
        (name, role)
        for name, (minimum, _) in ALL_URLS.items()
        for role in ("viewer", "analyst")
        if RANK[role] < RANK[minimum]
    ],
)
def test_a_member_whose_role_is_too_low_is_refused(client, personas, connection, job, name, role):
    _, method = ALL_URLS[name]
    client.force_login(persona(personas, role))

    response = request(client, method, url_for(name, connection, job))

    assert response.status_code == 403


@pytest.mark.parametrize("name", {**CONNECTION_URLS, **JOB_URLS})
def test_another_organisations_connection_or_export_is_not_found(client, personas, connection, job, name):
    _, method = ALL_URLS[name]
    client.force_login(personas.outsider)

    response = request(client, method, url_for(name, connection, job), {"sql": "SELECT 1", "format": "csv"})

    assert response.status_code == 404


@pytest.mark.parametrize("name", JOB_URLS)
def test_an_export_of_another_member_of_the_org_is_not_found(client, personas, connection, job, name):
    client.force_login(personas.admin)

    response = client.get(url_for(name, connection, job))

    assert response.status_code == 404


@pytest.mark.parametrize("name", ALL_URLS)
def test_the_wrong_method_is_not_allowed(client, personas, connection, job, name):
    _, method = ALL_URLS[name]
    client.force_login(personas.admin)
    wrong = {"get": "put" if name in ORG_URLS or name.endswith(("-edit", "-delete")) else "post"}.get(
        method, "get"
    )

    response = request(client, wrong, url_for(name, connection, job))

    assert response.status_code == 405


@pytest.mark.parametrize(
    ("name", "role"),
    [
        (name, role)
        for name, (minimum, method) in ALL_URLS.items()
        if method == "get" and name not in JOB_URLS
        for role in ("viewer", "analyst", "admin")
        if RANK[role] >= RANK[minimum]
    ],
)
def test_every_page_renders_for_the_roles_that_may_see_it(client, personas, connection, job, name, role):
    client.force_login(persona(personas, role))

    response = client.get(url_for(name, connection, job))

    assert response.status_code == 200
    assert "<html" in response.text


# The list ------------------------------------------------------------------------------------------


def test_the_list_shows_each_connection_with_its_status_and_catalogue(client, personas):
    ConnectionFactory(
        org=personas.org,
        name="Finance",
        status=ConnectionStatus.ERROR,
        last_error="The server at 127.0.0.1:5432 refuses this user.",
        catalogue_status=CatalogueStatus.READY,
        catalogue_version=3,
    )
    ConnectionFactory(org=personas.other_org, name="Globex secrets")
    client.force_login(personas.viewer)

    response = client.get(reverse("connections:index"))

    assert "Finance" in response.text and "PostgreSQL" in response.text
    assert "postgres@127.0.0.1:5432</code> / <code>postgres</code>" in response.text
    assert "Failing" in response.text and "refuses this user" in response.text
    assert "v3" in response.text
    assert "Globex secrets" not in response.text
    assert reverse("connections:sql-runner", args=[1]).split("/1/")[0] in response.text
    assert "Add a connection" not in response.text


def test_an_empty_list_invites_an_admin_to_add_a_connection(client, personas):
    client.force_login(personas.admin)

    response = client.get(reverse("connections:index"))

    assert "No connections yet" in response.text
    assert f'href="{reverse("connections:connection-create")}"' in response.text


def test_an_empty_list_tells_others_that_an_admin_adds_connections(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("connections:index"))

    assert "An admin of your organisation connects" in response.text
    assert reverse("connections:connection-create") not in response.text


def test_the_list_costs_the_same_queries_however_many_connections(client, personas):
    client.force_login(personas.viewer)
    ConnectionFactory(org=personas.org)
    client.get(reverse("connections:index"))  # the session and the bell's count now cached
    with CaptureQueriesContext(db_connection) as one:
        client.get(reverse("connections:index"))
    ConnectionFactory.create_batch(6, org=personas.org)
    with CaptureQueriesContext(db_connection) as seven:
        response = client.get(reverse("connections:index"))

    assert response.text.count("connection-status-") == 7
    assert len(seven) == len(one)


# Creating, editing, testing and deleting ------------------------------------------------------


def test_an_admin_adds_a_connection_and_lands_on_its_page(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("connections:connection-create"), {**NETWORK_FORM, "password": "pw", "row_cap": "200"}
    )

    connection = Connection.objects.get(org=personas.org, name="Sales")
    assert response.status_code == 302
    assert response.url == reverse("connections:connection-detail", args=[connection.pk])
    assert connection.password == "pw" and connection.options == {"sslmode": "prefer", "row_cap": 200}
    assert AuditLog.objects.filter(action="connection.create", org=personas.org).exists()


def test_the_form_shows_network_and_file_fields_and_read_only_user_help(client, personas, settings, tmp_path):
    (tmp_path / "sales.duckdb").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a database")
    settings.CONNECTIONS_FILE_ROOT = tmp_path
    client.force_login(personas.admin)

    response = client.get(reverse("connections:connection-create"))

    text = response.text
    assert 'name="host"' in text and 'name="password"' in text and 'name="file_name"' in text
    assert '<option value="sales.duckdb">' in text and "notes.txt" not in text
    assert "<summary>Advanced</summary>" in text and 'name="row_cap"' in text
    assert "CREATE ROLE datamind_ro LOGIN PASSWORD" in text
    assert "ALTER ROLE datamind_ro SET default_transaction_read_only = on;" in text
    assert "GRANT SELECT ON analytics.* TO" in text
    assert "Save the connection first" in text


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"host": "169.254.169.254"}, "host", "Link-local and metadata addresses"),
        ({"engine": "duckdb", "file_name": "../x.duckdb", "host": "", "port": ""}, "file_name", "no folders"),
        ({"engine": "sqlite", "file_name": "/etc/passwd"}, "file_name", "no folders"),
        ({"row_cap": "0"}, "row_cap", "row_cap must be between 1 and 100000"),
    ],
)
def test_a_forbidden_target_is_shown_beside_its_field_and_nothing_is_created(
    client, personas, data, field, message
):
    client.force_login(personas.admin)

    response = client.post(reverse("connections:connection-create"), {**NETWORK_FORM, **data})

    assert response.status_code == 422
    assert not Connection.objects.exists()
    errors = re.search(rf'id="id_{field}_error">(.*?)</div>', response.text, re.S)
    assert errors is not None and message in errors.group(1)


def test_a_password_is_never_rendered_on_any_page(client, personas, django_capture_on_commit_callbacks):
    secret = "Zebra-Unicorn-7731!"
    client.force_login(personas.admin)
    client.post(reverse("connections:connection-create"), {**NETWORK_FORM, "password": secret})
    connection = Connection.objects.get(name="Sales")
    assert connection.password == secret
    pages = [
        client.get(reverse("connections:index")),
        client.get(reverse("connections:connection-detail", args=[connection.pk])),
        client.get(reverse("connections:connection-edit", args=[connection.pk])),
        client.get(reverse("connections:connection-delete", args=[connection.pk])),
        client.get(reverse("connections:schema-browser", args=[connection.pk])),
        client.get(reverse("connections:sql-runner", args=[connection.pk])),
        client.post(reverse("connections:connection-test", args=[connection.pk]), headers=HTMX),
        # A form refused for another field must not echo the password either.
        client.post(
            reverse("connections:connection-edit", args=[connection.pk]),
            {**NETWORK_FORM, "host": "169.254.169.254", "password": secret},
        ),
        client.post(
            reverse("connections:connection-create"),
            {**NETWORK_FORM, "name": "Other", "host": "169.254.169.254", "password": secret},
        ),
    ]

    assert [page.status_code for page in pages] == [200] * 7 + [422, 422]
    for page in pages:
        assert secret not in page.text


def test_an_edit_with_an_empty_password_keeps_the_saved_one(client, personas):
    connection = ConnectionFactory(org=personas.org, password="kept")
    client.force_login(personas.admin)

    response = client.post(
        reverse("connections:connection-edit", args=[connection.pk]), {**NETWORK_FORM, "name": "Renamed"}
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.name == "Renamed" and connection.password == "kept"


def test_an_edit_can_replace_or_clear_the_password(client, personas):
    connection = ConnectionFactory(org=personas.org, password="old")
    client.force_login(personas.admin)
    url = reverse("connections:connection-edit", args=[connection.pk])

    client.post(url, {**NETWORK_FORM, "password": "new"})
    connection.refresh_from_db()
    assert connection.password == "new"

    client.post(url, {**NETWORK_FORM, "clear_password": "on"})
    connection.refresh_from_db()
    assert connection.password == ""


def test_the_edit_page_shows_the_saved_values_and_tests_the_saved_connection(client, personas):
    connection = ConnectionFactory(org=personas.org, options={"row_cap": 250})
    client.force_login(personas.admin)

    response = client.get(reverse("connections:connection-edit", args=[connection.pk]))

    assert 'value="127.0.0.1"' in response.text and 'value="250"' in response.text
    assert f'hx-post="{reverse("connections:connection-test", args=[connection.pk])}"' in response.text
    assert "Clear the saved password" in response.text


def test_testing_a_working_connection_shows_the_server_version_inline(client, personas, connection):
    client.force_login(personas.admin)

    response = client.post(reverse("connections:connection-test", args=[connection.pk]), headers=HTMX)

    assert response.status_code == 200 and is_fragment(response)
    assert "It works." in response.text and "Connected: PostgreSQL" in response.text
    assert 'hx-swap-oob="true"' in response.text and "Connected</span>" in response.text
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.OK


def test_testing_a_closed_port_says_the_server_cannot_be_reached(client, personas):
    connection = ConnectionFactory(org=personas.org, port=free_port())
    client.force_login(personas.admin)

    response = client.post(reverse("connections:connection-test", args=[connection.pk]), headers=HTMX)

    assert "DataMind could not use this connection." in response.text
    assert "Could not reach the database server at 127.0.0.1" in response.text
    assert "Failing" in response.text


def test_testing_without_javascript_reports_through_a_message(client, personas):
    connection = ConnectionFactory(org=personas.org, database="no_such_db")
    client.force_login(personas.admin)

    response = client.post(reverse("connections:connection-test", args=[connection.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("connections:connection-detail", args=[connection.pk])
    assert "“no_such_db” does not exist" in response.text


def test_deleting_asks_first_then_deletes_and_says_so(client, personas, connection):
    client.force_login(personas.admin)
    url = reverse("connections:connection-delete", args=[connection.pk])

    confirm = client.get(url)
    response = client.post(url, follow=True)

    assert "Delete Warehouse?" in confirm.text
    assert Connection.objects.filter(pk=connection.pk).exists() is False
    assert response.redirect_chain[-1][0] == reverse("connections:index")
    assert "Warehouse was deleted" in response.text


# Overview ------------------------------------------------------------------------------------------


def test_the_overview_shows_recent_activity_to_analysts_but_not_to_viewers(client, personas, connection):
    QueryRun.objects.create(
        org=personas.org,
        connection=connection,
        user=personas.admin,
        sql="SELECT 'from the admin'",
        status=QueryStatus.OK,
        row_count=1,
    )
    client.force_login(personas.analyst)
    seen_by_analyst = client.get(reverse("connections:connection-detail", args=[connection.pk]))
    client.force_login(personas.viewer)
    seen_by_viewer = client.get(reverse("connections:connection-detail", args=[connection.pk]))

    assert "Recent activity" in seen_by_analyst.text and "from the admin" in seen_by_analyst.text
    assert "Recent activity" not in seen_by_viewer.text and "from the admin" not in seen_by_viewer.text
    assert "Test connection" not in seen_by_viewer.text


# Schema browser --------------------------------------------------------------------------------


SCRATCH_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, segment text, email text);
COMMENT ON TABLE customers IS 'People who bought something';
COMMENT ON COLUMN customers.segment IS 'Retail or wholesale';
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    amount numeric(10, 2),
    status text
);
COMMENT ON TABLE orders IS 'One row per order';
INSERT INTO customers (name, segment, email)
SELECT 'Customer ' || i, CASE WHEN i % 2 = 0 THEN 'retail' ELSE 'wholesale' END, 'c' || i || '@example.com'
FROM generate_series(1, 40) AS i;
INSERT INTO orders (customer_id, amount, status)
SELECT 1 + i % 40, i * 2.5, CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'shipped' END
FROM generate_series(1, 200) AS i;
ANALYZE;
"""


@pytest.fixture(scope="module")
def scratch_database() -> Iterator[str]:
    """A small Postgres database with two tables, a foreign key and comments."""
    with psycopg.connect(dbname="postgres", **SERVER) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{SCRATCH_DB}"')
    with psycopg.connect(dbname=SCRATCH_DB, **SERVER) as conn:
        conn.execute(SCRATCH_SQL)
    yield SCRATCH_DB
    with psycopg.connect(dbname="postgres", **SERVER) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


@pytest.fixture
def catalogued(personas: Personas, scratch_database: str) -> Connection:
    connection = ConnectionFactory(org=personas.org, name="Shop", database=scratch_database)
    connection = catalogue_refresh(connection_id=connection.pk)
    assert connection.catalogue_status == CatalogueStatus.READY
    return connection


def schema_url(connection: Connection, query: str = "") -> str:
    url = reverse("connections:schema-browser", args=[connection.pk])
    return f"{url}?q={query}" if query else url


def test_the_schema_lists_tables_with_columns_keys_comments_and_samples(client, personas, catalogued):
    client.force_login(personas.viewer)

    response = client.get(schema_url(catalogued))

    text = response.text
    assert 'id="table-public.customers"' in text and 'id="table-public.orders"' in text
    assert "People who bought something" in text and "Retail or wholesale" in text
    assert 'title="Primary key">PK</span>' in text
    assert "→ public.customers.id" in text and "?q=customers#table-public.customers" in text
    assert "<code>retail</code>" in text and "<code>shipped</code>" in text
    assert "c1@example.com" not in text  # sensitive columns are never sampled
    assert "Refresh schema" not in text and "Exclude" not in text


def test_searching_the_schema_filters_tables_and_answers_htmx_with_the_list_only(
    client, personas, catalogued
):
    client.force_login(personas.viewer)

    response = client.get(schema_url(catalogued, "status"), headers=HTMX)

    assert is_fragment(response)
    assert response.text.lstrip().startswith('<section id="schema-tables"')
    assert 'id="table-public.orders"' in response.text
    assert 'id="table-public.customers"' not in response.text
    assert "1 table or view matches “status”" in response.text


def test_a_search_that_matches_nothing_says_so(client, personas, catalogued):
    client.force_login(personas.viewer)

    response = client.get(schema_url(catalogued, "nothing_like_this"))

    assert "Nothing matches" in response.text


def test_an_admin_excludes_a_column_and_its_samples_are_hidden(client, personas, catalogued):
    column = CatalogColumn.objects.get(table__connection=catalogued, table__name="customers", name="segment")
    client.force_login(personas.admin)

    response = client.post(
        reverse("connections:column-exclude", args=[catalogued.pk]),
        {"column": column.pk, "excluded": "on"},
        headers=HTMX,
    )
    page = client.get(schema_url(catalogued))

    assert response.text.lstrip().startswith(f'<tr id="column-{column.pk}" class="row-muted">')
    assert "Excluded" in response.text and "Include" in response.text
    catalogued.refresh_from_db()
    assert catalogued.excluded_columns == ["public.customers.segment"]
    assert "<code>retail</code>" not in page.text and "<code>wholesale</code>" not in page.text
    assert AuditLog.objects.filter(action="connection.column_exclude").exists()


def test_an_admin_includes_an_excluded_column_again(client, personas, catalogued):
    column = CatalogColumn.objects.get(table__connection=catalogued, table__name="orders", name="status")
    client.force_login(personas.admin)
    url = reverse("connections:column-exclude", args=[catalogued.pk])
    client.post(url, {"column": column.pk, "excluded": "on"})

    response = client.post(url, {"column": column.pk}, follow=True)

    catalogued.refresh_from_db()
    assert catalogued.excluded_columns == []
    assert "public.orders.status is included again" in response.text


def test_a_column_of_another_connection_cannot_be_excluded(client, personas, catalogued, connection):
    column = CatalogColumn.objects.filter(table__connection=catalogued).first()
    client.force_login(personas.admin)

    response = client.post(
        reverse("connections:column-exclude", args=[connection.pk]), {"column": column.pk, "excluded": "on"}
    )

    assert response.status_code == 404
    connection.refresh_from_db()
    assert connection.excluded_columns == []


def catalogue_of(connection: Connection, tables: int) -> None:
    rows = CatalogTable.objects.bulk_create(
        CatalogTable(connection=connection, schema="public", name=f"t{i:04d}", row_estimate=i)
        for i in range(tables)
    )
    CatalogColumn.objects.bulk_create(
        CatalogColumn(table=row, name=f"c{j}", position=j, data_type="text", samples=["a", "b"])
        for row in rows
        for j in range(3)
    )


def test_the_schema_page_costs_the_same_queries_however_many_tables(client, personas):
    small, large = ConnectionFactory(org=personas.org), ConnectionFactory(org=personas.org)
    catalogue_of(small, 3)
    catalogue_of(large, 2000)
    client.force_login(personas.admin)
    client.get(schema_url(small))  # the session and the bell's count now cached

    with CaptureQueriesContext(db_connection) as few:
        client.get(schema_url(small))
    with CaptureQueriesContext(db_connection) as many:
        response = client.get(schema_url(large))

    assert len(many) == len(few)
    assert response.text.count('class="card table-entry"') == 50
    assert "Page 1 of 40" in response.text and "2,000 tables and views" in response.text


def test_refreshing_the_schema_queues_it_and_the_status_polls_until_it_ends(
    client, personas, catalogued, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[int] = []
    monkeypatch.setattr(tasks.catalogue_refresh_task, "delay", queued.append)
    client.force_login(personas.admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("connections:schema-refresh", args=[catalogued.pk]), headers=HTMX)
    polled = client.get(schema_url(catalogued), headers={**HTMX, "HX-Target": "catalogue-status"})

    assert queued == [catalogued.pk]
    assert response.text.lstrip().startswith('<section id="catalogue-status"')
    assert 'hx-trigger="every 1s"' in response.text and "Waiting for a worker" in response.text
    assert "every 1s" in polled.text and "HX-Trigger" not in polled.headers
    assert AuditLog.objects.filter(action="connection.catalogue_refresh", org=personas.org).exists()

    catalogue_refresh(connection_id=catalogued.pk)
    finished = client.get(schema_url(catalogued), headers={**HTMX, "HX-Target": "catalogue-status"})

    assert "every 1s" not in finished.text and "Version 2" in finished.text
    assert "catalogue-refreshed" in json.loads(finished.headers["HX-Trigger"])
    assert "HX-Target" in finished.headers["Vary"]


def test_refreshing_without_javascript_redirects_to_the_schema(client, personas, connection):
    client.force_login(personas.admin)

    response = client.post(reverse("connections:schema-refresh", args=[connection.pk]), follow=True)

    assert response.redirect_chain[-1][0] == schema_url(connection)
    assert "is being read again" in response.text
    assert "Reading the schema" in response.text


def test_a_failed_refresh_shows_why_and_keeps_the_previous_catalogue(client, personas, catalogued):
    catalogued.database = "no_such_db"
    catalogued.save()
    catalogue_refresh(connection_id=catalogued.pk)
    client.force_login(personas.viewer)

    response = client.get(schema_url(catalogued))

    assert "The last refresh failed." in response.text and "“no_such_db” does not exist" in response.text
    assert "The tables below are from the previous refresh." in response.text
    assert 'id="table-public.customers"' in response.text


# SQL runner --------------------------------------------------------------------------------------


def run(client, connection: Connection, sql: str, **data):
    return client.post(
        reverse("connections:sql-run", args=[connection.pk]), {"sql": sql, **data}, headers=HTMX
    )


def test_the_runner_is_prefilled_from_the_address(client, personas, connection):
    client.force_login(personas.analyst)

    response = client.get(
        reverse("connections:sql-runner", args=[connection.pk]), {"sql": "SELECT 42 AS answer"}
    )

    assert "SELECT 42 AS answer</textarea>" in response.text
    assert "/static/js/sql_runner.js" in response.text


def test_running_a_query_shows_typed_columns_and_the_first_page_of_rows(client, personas, connection):
    client.force_login(personas.analyst)

    response = run(client, connection, "SELECT generate_series(1, 250) AS n, 'x'::text AS label")

    assert response.status_code == 200 and is_fragment(response)
    assert response.text.lstrip().startswith('<section id="sql-results"')
    assert 'n<span class="column-type">int4</span>' in response.text
    assert "<strong>250 rows</strong>" in response.text
    assert '<td class="num">100</td>' in response.text and '<td class="num">101</td>' not in response.text
    assert "Rows 1–100 of 250 · page 1 of 3" in response.text
    assert (
        'id="sql-history" class="card sql-history" aria-labelledby="history-heading" hx-swap-oob="true"'
        in (response.text)
    )


def test_turning_a_page_of_results_serves_them_from_the_cache_without_new_history(
    client, personas, connection
):
    client.force_login(personas.analyst)
    sql = "SELECT generate_series(1, 250) AS n"
    run(client, connection, sql)

    response = run(client, connection, sql, page="3")

    assert '<td class="num">250</td>' in response.text and '<td class="num">200</td>' not in response.text
    assert "Rows 201–250 of 250 · page 3 of 3" in response.text
    assert ">cached</span>" in response.text
    assert QueryRun.objects.filter(connection=connection).count() == 1


def test_a_result_cut_by_the_row_cap_says_so(client, personas):
    connection = ConnectionFactory(org=personas.org, options={"row_cap": 50})
    client.force_login(personas.analyst)

    response = run(client, connection, "SELECT generate_series(1, 80) AS n")

    assert "Showing the first 50 rows: the connection's row cap." in response.text


@pytest.mark.parametrize(
    "sql", ["UPDATE pg_database SET datallowconn = false", "SELECT pg_sleep(5)"], ids=["update", "sleep"]
)
def test_a_statement_that_is_not_a_plain_read_is_refused_and_audited(client, personas, connection, sql):
    client.force_login(personas.analyst)

    response = run(client, connection, sql)

    assert response.status_code == 422
    assert "This statement was refused." in response.text
    entry = AuditLog.objects.get(action="sql.refused", org=personas.org)
    assert entry.actor == personas.analyst and entry.metadata["statement"] == sql
    assert entry.metadata["reason"] in response.text.replace("&#x27;", "'").replace("&quot;", '"')
    assert QueryRun.objects.get(connection=connection).status == QueryStatus.REFUSED


def test_a_database_error_is_shown_with_whether_to_retry(client, personas, connection):
    client.force_login(personas.analyst)

    response = run(client, connection, "SELECT * FROM no_such_table")

    assert response.status_code == 422
    assert "The query failed." in response.text and "no_such_table" in response.text
    assert "Fix the statement and run it again." in response.text


def test_an_empty_statement_is_refused_before_it_runs(client, personas, connection):
    client.force_login(personas.analyst)

    response = run(client, connection, "   ")

    assert response.status_code == 422 and "Write a query to run." in response.text
    assert not QueryRun.objects.exists()


def test_running_without_javascript_answers_with_the_whole_page(client, personas, connection):
    client.force_login(personas.analyst)

    response = client.post(reverse("connections:sql-run", args=[connection.pk]), {"sql": "SELECT 7 AS seven"})

    assert "<html" in response.text and '<td class="num">7</td>' in response.text
    assert "SELECT 7 AS seven</textarea>" in response.text


def test_the_history_lists_my_statements_on_this_connection_with_their_status(client, personas, connection):
    client.force_login(personas.analyst)
    run(client, connection, "SELECT 1 AS first_one")
    run(client, connection, "DELETE FROM pg_database")
    QueryRun.objects.create(
        org=personas.org, connection=connection, user=personas.admin, sql="SELECT 'not mine'", status="ok"
    )

    response = client.get(reverse("connections:sql-runner", args=[connection.pk]))

    history = response.text.split('id="sql-history"')[1]
    assert history.index("DELETE FROM pg_database") < history.index("SELECT 1 AS first_one")
    assert 'data-sql="SELECT 1 AS first_one"' in history and "?sql=SELECT%201%20AS%20first_one" in history
    assert ">Refused</span>" in history and "1 row" in history
    assert "not mine" not in history


# Exports -------------------------------------------------------------------------------------------


def test_exporting_as_csv_downloads_the_whole_result(client, personas, connection):
    client.force_login(personas.analyst)

    response = client.post(
        reverse("connections:export-download", args=[connection.pk]),
        {"sql": "SELECT generate_series(1, 3) AS n", "format": "csv"},
    )

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(r'attachment; filename="warehouse-\d{8}-\d{4}\.csv"', response["Content-Disposition"])
    assert b"".join(response.streaming_content).decode().splitlines() == ["n", "1", "2", "3"]
    assert AuditLog.objects.filter(action="connection.export", org=personas.org).exists()


def test_a_refused_export_goes_back_to_the_runner_with_the_reason(client, personas, connection):
    client.force_login(personas.analyst)
    sql = "DROP TABLE customers"

    response = client.post(
        reverse("connections:export-download", args=[connection.pk]),
        {"sql": sql, "format": "csv"},
        follow=True,
    )
    fragment = client.post(
        reverse("connections:export-download", args=[connection.pk]),
        {"sql": sql, "format": "csv"},
        headers=HTMX,
    )

    assert response.redirect_chain[-1][0].startswith(reverse("connections:sql-runner", args=[connection.pk]))
    assert "The export did not run:" in response.text and "DROP TABLE customers</textarea>" in response.text
    assert fragment.status_code == 422 and "This statement was refused." in fragment.text
    assert fragment.headers["HX-Retarget"] == "#sql-results"


def test_a_background_export_is_followed_until_its_file_can_be_downloaded(
    client, personas, connection, settings, tmp_path
):
    settings.EXPORTS_DIR = tmp_path
    client.force_login(personas.analyst)

    started = client.post(
        reverse("connections:export-start", args=[connection.pk]),
        {"sql": "SELECT generate_series(1, 5) AS n", "format": "csv"},
        headers=HTMX,
    )
    job = ExportJob.objects.get(user=personas.analyst)
    status_url = reverse("connections:export-status", args=[job.pk])

    assert started.text.lstrip().startswith(f'<div id="export-job-{job.pk}"')
    assert f'hx-get="{status_url}" hx-trigger="every 1s"' in started.text
    assert "Waiting for a worker" in started.text

    export_job_run(job_id=job.pk)
    ready = client.get(status_url, headers=HTMX)
    download = client.get(reverse("connections:export-file", args=[job.pk]))

    assert is_fragment(ready) and "every 1s" not in ready.text
    assert "5 rows written." in ready.text and reverse("connections:export-file", args=[job.pk]) in ready.text
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment;")
    assert b"".join(download.streaming_content).decode().splitlines() == ["n", "1", "2", "3", "4", "5"]


def test_the_export_status_page_works_without_javascript(client, personas, job):
    client.force_login(personas.analyst)

    response = client.get(reverse("connections:export-status", args=[job.pk]))

    assert "<html" in response.text and "SELECT 1 AS one" in response.text and "Waiting" in response.text


def test_an_export_that_is_not_ready_has_no_file(client, personas, job):
    client.force_login(personas.analyst)

    response = client.get(reverse("connections:export-file", args=[job.pk]))

    assert response.status_code == 404
    assert job.status == ExportStatus.PENDING


def test_a_failed_export_says_why(client, personas, job):
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.FAILED, error="The query ran too long.")
    client.force_login(personas.analyst)

    response = client.get(reverse("connections:export-status", args=[job.pk]), headers=HTMX)

    assert "Failed" in response.text and "The query ran too long." in response.text
