"""`/health/`: can this process serve? Checks the database, the cache and the Celery broker.

200 when every component answers, 503 otherwise, so a load balancer or `docker compose` takes an
unhealthy replica out of rotation. The body names the failing component but not the error text
(the endpoint is public); the error itself goes to the log.
"""

import time
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from datamind.celery import app as celery_app

logger = structlog.get_logger(__name__)

# A probe must answer well within the load balancer's own timeout (deploy/Dockerfile: 5 s).
_BROKER_TIMEOUT_SECONDS = 2
DATABASE_TIMEOUT_SECONDS = 2


def _check_database() -> None:
    pool = getattr(connection, "pool", None)  # web processes have a pool (settings)
    if pool is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return
    # Not through Django's connection, which waits the pool's own timeout for a connection
    # (DATABASE_POOL_TIMEOUT, 10 s by default): while the database is away, the probe would time
    # out before it could say so.
    pool.open()  # as Django does before its first connection; a no-op once open
    with pool.connection(timeout=DATABASE_TIMEOUT_SECONDS) as conn:
        conn.execute("SELECT 1")


def _check_cache() -> None:
    key = "health:probe"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("the cache did not return what was written")


def _check_broker() -> None:
    # The URL is read from settings at each check: the Celery app caches its configuration the
    # first time it is read, which would hide a changed setting.
    with celery_app.connection_for_write(
        url=settings.CELERY_BROKER_URL, connect_timeout=_BROKER_TIMEOUT_SECONDS
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=_BROKER_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
}


def health_status() -> tuple[bool, dict[str, dict[str, Any]]]:
    components: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure makes the component unhealthy; the log says why
            logger.warning("health.check_failed", component=name, error=f"{type(exc).__name__}: {exc}")
            components[name] = {"status": "error", "error": type(exc).__name__}
        else:
            components[name] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
    healthy = all(c["status"] == "ok" for c in components.values())
    return healthy, components


@never_cache
@require_safe
def health_view(request: HttpRequest) -> JsonResponse:
    healthy, components = health_status()
    return JsonResponse(
        {"status": "ok" if healthy else "error", "components": components}, status=200 if healthy else 503
    )
