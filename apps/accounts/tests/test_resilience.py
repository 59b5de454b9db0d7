"""Rate limits while Redis is away: they fail open, deliberately (datamind.lib.cache.RateLimitCache).

Attempts are neither counted nor refused until Redis is back; then the limits count again. Redis
is taken away through a `TcpProxy` in front of the real one."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

ATTEMPTS = 7  # more than the 5 a minute allowed


@pytest.fixture
def caches_through_proxy(settings, redis_proxy):
    proxy, redis_url = redis_proxy
    settings.CACHES = {alias: {**config, "LOCATION": redis_url} for alias, config in settings.CACHES.items()}
    return proxy


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
