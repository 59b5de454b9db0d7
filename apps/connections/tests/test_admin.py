import pytest
from django.contrib.messages import get_messages
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse

from apps.accounts.models import AuditLog, Role, User
from apps.accounts.tests.factories import UserFactory
from apps.connections.models import (
    CatalogColumn,
    CatalogTable,
    CatalogueStatus,
    Connection,
    ConnectionStatus,
    ExportJob,
    QueryRun,
    QueryStatus,
)
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.testing import Personas

SECRET = "pw-Qm27?never-rendered-4c1a"
FORM = {
    "name": "Sales",
    "engine": "postgresql",
    "host": "127.0.0.1",
    "port": "5432",
    "database": "postgres",
    "username": "postgres",
    "password": "",
    "options": "{}",
}


@pytest.fixture
def superuser(db) -> User:
    return UserFactory(org=None, is_superuser=True, role=Role.ADMIN, email="root@datamind.test")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def changelist(model: str) -> str:
    return reverse(f"admin:connections_{model}_changelist")


def add(model: str) -> str:
    return reverse(f"admin:connections_{model}_add")


def change(obj) -> str:
    return reverse(f"admin:connections_{obj._meta.model_name}_change", args=[obj.pk])


def delete(obj) -> str:
    return reverse(f"admin:connections_{obj._meta.model_name}_delete", args=[obj.pk])


@pytest.fixture
def warehouse(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.org, name="Acme warehouse", password=SECRET)


@pytest.fixture
def foreign(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.other_org, name="Globex warehouse")


@pytest.fixture
def records(personas: Personas, warehouse: Connection, foreign: Connection) -> dict:
    """A catalogue table, a query and an export in each org, with names that are easy to look for."""
    table = CatalogTable.objects.create(connection=warehouse, schema="public", name="acme_orders")
    CatalogColumn.objects.create(table=table, name="order_total", position=1, data_type="numeric")
    return {
        "table": table,
        "other_table": CatalogTable.objects.create(connection=foreign, schema="public", name="globex_orders"),
        "run": QueryRun.objects.create(
            org=personas.org,
            connection=warehouse,
            user=personas.analyst,
            sql="SELECT 'acme-query'",
            status=QueryStatus.OK,
        ),
        "other_run": QueryRun.objects.create(
            org=personas.other_org,
            connection=foreign,
            user=personas.outsider,
            sql="SELECT 'globex-query'",
            status=QueryStatus.OK,
        ),
        "export": ExportJob.objects.create(
            org=personas.org,
            connection=warehouse,
            user=personas.analyst,
            sql="SELECT 'acme-export'",
            format="csv",
        ),
        "other_export": ExportJob.objects.create(
            org=personas.other_org,
            connection=foreign,
            user=personas.outsider,
            sql="SELECT 'globex-export'",
            format="csv",
        ),
    }


# Who sees what ----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_members_below_admin_are_sent_to_the_admin_login(personas: Personas, persona: str):
    response = logged_in(getattr(personas, persona)).get(changelist("connection"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_an_org_admin_sees_the_connections_models_in_the_admin(personas: Personas):
    response = logged_in(personas.admin).get(reverse("admin:index"))

    for model in ("connection", "catalogtable", "queryrun", "exportjob"):
        assert changelist(model) in response.text


def test_an_org_admin_lists_only_their_own_orgs_connections_with_status_and_catalogue(
    personas: Personas, warehouse: Connection, foreign: Connection
):
    Connection.objects.filter(pk=warehouse.pk).update(
        status=ConnectionStatus.OK, catalogue_status=CatalogueStatus.READY, catalogue_version=7
    )

    response = logged_in(personas.admin).get(changelist("connection"))

    assert response.status_code == 200
    assert "Acme warehouse" in response.text
    assert "Globex warehouse" not in response.text
    for column in ("status", "catalogue_status", "catalogue_version", "catalogue_refreshed_at", "target"):
        assert f"column-{column}" in response.text
    assert "Connected" in response.text and "Ready" in response.text
    assert "127.0.0.1:5432/postgres" in response.text
    assert "column-org" not in response.text


def test_a_superuser_lists_every_orgs_connections(
    superuser: User, warehouse: Connection, foreign: Connection
):
    response = logged_in(superuser).get(changelist("connection"))

    assert "Acme warehouse" in response.text and "Globex warehouse" in response.text
    assert "column-org" in response.text


def test_another_orgs_connection_is_a_404_for_an_org_admin(personas: Personas, foreign: Connection):
    client = logged_in(personas.admin)

    assert client.get(change(foreign)).status_code == 404
    assert client.post(change(foreign), {**FORM, "name": "Stolen"}).status_code == 404
    assert client.post(delete(foreign), {"post": "yes"}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "Globex warehouse"


def test_the_connection_change_form_never_renders_the_password(personas: Personas, warehouse: Connection):
    response = logged_in(personas.admin).get(change(warehouse))

    assert response.status_code == 200
    assert SECRET not in response.text
    assert '<input type="password" name="password"' in response.text
    field = response.context["adminform"].form["password"]
    assert field.value() in (None, "")


def test_a_refused_form_does_not_render_the_password_it_was_given(personas: Personas, warehouse: Connection):
    response = logged_in(personas.admin).post(
        change(warehouse), {**FORM, "host": "169.254.169.254", "password": "typed-" + SECRET}
    )

    assert response.status_code == 200
    assert SECRET not in response.text


# Adding and changing goes through the services --------------------------------------------------


def test_an_org_admin_adds_a_connection_to_their_org_and_it_is_audited(personas: Personas):
    response = logged_in(personas.admin).post(
        add("connection"),
        {**FORM, "password": SECRET, "options": '{"row_cap": 100}', "org": personas.other_org.pk},
    )

    assert response.status_code == 302
    connection = Connection.objects.get(name="Sales")
    assert (connection.org, connection.created_by) == (personas.org, personas.admin)
    assert (connection.password, connection.options) == (SECRET, {"row_cap": 100})
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT password FROM connections_connection WHERE id = %s", [connection.pk])
        assert SECRET not in cursor.fetchone()[0]
    entry = AuditLog.objects.get(action="connection.create")
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, personas.admin, str(connection.pk))


def test_a_superuser_adds_a_connection_to_the_org_they_choose(superuser: User, personas: Personas):
    response = logged_in(superuser).post(add("connection"), {**FORM, "org": personas.other_org.pk})

    assert response.status_code == 302
    assert Connection.objects.get(name="Sales").org == personas.other_org


def test_an_empty_password_keeps_the_current_one_and_the_change_is_audited(
    personas: Personas, warehouse: Connection
):
    response = logged_in(personas.admin).post(change(warehouse), {**FORM, "name": "Renamed"})

    assert response.status_code == 302
    warehouse.refresh_from_db()
    assert (warehouse.name, warehouse.password) == ("Renamed", SECRET)
    entry = AuditLog.objects.get(action="connection.update")
    assert (entry.actor, entry.metadata) == (personas.admin, {"changed": ["name"]})


def test_a_new_password_replaces_the_current_one(personas: Personas, warehouse: Connection):
    logged_in(personas.admin).post(
        change(warehouse), {**FORM, "name": "Acme warehouse", "password": "new-one"}
    )

    warehouse.refresh_from_db()
    assert warehouse.password == "new-one"
    assert AuditLog.objects.get(action="connection.update").metadata == {"changed": ["password"]}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"host": "169.254.169.254"},
            "host",
            "Link-local and metadata addresses (169.254.0.0/16) are not allowed.",
        ),
        (
            {"engine": "duckdb", "host": "", "port": "", "username": "", "database": "../x.duckdb"},
            "database",
            "Give just the file name (no folders): files must be in the warehouse folder.",
        ),
        ({"options": '{"options": "-c x=y"}'}, "options", "Unknown option(s): options."),
    ],
    ids=["link-local-host", "file-outside-the-folder", "unknown-option"],
)
def test_a_forbidden_target_is_refused_on_its_field_in_the_admin(
    personas: Personas, warehouse: Connection, changes: dict, field: str, message: str
):
    client = logged_in(personas.admin)

    added = client.post(add("connection"), {**FORM, "name": "New", **changes})
    changed = client.post(change(warehouse), {**FORM, **changes})

    for response in (added, changed):
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == [field]
        assert errors[field][0].startswith(message)
        assert message.split(" (")[0] in response.text
    assert not Connection.objects.filter(name="New").exists()
    warehouse.refresh_from_db()
    assert (warehouse.engine, warehouse.host, warehouse.options) == ("postgresql", "127.0.0.1", {})
    assert not AuditLog.objects.exists()


def test_a_name_already_taken_in_the_org_is_refused_with_the_reason(
    personas: Personas, warehouse: Connection
):
    response = logged_in(personas.admin).post(add("connection"), {**FORM, "name": "Acme warehouse"})

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Your organisation already has a connection with this name."
    ]
    assert Connection.objects.filter(name="Acme warehouse").count() == 1


def test_deleting_a_connection_in_the_admin_is_audited(personas: Personas, warehouse: Connection):
    response = logged_in(personas.admin).post(delete(warehouse), {"post": "yes"})

    assert response.status_code == 302
    assert not Connection.objects.filter(pk=warehouse.pk).exists()
    entry = AuditLog.objects.get(action="connection.delete")
    assert (entry.actor, entry.metadata["name"]) == (personas.admin, "Acme warehouse")


def test_deleting_several_connections_at_once_audits_each_and_spares_other_orgs(
    personas: Personas, warehouse: Connection, foreign: Connection
):
    second = ConnectionFactory(org=personas.org, name="Second")

    response = logged_in(personas.admin).post(
        changelist("connection"),
        {
            "action": "delete_selected",
            "_selected_action": [warehouse.pk, second.pk, foreign.pk],
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert list(Connection.objects.values_list("name", flat=True)) == ["Globex warehouse"]
    assert AuditLog.objects.filter(action="connection.delete").count() == 2


def test_the_test_action_tests_each_selected_connection(personas: Personas, warehouse: Connection):
    response = logged_in(personas.admin).post(
        changelist("connection"), {"action": "test_connections", "_selected_action": [warehouse.pk]}
    )

    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Acme warehouse: Connected: PostgreSQL")
    warehouse.refresh_from_db()
    assert warehouse.status == ConnectionStatus.OK


def test_the_refresh_action_queues_a_refresh_of_each_selected_catalogue(
    personas: Personas,
    warehouse: Connection,
    foreign: Connection,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from apps.connections import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.catalogue_refresh_task, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        logged_in(personas.admin).post(
            changelist("connection"),
            {"action": "refresh_catalogues", "_selected_action": [warehouse.pk, foreign.pk]},
        )

    assert queued == [warehouse.pk]
    warehouse.refresh_from_db()
    foreign.refresh_from_db()
    assert (warehouse.catalogue_status, foreign.catalogue_status) == ("refreshing", "empty")


# The catalogue, the history and the exports are read-only records -------------------------------


@pytest.mark.parametrize(
    ("model", "mine", "theirs"),
    [
        ("catalogtable", "acme_orders", "globex_orders"),
        ("queryrun", "acme-query", "globex-query"),
        ("exportjob", "acme-export", "globex-export"),
    ],
)
def test_an_org_admin_lists_only_their_own_orgs_records(
    personas: Personas, records: dict, model: str, mine: str, theirs: str
):
    response = logged_in(personas.admin).get(changelist(model))

    assert response.status_code == 200
    assert mine in response.text
    assert theirs not in response.text
    assert "Globex warehouse" not in response.text


@pytest.mark.parametrize("record", ["other_table", "other_run", "other_export"])
def test_another_orgs_record_is_a_404(personas: Personas, records: dict, record: str):
    response = logged_in(personas.admin).get(change(records[record]))

    assert response.status_code == 404


@pytest.mark.parametrize("record", ["table", "run", "export"])
def test_records_are_read_only_even_for_a_superuser(
    personas: Personas, superuser: User, records: dict, record: str
):
    obj = records[record]
    model = obj._meta.model_name

    for client in (logged_in(personas.admin), logged_in(superuser)):
        page = client.get(change(obj))
        assert page.status_code == 200
        assert 'name="_save"' not in page.text
        assert client.get(add(model)).status_code == 403
        assert client.post(delete(obj), {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_a_catalogue_table_shows_its_columns_read_only(personas: Personas, records: dict):
    response = logged_in(personas.admin).get(change(records["table"]))

    assert response.status_code == 200
    assert "order_total" in response.text
    assert "numeric" in response.text
    assert 'name="columns-0-name"' not in response.text


def test_the_connection_changelist_needs_a_fixed_number_of_queries(
    personas: Personas, django_assert_max_num_queries
):
    for n in range(10):
        ConnectionFactory(org=personas.org, name=f"Warehouse {n}")
    client = logged_in(personas.admin)

    with django_assert_max_num_queries(8):
        response = client.get(changelist("connection"))

    assert response.status_code == 200
