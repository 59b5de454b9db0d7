"""Cache backends of our own: Django's Redis cache with one client per process, and the same
for caches that fail open (rate limits, template fragments)."""

from threading import Lock
from typing import Any

import structlog
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = Lock()


class SharedRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, with one `redis.Redis` (and its connection pool) per server
    for the whole process.

    Django builds a new `redis.Redis` for every operation, and under ASGI a new cache object (so a
    new connection pool) for every request: each request opened a new connection to Redis and
    built a client, whose driver info reads redis-py's package metadata from disk. That cost about
    a third of a warm dashboard widget's CPU (bench/dashboard.py, profiled). A `redis.Redis` is
    safe to share between threads (it takes a pooled connection per command), and its pool opens
    new connections after a fork (Celery's prefork workers).
    """

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        server = self._servers[self._get_connection_pool_index(write)]
        shared = (server, repr(sorted(self._pool_options.items(), key=lambda item: item[0])))
        client = _clients.get(shared)
        if client is None:
            with _clients_lock:
                client = _clients.get(shared)
                if client is None:
                    pool = self._pool_class.from_url(server, **self._pool_options)
                    client = _clients[shared] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient


class FailOpenRedisCache(RedisCache):
    """The same Redis, for caches that can do without it: while Redis cannot be reached, every
    read answers "nothing there" and every write is skipped, logged, instead of raising.

    Two aliases use it. Template fragments (Django's `{% cache %}`, alias "template_fragments"):
    a page is rendered in full rather than failing. Rate limits (alias "ratelimit"): log-in and
    password-reset attempts are neither counted nor refused. Refusing them (failing closed) would
    turn a cache outage into nobody being able to log in, although sessions live in Postgres and
    everything else keeps working; a few minutes without the limit leave guessing bounded by the
    password hasher's cost. django-ratelimit fails open (RATELIMIT_FAIL_OPEN) only when the cache
    answers "unknown" (add false, incr None) instead of raising.
    """

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except RedisError as exc:
            _unavailable(exc)
            return default

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        try:
            super().set(key, value, timeout, version)
        except RedisError as exc:
            _unavailable(exc)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except RedisError as exc:
            _unavailable(exc)
            return False

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int | None:
        try:
            return super().incr(key, delta, version)
        except RedisError as exc:
            _unavailable(exc)
            return None


def _unavailable(exc: RedisError) -> None:
    logger.warning("cache_unavailable", error=str(exc))
