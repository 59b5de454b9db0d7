"""Accounts while Redis is away, taken away through a `TcpProxy` in front of the real one.

Rate limits fail open, deliberately (datamind.lib.cache.FailOpenRedisCache): attempts are neither
counted nor refused until Redis is back; then the limits count again. Sessions, read through the
cache (datamind.lib.sessions), are read from Postgres instead."""

import pytest
import redis
from django.urls import reverse

from datamind.lib.sessions import SessionStore

pytestmark = pytest.mark.django_db

ATTEMPTS = 7  # more than the 5 a minute allowed


def _log_in(client, email: str, password: str) -> int:
    return client.post(reverse("accounts:login"), {"email": email, "password": password}).status_code


def test_login_rate_limits_fail_open_while_redis_is_down_and_count_again_after(
    client, personas, password, caches_through_proxy
):
    caches_through_proxy.cut()
    assert [_log_in(client, "analyst@acme.test", "wrong") for _ in range(ATTEMPTS)] == [422] * ATTEMPTS
    assert _log_in(client, "analyst@acme.test", password) == 302
    client.logout()

    caches_through_proxy.restore()
    codes = [_log_in(client, "viewer@acme.test", "wrong") for _ in range(ATTEMPTS)]
    assert codes == [422] * 5 + [429] * (ATTEMPTS - 5)


def test_a_session_keeps_working_while_redis_is_away_and_logging_out_still_ends_it(
    client, personas, caches_through_proxy
):
    client.force_login(personas.analyst)
    home = reverse("dashboards:index")
    assert client.get(home).status_code == 200  # the session now read from the cache

    caches_through_proxy.cut()
    assert client.get(home).status_code == 200  # read from Postgres instead
    client.post(reverse("accounts:logout"))
    assert client.get(home).status_code == 302


def test_a_cached_session_is_kept_at_most_session_cache_seconds(client, personas, settings):
    settings.SESSION_CACHE_SECONDS = 30
    client.force_login(personas.analyst)
    assert client.get(reverse("dashboards:index")).status_code == 200
    key = f":1:{SessionStore.cache_key_prefix}{client.session.session_key}"
    assert 0 < redis.Redis.from_url(settings.REDIS_URL).ttl(key) <= 30
