import asyncio

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.cache import caches

from datamind.lib.cache import RedisCache


def test_every_cache_object_of_the_process_shares_one_redis_client(settings):
    """Under ASGI a request may get its own cache object; it must not get its own connections."""
    first, second = RedisCache(settings.REDIS_URL, {}), RedisCache(settings.REDIS_URL, {})

    assert first._cache.get_client(write=True) is second._cache.get_client(write=True)
    assert first._cache.get_client() is first._cache.get_client(write=True)


def test_requests_in_their_own_threads_reuse_the_same_connection_pool(settings):
    pools = set()

    def use_the_cache() -> None:
        cache = caches["default"]
        cache.set("datamind:test:shared", 1, timeout=5)
        pools.add(id(cache._cache.get_client().connection_pool))

    async def request() -> None:
        async with ThreadSensitiveContext():
            await sync_to_async(use_the_cache)()

    async def many() -> None:
        await asyncio.gather(*(request() for _ in range(5)))

    asyncio.run(many())

    assert len(pools) == 1


def test_the_shared_client_still_adds_reads_and_deletes():
    cache = caches.create_connection("default")
    assert isinstance(cache, RedisCache)

    assert cache.add("datamind:test:cache", 1, timeout=5)
    assert not cache.add("datamind:test:cache", 2, timeout=5)
    assert cache.get("datamind:test:cache") == 1
    cache.delete("datamind:test:cache")
    assert cache.get("datamind:test:cache") is None
