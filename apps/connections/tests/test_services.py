import pytest
from django.core.exceptions import ValidationError
from django.db import connection as db_connection

from apps.accounts.models import AuditLog
from apps.connections.models import Connection, ConnectionStatus
from apps.connections.services.connections import (
    connection_create,
    connection_delete,
    connection_test,
    connection_update,
)
from apps.connections.tests.factories import ConnectionFactory

NETWORK = {"name": "Sales", "engine": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "postgres"}


@pytest.fixture
def no_catalogue_refresh(monkeypatch):
    """Creating a connection queues a catalogue refresh; these tests look at the connection only."""
    from apps.connections import tasks

    queued = []
    monkeypatch.setattr(tasks.catalogue_refresh_task, "delay", queued.append)
    return queued


def test_creating_a_connection_audits_it_and_queues_a_catalogue_refresh(
    personas, no_catalogue_refresh, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        connection = connection_create(
            org=personas.org,
            actor=personas.admin,
            data={**NETWORK, "username": "postgres"},
            password="s3cret",
        )
    assert connection.created_by == personas.admin
    assert no_catalogue_refresh == [connection.pk]
    entry = AuditLog.objects.get(action="connection.create")
    assert entry.org == personas.org and "s3cret" not in str(entry.metadata)


def test_the_password_is_encrypted_at_rest(personas, no_catalogue_refresh):
    connection = connection_create(org=personas.org, actor=personas.admin, data=NETWORK, password="s3cret-pw")
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT password FROM connections_connection WHERE id = %s", [connection.pk])
        raw = cursor.fetchone()[0]
    assert "s3cret-pw" not in raw and raw.startswith("gAAAA")
    assert Connection.objects.get(pk=connection.pk).password == "s3cret-pw"


def test_two_connections_of_one_org_cannot_share_a_name(personas, no_catalogue_refresh):
    connection_create(org=personas.org, actor=personas.admin, data=NETWORK)
    with pytest.raises(ValidationError, match="already has a connection"):
        connection_create(org=personas.org, actor=personas.admin, data=NETWORK)
    connection_create(org=personas.other_org, actor=personas.outsider, data=NETWORK)


def test_an_edit_without_a_password_keeps_the_stored_one(personas, no_catalogue_refresh):
    connection = ConnectionFactory(org=personas.org, password="kept")
    connection_update(connection=connection, actor=personas.admin, data={"name": "Renamed"})
    connection.refresh_from_db()
    assert connection.name == "Renamed" and connection.password == "kept"
    assert AuditLog.objects.get(action="connection.update").metadata == {"changed": ["name"]}


def test_an_edit_pointing_at_a_forbidden_target_is_refused_and_changes_nothing(
    personas, no_catalogue_refresh
):
    connection = ConnectionFactory(org=personas.org)
    with pytest.raises(ValidationError, match="Link-local"):
        connection_update(connection=connection, actor=personas.admin, data={"host": "169.254.169.254"})
    connection.refresh_from_db()
    assert connection.host == "127.0.0.1"


def test_testing_a_working_connection_marks_it_connected(personas):
    connection = ConnectionFactory(org=personas.org)
    ok, message = connection_test(connection=connection)
    assert ok and message.startswith("Connected: PostgreSQL")
    assert connection.status == ConnectionStatus.OK and connection.last_tested_at is not None


def test_testing_as_a_superuser_warns_that_a_read_only_role_is_needed(personas):
    connection = ConnectionFactory(org=personas.org, username="postgres")
    ok, message = connection_test(connection=connection)
    assert ok and "as a superuser: create a read-only role" in message


def test_testing_an_unreachable_connection_says_so_and_marks_it_failing(personas):
    connection = ConnectionFactory(org=personas.org, port=5999)
    ok, message = connection_test(connection=connection)
    assert not ok and "Could not reach" in message
    assert connection.status == ConnectionStatus.ERROR and connection.last_error == message


def test_testing_a_connection_to_an_unknown_database_names_it(personas):
    connection = ConnectionFactory(org=personas.org, database="no_such_db")
    ok, message = connection_test(connection=connection)
    assert not ok and "“no_such_db” does not exist" in message


def test_deleting_a_connection_is_audited(personas):
    connection = ConnectionFactory(org=personas.org)
    connection_delete(connection=connection, actor=personas.admin)
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert AuditLog.objects.filter(action="connection.delete", org=personas.org).exists()
