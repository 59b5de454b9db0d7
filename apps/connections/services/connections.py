"""Creating, changing, testing and removing connections."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.accounts.services import audit_log_record
from apps.connections.engines import get_engine
from apps.connections.engines.base import ConnectionSpec, EngineError
from apps.connections.models import Connection, ConnectionStatus
from apps.connections.services.targets import connection_file_path, connection_target_validate

# Fields a person edits; the password is write-only and handled apart.
EDITABLE_FIELDS = ("name", "engine", "host", "port", "database", "username", "options")


def connection_spec(connection: Connection) -> ConnectionSpec:
    """What an engine needs to reach this connection, checked again (DNS may have changed)."""
    connection_target_validate(
        engine=connection.engine,
        host=connection.host,
        port=connection.port,
        database=connection.database,
        username=connection.username,
        options=connection.options,
    )
    file_path = (
        connection_file_path(engine=connection.engine, database=connection.database)
        if connection.is_file_engine
        else None
    )
    return ConnectionSpec(
        engine=connection.engine,
        host=connection.host,
        port=connection.port,
        database=connection.database,
        username=connection.username,
        password=connection.password,
        sslmode=connection.option("sslmode"),
        schema=connection.option("schema"),
        statement_timeout_s=connection.option("statement_timeout_s"),
        connect_timeout_s=connection.option("connect_timeout_s"),
        file_path=file_path,
    )


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    data = {**data}
    data["host"] = (data.get("host") or "").strip()
    data["database"] = (data.get("database") or "").strip()
    data["username"] = (data.get("username") or "").strip()
    data["options"] = connection_target_validate(
        engine=data["engine"],
        host=data["host"],
        port=data.get("port"),
        database=data["database"],
        username=data["username"],
        options=data.get("options"),
    )
    return data


def _refresh_catalogue_later(connection: Connection) -> None:
    from apps.connections.tasks import catalogue_refresh_task

    transaction.on_commit(lambda: catalogue_refresh_task.delay(connection.pk))


@transaction.atomic
def connection_create(
    *, org: Organization, actor: User, data: dict[str, Any], password: str = ""
) -> Connection:
    data = _validated(data)
    if Connection.objects.filter(org=org, name=data["name"]).exists():
        raise ValidationError({"name": "Your organisation already has a connection with this name."})
    connection = Connection(
        org=org, created_by=actor, password=password, **{f: data.get(f) for f in EDITABLE_FIELDS}
    )
    connection.full_clean(exclude=["password"])
    connection.save()
    audit_log_record(
        action="connection.create",
        org=org,
        actor=actor,
        target=connection,
        metadata={"name": connection.name, "engine": connection.engine, "host": connection.host},
    )
    _refresh_catalogue_later(connection)
    return connection


@transaction.atomic
def connection_update(
    *, connection: Connection, actor: User, data: dict[str, Any], password: str | None = None
) -> Connection:
    """Change a connection. `password=None` keeps the stored one (it is never shown to be edited)."""
    data = _validated({**{f: getattr(connection, f) for f in EDITABLE_FIELDS}, **data})
    if (
        data["name"] != connection.name
        and Connection.objects.filter(org=connection.org, name=data["name"])
        .exclude(pk=connection.pk)
        .exists()
    ):
        raise ValidationError({"name": "Your organisation already has a connection with this name."})
    changed = sorted(f for f in EDITABLE_FIELDS if data.get(f) != getattr(connection, f))
    target_changed = bool(set(changed) - {"name", "options"})
    for field in EDITABLE_FIELDS:
        setattr(connection, field, data.get(field))
    if password is not None:
        connection.password = password
        changed.append("password")
    if target_changed or password is not None:
        connection.status = ConnectionStatus.NEW
    connection.full_clean(exclude=["password"])
    connection.save()
    audit_log_record(
        action="connection.update",
        org=connection.org,
        actor=actor,
        target=connection,
        metadata={"changed": changed},
    )
    if target_changed:
        _refresh_catalogue_later(connection)
    return connection


@transaction.atomic
def connection_delete(*, connection: Connection, actor: User) -> None:
    audit_log_record(
        action="connection.delete",
        org=connection.org,
        actor=actor,
        target=connection,
        metadata={"name": connection.name, "engine": connection.engine},
    )
    connection.delete()


def connection_test(*, connection: Connection) -> tuple[bool, str]:
    """Try to connect; remember and return whether it worked and what the server said."""
    try:
        description = get_engine(connection.engine).test(connection_spec(connection))
    except ValidationError as exc:
        ok, message = False, " ".join(exc.messages)
    except EngineError as exc:
        ok, message = False, exc.detail
    else:
        ok, message = True, f"Connected: {description}."
    Connection.objects.filter(pk=connection.pk).update(
        status=ConnectionStatus.OK if ok else ConnectionStatus.ERROR,
        last_tested_at=timezone.now(),
        last_error="" if ok else message,
    )
    connection.refresh_from_db(fields=["status", "last_tested_at", "last_error"])
    return ok, message
