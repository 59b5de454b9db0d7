"""Sessions kept in Postgres and read through the cache (SESSION_ENGINE)."""

import structlog
from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)


class SessionStore(cached_db.SessionStore):
    """Django's cached_db sessions, which keep working while Redis is away.

    Every request reads its session; from Redis that is one GET instead of a query. Postgres stays
    the record: a session is written there first and a cached copy is only ever a copy. Django's
    own store raises when the cache cannot be reached while loading or deleting a session; here a
    Redis outage only means reading from Postgres. A copy is kept at most SESSION_CACHE_SECONDS:
    a log-out that could not drop it (Redis away at that moment, then back with its data) leaves
    the session usable for at most that long. The async variants are not overridden: our views
    are sync and Channels loads sessions through the sync methods.
    """

    cache_key_prefix = "datamind.session."

    def load(self) -> dict:
        try:
            data = self._cache.get(self.cache_key)
        except RedisError as exc:
            logger.warning("session_cache_unavailable", error=str(exc))
            return DatabaseSessionStore.load(self)
        if data is not None:
            return data
        session = self._get_session_from_db()
        if session is None:
            return {}
        data = self.decode(session.session_data)
        self._cache_set(data, self.get_expiry_age(expiry=session.expire_date))
        return data

    def exists(self, session_key: str) -> bool:
        return DatabaseSessionStore.exists(self, session_key)

    def save(self, must_create: bool = False) -> None:
        DatabaseSessionStore.save(self, must_create)
        self._cache_set(self._session, self.get_expiry_age())

    def delete(self, session_key: str | None = None) -> None:
        DatabaseSessionStore.delete(self, session_key)
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
