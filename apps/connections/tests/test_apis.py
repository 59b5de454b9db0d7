import io
import json
import socket
from typing import Any

import openpyxl
import pytest
from django.db import connection as db_connection
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.models import AuditLog, Role, User
from apps.accounts.tests.factories import UserFactory
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
from apps.connections.services.export import export_job_run
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.permissions import ROLE_DENIED_MESSAGE
from datamind.lib.testing import Personas

LIST_URL = reverse("connections-api:connection-list")
SECRET = "pw-Zx81!unmistakable-9f3e"
NETWORK = {
    "name": "Sales",
    "engine": "postgresql",
    "host": "127.0.0.1",
    "port": 5432,
    "database": "postgres",
    "username": "postgres",
}
NOT_FOUND = {"code": "not_found", "detail": "Not found."}
ADMINS_ONLY = {"code": "permission_denied", "detail": ROLE_DENIED_MESSAGE[Role.ADMIN]}
ANALYSTS_ONLY = {"code": "permission_denied", "detail": ROLE_DENIED_MESSAGE[Role.ANALYST]}

# Every route about one connection: (method, route name, body).
ROUTES = [
    ("get", "connection-detail", None),
    ("put", "connection-detail", {**NETWORK, "name": "Renamed"}),
    ("patch", "connection-detail", {"name": "Renamed"}),
    ("delete", "connection-detail", None),
    ("post", "connection-test", None),
    ("get", "connection-schema", None),
    ("post", "connection-refresh-schema", None),
    ("post", "connection-query", {"sql": "SELECT 1 AS n"}),
    ("post", "connection-export", {"sql": "SELECT 1 AS n"}),
]
ADMIN_ROUTES = [
    r
    for r in ROUTES
    if r[1] in ("connection-test", "connection-refresh-schema") or r[0] in ("put", "patch", "delete")
]
ANALYST_ROUTES = [r for r in ROUTES if r[1] in ("connection-query", "connection-export")]


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def url(name: str, obj: Any) -> str:
    return reverse(f"connections-api:{name}", args=[obj.pk])


def call(client: APIClient, method: str, path: str, body: dict | None = None):
    return (
        getattr(client, method)(path, body, format="json")
        if body is not None
        else getattr(client, method)(path)
    )


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def warehouse(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.org, name="Sales warehouse", options={"sslmode": "disable"})


@pytest.fixture
def foreign(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.other_org, name="Globex warehouse", password="globex-secret")


# Listing and reading ----------------------------------------------------------------------------


def test_members_list_their_own_orgs_connections_only(personas: Personas, warehouse: Connection, foreign):
    ConnectionFactory(org=personas.org, name="Another warehouse")

    response = bearer(personas.viewer).get(LIST_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [c["name"] for c in body["results"]] == ["Another warehouse", "Sales warehouse"]


def test_the_connection_list_is_paginated(personas: Personas):
    for n in range(3):
        ConnectionFactory(org=personas.org, name=f"Warehouse {n}")

    body = bearer(personas.viewer).get(LIST_URL, {"page_size": 2}).json()

    assert (body["count"], len(body["results"])) == (3, 2)
    assert body["next"].endswith("page=2&page_size=2")


def test_the_connection_list_needs_a_fixed_number_of_queries(
    personas: Personas, django_assert_max_num_queries
):
    for n in range(10):
        ConnectionFactory(org=personas.org, name=f"Warehouse {n}")
    client = bearer(personas.viewer)

    with django_assert_max_num_queries(4):
        response = client.get(LIST_URL)

    assert len(response.json()["results"]) == 10


def test_a_viewer_reads_a_connection_with_its_status_and_catalogue(personas: Personas, warehouse: Connection):
    response = bearer(personas.viewer).get(url("connection-detail", warehouse))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == warehouse.pk
    assert {k: body[k] for k in ("name", "engine", "host", "port", "database", "username")} == {
        "name": "Sales warehouse",
        "engine": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "postgres",
        "username": "postgres",
    }
    assert (body["has_password"], body["options"]) == (False, {"sslmode": "disable"})
    assert (body["status"], body["catalogue_status"], body["catalogue_version"]) == ("new", "empty", 0)
    assert "password" not in body


# Creating, changing, removing -------------------------------------------------------------------


def test_an_admin_adds_a_connection_that_is_audited(personas: Personas):
    response = bearer(personas.admin).post(
        LIST_URL, {**NETWORK, "password": SECRET, "options": {"row_cap": 100}}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    connection = Connection.objects.get(pk=body["id"])
    assert (connection.org, connection.created_by, connection.password) == (
        personas.org,
        personas.admin,
        SECRET,
    )
    assert (body["name"], body["has_password"], body["options"]) == ("Sales", True, {"row_cap": 100})
    assert body["created_by"] == "admin@acme.test"
    entry = AuditLog.objects.get(action="connection.create")
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, personas.admin, str(connection.pk))


def test_the_password_is_stored_encrypted(personas: Personas):
    response = bearer(personas.admin).post(LIST_URL, {**NETWORK, "password": SECRET}, format="json")

    with db_connection.cursor() as cursor:
        cursor.execute("SELECT password FROM connections_connection WHERE id = %s", [response.json()["id"]])
        raw = cursor.fetchone()[0]
    assert SECRET not in raw
    assert raw.startswith("gAAAA")


def test_the_password_never_appears_in_any_response(personas: Personas):
    admin = bearer(personas.admin)
    created = admin.post(LIST_URL, {**NETWORK, "password": SECRET}, format="json")
    connection = Connection.objects.get(pk=created.json()["id"])

    responses = [
        created,
        admin.get(LIST_URL),
        admin.get(url("connection-detail", connection)),
        admin.patch(url("connection-detail", connection), {"name": "Renamed"}, format="json"),
        admin.put(url("connection-detail", connection), {**NETWORK, "password": SECRET}, format="json"),
        admin.post(url("connection-test", connection)),
        admin.get(url("connection-schema", connection)),
        admin.post(url("connection-refresh-schema", connection)),
        admin.post(url("connection-query", connection), {"sql": "SELECT 1 AS n"}, format="json"),
        admin.post(url("connection-query", connection), {"sql": "UPDATE t SET x = 1"}, format="json"),
        admin.options(url("connection-detail", connection)),
        admin.delete(url("connection-detail", connection)),
    ]

    for response in responses:
        assert response.status_code < 500
        assert SECRET not in response.content.decode()
    assert responses[2].json()["has_password"] is True


def test_an_edit_without_a_password_keeps_the_stored_one(personas: Personas, warehouse: Connection):
    Connection.objects.filter(pk=warehouse.pk).update(password="kept")

    response = bearer(personas.admin).patch(
        url("connection-detail", warehouse), {"name": "Renamed", "options": {"row_cap": 50}}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["has_password"]) == ("Renamed", True)
    warehouse.refresh_from_db()
    assert (warehouse.name, warehouse.options, warehouse.password) == ("Renamed", {"row_cap": 50}, "kept")
    assert AuditLog.objects.get(action="connection.update").metadata == {"changed": ["name", "options"]}


def test_an_edit_with_a_password_replaces_it_and_asks_for_a_new_test(
    personas: Personas, warehouse: Connection
):
    Connection.objects.filter(pk=warehouse.pk).update(status=ConnectionStatus.OK)

    response = bearer(personas.admin).patch(
        url("connection-detail", warehouse), {"password": SECRET}, format="json"
    )

    assert response.json()["status"] == "new"
    warehouse.refresh_from_db()
    assert warehouse.password == SECRET
    assert AuditLog.objects.get(action="connection.update").metadata == {"changed": ["password"]}


def test_put_replaces_the_settings_and_needs_every_required_field(personas: Personas, warehouse: Connection):
    client = bearer(personas.admin)

    incomplete = client.put(url("connection-detail", warehouse), {"name": "Renamed"}, format="json")
    complete = client.put(url("connection-detail", warehouse), {**NETWORK, "name": "Renamed"}, format="json")

    assert incomplete.status_code == 400
    assert set(incomplete.json()["fields"]) == {"engine", "database"}
    assert complete.status_code == 200
    warehouse.refresh_from_db()
    assert (warehouse.name, warehouse.options) == ("Renamed", {})


def test_an_admin_removes_a_connection_and_it_is_audited(personas: Personas, warehouse: Connection):
    response = bearer(personas.admin).delete(url("connection-detail", warehouse))

    assert response.status_code == 204
    assert not Connection.objects.filter(pk=warehouse.pk).exists()
    assert AuditLog.objects.get(action="connection.delete").metadata["name"] == "Sales warehouse"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"host": "169.254.169.254"}, "host", "Link-local and metadata addresses"),
        (
            {"engine": "duckdb", "host": "", "port": None, "username": "", "database": "../x.duckdb"},
            "database",
            "no folders",
        ),
        (
            {"options": {"options": "-c default_transaction_read_only=off"}},
            "options",
            "Unknown option(s): options",
        ),
        ({"options": {"row_cap": 10_000_000}}, "options", "row_cap must be between"),
    ],
    ids=["link-local-host", "file-outside-the-folder", "unknown-option", "option-out-of-bounds"],
)
def test_a_forbidden_target_is_refused_with_a_field_error(personas: Personas, changes, field, message):
    response = bearer(personas.admin).post(LIST_URL, {**NETWORK, **changes}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [field]
    assert message in body["fields"][field][0]
    assert body["detail"] == body["fields"][field][0]
    assert not Connection.objects.exists()


def test_a_connection_cannot_point_at_datamind_own_database(personas: Personas):
    own = db_connection.settings_dict["NAME"]

    response = bearer(personas.admin).post(LIST_URL, {**NETWORK, "database": own}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "database": ["A connection cannot point at DataMind's own database."]
    }


def test_an_edit_to_a_forbidden_target_changes_nothing(personas: Personas, warehouse: Connection):
    response = bearer(personas.admin).patch(
        url("connection-detail", warehouse), {"name": "Moved", "host": "169.254.169.254"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["host"]
    warehouse.refresh_from_db()
    assert (warehouse.name, warehouse.host) == ("Sales warehouse", "127.0.0.1")


def test_two_connections_of_one_org_cannot_share_a_name(personas: Personas, warehouse: Connection):
    response = bearer(personas.admin).post(LIST_URL, {**NETWORK, "name": "Sales warehouse"}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "name": ["Your organisation already has a connection with this name."]
    }


def test_malformed_input_names_every_field_at_fault(personas: Personas):
    response = bearer(personas.admin).post(
        LIST_URL, {"engine": "oracle", "port": 70000, "options": "sslmode=disable"}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"name", "engine", "port", "database", "options"}


# Who may do what --------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_only_admins_add_connections(personas: Personas, persona: str):
    response = bearer(getattr(personas, persona)).post(LIST_URL, NETWORK, format="json")

    assert response.status_code == 403
    assert response.json() == ADMINS_ONLY
    assert not Connection.objects.exists()


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
@pytest.mark.parametrize(
    ("method", "name", "body"), ADMIN_ROUTES, ids=[f"{m}-{n}" for m, n, _ in ADMIN_ROUTES]
)
def test_only_admins_change_test_or_refresh_a_connection(
    personas: Personas, warehouse: Connection, persona: str, method: str, name: str, body
):
    response = call(bearer(getattr(personas, persona)), method, url(name, warehouse), body)

    assert response.status_code == 403
    assert response.json() == ADMINS_ONLY
    warehouse.refresh_from_db()
    assert (warehouse.name, warehouse.catalogue_status) == ("Sales warehouse", CatalogueStatus.EMPTY)


@pytest.mark.parametrize(("method", "name", "body"), ANALYST_ROUTES, ids=[n for _, n, _ in ANALYST_ROUTES])
def test_viewers_cannot_run_or_export_sql(personas: Personas, warehouse: Connection, method, name, body):
    response = call(bearer(personas.viewer), method, url(name, warehouse), body)

    assert response.status_code == 403
    assert response.json() == ANALYSTS_ONLY


@pytest.mark.parametrize(("method", "name", "body"), [("get", "connection-list", None), *ROUTES])
def test_anonymous_callers_are_refused_everywhere(
    personas: Personas, warehouse: Connection, method, name, body
):
    path = LIST_URL if name == "connection-list" else url(name, warehouse)

    response = call(APIClient(), method, path, body)

    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


@pytest.mark.parametrize("persona", ["admin", "analyst", "viewer"])
@pytest.mark.parametrize(("method", "name", "body"), ROUTES, ids=[f"{m}-{n}" for m, n, _ in ROUTES])
def test_another_orgs_connection_is_not_found_on_any_route(
    personas: Personas, foreign: Connection, persona: str, method: str, name: str, body
):
    response = call(bearer(getattr(personas, persona)), method, url(name, foreign), body)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    foreign.refresh_from_db()
    assert (foreign.name, foreign.catalogue_status) == ("Globex warehouse", CatalogueStatus.EMPTY)
    assert not AuditLog.objects.filter(target_id=str(foreign.pk)).exists()
    assert not QueryRun.objects.exists()


def test_a_connection_that_does_not_exist_is_the_same_404(personas: Personas):
    response = bearer(personas.admin).get(reverse("connections-api:connection-detail", args=[999_999]))

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "connection-query"),
        ("get", "connection-test"),
        ("delete", "connection-schema"),
        ("put", "connection-export"),
    ],
)
def test_a_wrong_method_is_a_405_with_the_standard_body(
    personas: Personas, warehouse: Connection, method, name
):
    response = call(bearer(personas.admin), method, url(name, warehouse))

    assert response.status_code == 405
    assert response.json() == {
        "code": "method_not_allowed",
        "detail": f'Method "{method.upper()}" not allowed.',
    }


def test_the_list_cannot_be_deleted(personas: Personas):
    response = bearer(personas.admin).delete(LIST_URL)

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# Testing a connection ---------------------------------------------------------------------------


def test_testing_a_working_connection_says_so_and_marks_it_connected(
    personas: Personas, warehouse: Connection
):
    response = bearer(personas.admin).post(url("connection-test", warehouse))

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["message"].startswith("Connected: PostgreSQL")
    warehouse.refresh_from_db()
    assert warehouse.status == ConnectionStatus.OK


def test_testing_an_unreachable_connection_answers_why(personas: Personas):
    connection = ConnectionFactory(org=personas.org, port=free_port(), options={"connect_timeout_s": 2})

    response = bearer(personas.admin).post(url("connection-test", connection))

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert "127.0.0.1" in body["message"]
    connection.refresh_from_db()
    assert (connection.status, connection.last_error) == (ConnectionStatus.ERROR, body["message"])


# The schema catalogue ---------------------------------------------------------------------------


@pytest.fixture
def catalogue(warehouse: Connection) -> Connection:
    customers = CatalogTable.objects.create(
        connection=warehouse, schema="public", name="customers", comment="Who buys", row_estimate=120
    )
    orders = CatalogTable.objects.create(
        connection=warehouse, schema="public", name="orders", row_estimate=5000
    )
    CatalogTable.objects.create(connection=warehouse, schema="sales", name="monthly", is_view=True)
    CatalogColumn.objects.bulk_create(
        [
            CatalogColumn(
                table=customers,
                name="id",
                position=1,
                data_type="integer",
                nullable=False,
                is_primary_key=True,
            ),
            CatalogColumn(table=customers, name="email", position=2, data_type="text", samples=["a@b.test"]),
            CatalogColumn(
                table=customers, name="country", position=3, data_type="text", samples=["FR", "DE"]
            ),
            CatalogColumn(
                table=orders, name="id", position=1, data_type="bigint", nullable=False, is_primary_key=True
            ),
            CatalogColumn(
                table=orders,
                name="customer_id",
                position=2,
                data_type="integer",
                references="public.customers.id",
                comment="The buyer",
            ),
        ]
    )
    warehouse.excluded_columns = ["public.customers.email"]
    warehouse.save()
    return warehouse


def test_a_viewer_browses_the_schema_without_the_excluded_columns(personas: Personas, catalogue: Connection):
    response = bearer(personas.viewer).get(url("connection-schema", catalogue))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    customers, orders, monthly = body["results"]
    assert {
        k: customers[k] for k in ("schema", "name", "qualified_name", "is_view", "comment", "row_estimate")
    } == {
        "schema": "public",
        "name": "customers",
        "qualified_name": "public.customers",
        "is_view": False,
        "comment": "Who buys",
        "row_estimate": 120,
    }
    assert [c["name"] for c in customers["columns"]] == ["id", "country"]
    assert customers["columns"][0] == {
        "name": "id",
        "type": "integer",
        "nullable": False,
        "pk": True,
        "references": "",
        "comment": "",
        "samples": [],
    }
    assert orders["columns"][1]["references"] == "public.customers.id"
    assert orders["columns"][1]["comment"] == "The buyer"
    assert (monthly["qualified_name"], monthly["is_view"], monthly["columns"]) == ("sales.monthly", True, [])
    assert "a@b.test" not in response.content.decode()


def test_the_schema_can_be_searched_by_table_or_column_name(personas: Personas, catalogue: Connection):
    client = bearer(personas.viewer)

    by_table = client.get(url("connection-schema", catalogue), {"search": "month"}).json()
    by_column = client.get(url("connection-schema", catalogue), {"search": "customer_id"}).json()

    assert [t["qualified_name"] for t in by_table["results"]] == ["sales.monthly"]
    assert [t["qualified_name"] for t in by_column["results"]] == ["public.orders"]


def test_the_schema_is_paginated(personas: Personas, catalogue: Connection):
    body = (
        bearer(personas.viewer).get(url("connection-schema", catalogue), {"page_size": 2, "page": 2}).json()
    )

    assert body["count"] == 3
    assert [t["name"] for t in body["results"]] == ["monthly"]
    assert body["next"] is None


def test_the_schema_needs_a_fixed_number_of_queries(
    personas: Personas, catalogue: Connection, django_assert_max_num_queries
):
    for n in range(20):
        table = CatalogTable.objects.create(connection=catalogue, schema="extra", name=f"t{n}")
        CatalogColumn.objects.create(table=table, name="id", position=1, data_type="int")
    client = bearer(personas.viewer)

    with django_assert_max_num_queries(6):
        response = client.get(url("connection-schema", catalogue))

    assert response.json()["count"] == 23


def test_an_admin_queues_a_schema_refresh(
    personas: Personas, warehouse: Connection, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.connections import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.catalogue_refresh_task, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = bearer(personas.admin).post(url("connection-refresh-schema", warehouse))

    assert response.status_code == 202
    body = response.json()
    assert body["catalogue_status"] == CatalogueStatus.REFRESHING
    assert body["catalogue_progress"]["phase"] == "queued"
    assert queued == [warehouse.pk]
    entry = AuditLog.objects.get(target_id=str(warehouse.pk))
    assert (entry.org, entry.actor) == (personas.org, personas.admin)


# Running SQL ------------------------------------------------------------------------------------


def query(client: APIClient, connection: Connection, sql: str, **extra: Any):
    return client.post(url("connection-query", connection), {"sql": sql, **extra}, format="json")


def test_an_analyst_runs_a_query_and_gets_its_rows(personas: Personas, warehouse: Connection):
    response = query(bearer(personas.analyst), warehouse, "SELECT generate_series(1, 10) AS n")

    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == [{"name": "n", "type": "int4"}]
    assert body["rows"] == [[n] for n in range(1, 11)]
    assert (body["row_count"], body["truncated"], body["cached"]) == (10, False, False)
    assert isinstance(body["elapsed_ms"], int)
    run = QueryRun.objects.get()
    assert (run.user, run.status, run.row_count) == (personas.analyst, QueryStatus.OK, 10)


def test_a_query_is_cut_at_the_limit_asked_for_and_says_so(personas: Personas, warehouse: Connection):
    response = query(bearer(personas.analyst), warehouse, "SELECT generate_series(1, 10) AS n", limit=3)

    body = response.json()
    assert body["rows"] == [[1], [2], [3]]
    assert (body["row_count"], body["truncated"]) == (3, True)


def test_a_query_is_never_cut_above_the_connections_row_cap(personas: Personas):
    connection = ConnectionFactory(org=personas.org, options={"row_cap": 5})

    body = query(
        bearer(personas.analyst), connection, "SELECT generate_series(1, 10) AS n", limit=1000
    ).json()

    assert (body["row_count"], body["truncated"]) == (5, True)


def test_the_same_query_again_is_answered_from_the_cache_unless_asked_not_to(
    personas: Personas, warehouse: Connection
):
    client = bearer(personas.analyst)
    sql = "SELECT generate_series(1, 3) AS n"

    first = query(client, warehouse, sql).json()
    second = query(client, warehouse, sql).json()
    fresh = query(client, warehouse, sql, use_cache=False).json()

    assert (first["cached"], second["cached"], fresh["cached"]) == (False, True, False)
    assert first["rows"] == second["rows"] == fresh["rows"]


@pytest.mark.parametrize(
    ("sql", "detail", "rule"),
    [
        (
            "UPDATE pg_class SET relname = 'x'",
            "Only read-only queries can run: this statement contains UPDATE.",
            "write_node",
        ),
        ("SELECT pg_sleep(1)", "Function pg_sleep is not allowed.", "function"),
        ("SELECT 1; SELECT 2", "Only one statement can run at a time.", "multiple_statements"),
    ],
    ids=["update", "pg_sleep", "two-statements"],
)
def test_a_statement_that_is_not_one_read_only_query_is_refused_and_audited(
    personas: Personas, warehouse: Connection, sql: str, detail: str, rule: str
):
    response = query(bearer(personas.analyst), warehouse, sql)

    assert response.status_code == 400
    assert response.json() == {"code": "unsafe_sql", "detail": detail, "rule": rule, "retryable": False}
    entry = AuditLog.objects.get(action="sql.refused")
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, personas.analyst, str(warehouse.pk))
    assert entry.metadata == {"statement": sql, "reason": detail, "rule": rule}
    assert QueryRun.objects.get().status == QueryStatus.REFUSED


def test_a_query_past_its_time_limit_is_a_504_that_may_be_retried(personas: Personas):
    connection = ConnectionFactory(org=personas.org, options={"statement_timeout_s": 1})

    response = query(
        bearer(personas.analyst), connection, "SELECT count(*) FROM generate_series(1, 10000000000)"
    )

    assert response.status_code == 504
    assert response.json() == {
        "code": "timeout",
        "detail": "The query ran longer than 1 s and was cancelled on the server.",
        "retryable": True,
    }


def test_a_database_error_is_a_400_with_the_databases_reason(personas: Personas, warehouse: Connection):
    response = query(bearer(personas.analyst), warehouse, "SELECT * FROM no_such_table")

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["retryable"]) == ("query_error", False)
    assert "no_such_table" in body["detail"]
    assert QueryRun.objects.get().status == QueryStatus.ERROR


def test_a_query_needs_its_sql(personas: Personas, warehouse: Connection):
    response = bearer(personas.analyst).post(url("connection-query", warehouse), {"limit": 0}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"sql", "limit"}


# Exports ----------------------------------------------------------------------------------------


def export(client: APIClient, connection: Connection, sql: str, **extra: Any):
    return client.post(url("connection-export", connection), {"sql": sql, **extra}, format="json")


def test_an_export_streams_the_whole_result_as_csv(personas: Personas, warehouse: Connection):
    response = export(
        bearer(personas.analyst), warehouse, "SELECT n, n * 2 AS twice FROM generate_series(1, 3) AS n"
    )

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sales-warehouse-')
    assert response["Content-Disposition"].endswith('.csv"')
    content = b"".join(response.streaming_content).decode()
    assert content.splitlines() == ["n,twice", "1,2", "2,4", "3,6"]
    entry = AuditLog.objects.get(action="connection.export")
    assert (entry.actor, entry.metadata["format"]) == (personas.analyst, "csv")


def test_an_export_is_sent_to_a_client_that_accepts_only_csv_and_so_are_its_errors(
    personas: Personas, warehouse: Connection
):
    client = bearer(personas.analyst)
    path = url("connection-export", warehouse)

    sent = client.post(path, {"sql": "SELECT 1 AS n"}, format="json", HTTP_ACCEPT="text/csv")
    refused = client.post(path, {"sql": "DELETE FROM t"}, format="json", HTTP_ACCEPT="text/csv")

    assert sent.status_code == 200
    assert b"".join(sent.streaming_content).decode().splitlines() == ["n", "1"]
    assert refused.status_code == 400
    assert refused.json()["code"] == "unsafe_sql"


def test_an_export_has_no_row_cap(personas: Personas):
    connection = ConnectionFactory(org=personas.org, options={"row_cap": 5})

    response = export(bearer(personas.analyst), connection, "SELECT generate_series(1, 100) AS n")

    assert len(b"".join(response.streaming_content).decode().splitlines()) == 101


def test_an_export_as_xlsx_is_a_workbook(personas: Personas, warehouse: Connection):
    response = export(bearer(personas.analyst), warehouse, "SELECT generate_series(1, 3) AS n", format="xlsx")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"].endswith('.xlsx"')
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    assert [list(row) for row in workbook.active.iter_rows(values_only=True)] == [["n"], [1], [2], [3]]


def test_an_export_of_a_refused_statement_is_refused_before_any_byte(
    personas: Personas, warehouse: Connection
):
    response = export(bearer(personas.analyst), warehouse, "DELETE FROM pg_class")

    assert response.status_code == 400
    assert not response.streaming
    assert response.json()["code"] == "unsafe_sql"
    assert AuditLog.objects.filter(action="sql.refused").exists()
    assert not AuditLog.objects.filter(action="connection.export").exists()


def test_an_export_of_a_failing_query_is_a_400_before_any_byte(personas: Personas, warehouse: Connection):
    response = export(bearer(personas.analyst), warehouse, "SELECT * FROM no_such_table")

    assert response.status_code == 400
    assert response.json()["code"] == "query_error"


def test_a_background_export_is_queued_and_followed_to_its_file(
    personas: Personas, warehouse: Connection, settings, tmp_path
):
    settings.EXPORTS_DIR = tmp_path
    client = bearer(personas.analyst)

    response = export(client, warehouse, "SELECT generate_series(1, 25) AS n", background=True)

    assert response.status_code == 202
    body = response.json()
    job = ExportJob.objects.get(pk=body["id"])
    assert (job.user, job.connection, job.format) == (personas.analyst, warehouse, "csv")
    status_url = f"http://testserver{reverse('connections-api:export-detail', args=[job.pk])}"
    assert response["Location"] == body["url"] == status_url
    assert (body["status"], body["rows_written"], body["download_url"]) == ("pending", 0, None)

    export_job_run(job_id=job.pk)
    ready = client.get(body["url"]).json()

    assert (ready["status"], ready["rows_written"], ready["error"]) == (ExportStatus.READY, 25, "")
    assert ready["download_url"] == f"http://testserver{reverse('connections:export-file', args=[job.pk])}"
    assert ready["finished_at"] is not None


def test_a_background_export_of_a_refused_statement_queues_nothing(personas: Personas, warehouse: Connection):
    response = export(bearer(personas.analyst), warehouse, "DROP TABLE pg_class", background=True)

    assert response.status_code == 400
    assert response.json()["code"] == "unsafe_sql"
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("who", ["colleague", "outsider"])
def test_someone_elses_export_is_not_found(personas: Personas, who: str):
    job = ExportJob.objects.create(
        org=personas.org,
        connection=ConnectionFactory(org=personas.org),
        user=personas.analyst,
        sql="SELECT 1",
        format="csv",
    )
    caller = UserFactory(org=personas.org, role=Role.ADMIN) if who == "colleague" else personas.outsider

    response = bearer(caller).get(reverse("connections-api:export-detail", args=[job.pk]))

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_an_export_job_needs_authentication(personas: Personas):
    response = APIClient().get(reverse("connections-api:export-detail", args=[1]))

    assert response.status_code == 401


def test_the_export_job_is_read_only(personas: Personas):
    response = bearer(personas.analyst).delete(reverse("connections-api:export-detail", args=[1]))

    assert response.status_code == 405
    assert json.loads(response.content)["code"] == "method_not_allowed"
