"""Sessions kept in Postgres and read through the cache (SESSION_ENGINE)."""

import structlog
from django.conf import settings
from django.contrib.sessions.backends import db
from django.core.cache import caches
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)


class SessionStore(db.SessionStore):
    """Django's database sessions with a copy of each in the cache, like its cached_db engine,
    but working on while Redis is away.

    Every request reads its session; from Redis that is one GET instead of a query. Postgres stays
    the record: a session is written there first and the cached copy is only a copy. Django's
    cached_db raises when the cache cannot be reached while loading or deleting a session; here a
    Redis outage only means reading from Postgres. A copy is kept at most SESSION_CACHE_SECONDS:
    a log-out that could not drop it (Redis away at that moment, then back with its data) leaves
    the session usable for at most that long. Only the sync methods are cached: our views are
    sync, and Channels loads sessions through them.
    """

    cache_key_prefix = "datamind.session."

    def __init__(self, session_key: str | None = None) -> None:
        self._cache = caches[settings.SESSION_CACHE_ALIAS]
        super().__init__(session_key)

    @property
    def cache_key(self) -> str:
        return self.cache_key_prefix + self._get_or_create_session_key()

    def load(self) -> dict:
        try:
            data = self._cache.get(self.cache_key)
        except RedisError as exc:
            logger.warning("session_cache_unavailable", error=str(exc))
            return super().load()
        if data is not None:
            return data
        session = self._get_session_from_db()
        if session is None:
            return {}
        data = self.decode(session.session_data)
        self._cache_set(data, self.get_expiry_age(expiry=session.expire_date))
        return data

    def save(self, must_create: bool = False) -> None:
        super().save(must_create)
        self._cache_set(self._session, self.get_expiry_age())

    def delete(self, session_key: str | None = None) -> None:
        super().delete(session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except RedisError as exc:
            logger.warning("session_cache_delete_failed", error=str(exc))

    def _cache_set(self, data: dict, age: int) -> None:
        try:
            self._cache.set(self.cache_key, data, min(age, settings.SESSION_CACHE_SECONDS))
        except RedisError as exc:
            logger.warning("session_cache_unavailable", error=str(exc))
