"""Django's Redis cache backend, with one Redis client per connection pool.

Django's client builds a new `redis.Redis` for every cache operation; building one (its table of
response callbacks) costs more CPU than the operation's round trip to Redis (about 0.2 ms against
0.1 ms, measured on the chat's answer locks). A `redis.Redis` is safe to share between threads:
it takes a connection from its pool for each command.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _PooledClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _PooledClient
