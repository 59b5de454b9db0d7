"""Running SQL on a connection: both locks, the row cap, the results cache and the history."""

import dataclasses
import hashlib

import structlog
from django.core.cache import cache
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.services import audit_log_record
from apps.connections.engines import get_engine
from apps.connections.engines.base import CancelRegistrar, EngineError, QueryResult
from apps.connections.models import Connection, QueryRun, QueryStatus
from apps.connections.safety import UnsafeSQLError, validate_readonly
from apps.connections.services.connections import connection_spec

logger = structlog.get_logger(__name__)


@dataclasses.dataclass
class ExecutedQuery:
    """A result and how it was obtained."""

    result: QueryResult
    sql: str
    cached: bool = False


def _cache_key(connection: Connection, safe_sql: str, row_cap: int) -> str:
    digest = hashlib.sha256(safe_sql.encode()).hexdigest()
    return f"datamind:result:{connection.pk}:{connection.catalogue_version}:{row_cap}:{digest}"


def _cache_get(key: str) -> QueryResult | None:
    try:
        return cache.get(key)
    except Exception as exc:  # a cache outage must not stop queries; they run uncached
        logger.warning("result_cache_unavailable", error=str(exc))
        return None


def _cache_set(key: str, result: QueryResult, ttl: int) -> None:
    try:
        cache.set(key, result, timeout=ttl)
    except Exception as exc:
        logger.warning("result_cache_unavailable", error=str(exc))


def sql_refusal_record(
    *, connection: Connection, user: User | None, sql: str, reason: str, rule: str
) -> None:
    audit_log_record(
        action="sql.refused",
        org=connection.org,
        actor=user,
        target=connection,
        metadata={"statement": sql[:2000], "reason": reason, "rule": rule},
    )


def sql_make_safe(*, connection: Connection, sql: str, user: User | None, row_cap: int | None = None) -> str:
    """The first lock: the validated statement (wrapped with the cap), or UnsafeSQLError, audited."""
    try:
        return validate_readonly(sql, connection.dialect, row_cap=row_cap)
    except UnsafeSQLError as exc:
        sql_refusal_record(connection=connection, user=user, sql=sql, reason=exc.detail, rule=exc.rule)
        raise


def row_cap_for(connection: Connection, requested: int | None) -> int:
    """A caller may ask for fewer rows than the connection allows, never more."""
    cap = int(connection.option("row_cap"))
    return max(1, min(cap, requested)) if requested else cap


def query_execute(
    *,
    connection: Connection,
    sql: str,
    user: User | None = None,
    row_cap: int | None = None,
    use_cache: bool = True,
    record: bool = False,
    on_cancel: CancelRegistrar | None = None,
) -> ExecutedQuery:
    """Validate, then run read-only with limits; serve from the cache when fresh.

    `record=True` keeps the statement in the user's SQL runner history. Raises UnsafeSQLError
    (refused) or EngineError (the database failed), both with a message for a person.
    """
    cap = row_cap_for(connection, row_cap)
    try:
        safe_sql = sql_make_safe(connection=connection, sql=sql, user=user, row_cap=cap)
    except UnsafeSQLError as exc:
        if record:
            _history_add(connection, user, sql, status=QueryStatus.REFUSED, error=exc.detail)
        raise
    key = _cache_key(connection, safe_sql, cap)
    ttl = int(connection.option("cache_ttl_s"))
    if use_cache and ttl and (cached := _cache_get(key)) is not None:
        if record:
            _history_add(connection, user, sql, status=QueryStatus.OK, result=cached)
        return ExecutedQuery(result=cached, sql=safe_sql, cached=True)
    try:
        result = get_engine(connection.engine).execute(
            connection_spec(connection), safe_sql, row_cap=cap, on_cancel=on_cancel
        )
    except EngineError as exc:
        if record:
            status = QueryStatus.CANCELLED if exc.code == "cancelled" else QueryStatus.ERROR
            _history_add(connection, user, sql, status=status, error=exc.detail)
        raise
    if ttl:
        _cache_set(key, result, ttl)
    if record:
        _history_add(connection, user, sql, status=QueryStatus.OK, result=result)
    return ExecutedQuery(result=result, sql=safe_sql)


@transaction.atomic
def _history_add(
    connection: Connection,
    user: User | None,
    sql: str,
    *,
    status: str,
    error: str = "",
    result: QueryResult | None = None,
) -> QueryRun:
    return QueryRun.objects.create(
        org_id=connection.org_id,
        connection=connection,
        user=user,
        sql=sql,
        status=status,
        error=error,
        row_count=result.row_count if result else None,
        truncated=result.truncated if result else False,
        elapsed_ms=result.elapsed_ms if result else None,
    )
