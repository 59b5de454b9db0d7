"""Cache backends of our own."""

from typing import Any

import structlog
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)


class RateLimitCache(RedisCache):
    """The cache django-ratelimit counts in: the same Redis, but failing open when it is away.

    While Redis cannot be reached, log-in and password-reset attempts are neither counted nor
    refused. Refusing them (failing closed) would turn a cache outage into nobody being able to
    log in, although sessions live in Postgres and everything else keeps working; a few minutes
    without the limit leave guessing bounded by the password hasher's cost. django-ratelimit fails
    open (RATELIMIT_FAIL_OPEN) only when the cache answers "unknown" instead of raising, so these
    two methods answer that.
    """

    def add(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except RedisError as exc:
            logger.warning("rate_limit_cache_unavailable", error=str(exc))
            return False

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int | None:
        try:
            return super().incr(key, delta, version)
        except RedisError as exc:
            logger.warning("rate_limit_cache_unavailable", error=str(exc))
            return None
