"""`/health/`: is this process able to serve? Checks the database, the cache and the broker."""

import time

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from datamind.celery import app as celery_app


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    key = "health:probe"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("the cache did not return what was written")


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


def health_status() -> tuple[bool, dict]:
    components = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure makes the component unhealthy; say which and why
            components[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            components[name] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
    healthy = all(c["status"] == "ok" for c in components.values())
    return healthy, components


@never_cache
@require_GET
def health_view(request: HttpRequest) -> JsonResponse:
    healthy, components = health_status()
    return JsonResponse(
        {"status": "ok" if healthy else "error", "components": components}, status=200 if healthy else 503
    )
