from django.core.cache import caches

from datamind.lib.cache import RedisCache


def test_the_redis_cache_keeps_one_client_per_connection_pool(settings):
    cache = RedisCache(settings.REDIS_URL, {})

    assert cache._cache.get_client(write=True) is cache._cache.get_client(write=True)


def test_the_redis_cache_still_adds_reads_and_deletes(settings):
    cache = caches.create_connection("default")
    assert isinstance(cache, RedisCache)

    assert cache.add("datamind:test:cache", 1, timeout=5)
    assert not cache.add("datamind:test:cache", 2, timeout=5)
    assert cache.get("datamind:test:cache") == 1
    cache.delete("datamind:test:cache")
    assert cache.get("datamind:test:cache") is None
