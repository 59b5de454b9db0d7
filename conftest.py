import pytest

from apps.accounts.models import Role
from apps.accounts.tests.factories import OrganizationFactory, UserFactory
from datamind.lib.testing import PASSWORD, Personas


@pytest.fixture
def personas(db) -> Personas:
    org = OrganizationFactory(name="Acme", slug="acme")
    other_org = OrganizationFactory(name="Globex", slug="globex")
    return Personas(
        org=org,
        admin=UserFactory(org=org, role=Role.ADMIN, email="admin@acme.test"),
        analyst=UserFactory(org=org, role=Role.ANALYST, email="analyst@acme.test"),
        viewer=UserFactory(org=org, role=Role.VIEWER, email="viewer@acme.test"),
        other_org=other_org,
        outsider=UserFactory(org=other_org, role=Role.ADMIN, email="admin@globex.test"),
    )


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached results live in the cache (Redis db 15 in tests)."""
    from django.core.cache import cache

    cache.clear()
    yield


# Browser tests: Playwright drives Debian's chromium (Playwright's own browser download is not used).
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it when run as root).")
    return {
        **browser_type_launch_args,
        "executable_path": chromium,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def fake_llm(monkeypatch, settings):
    """A fake Anthropic + OpenAI-compatible server for this test (datamind/lib/fake_llm.py).

    Both SDKs are pointed at it through their own variables, and the settings that choose the
    environment's default provider say "Anthropic with a key", so code that asks for an
    organisation's provider talks to the fake unless the test configures otherwise.
    """
    from datamind.lib.fake_llm import DEFAULT_API_KEY, FakeLLMServer

    server = FakeLLMServer().start()
    environment = {
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": server.openai_base_url,
        "OPENAI_API_KEY": DEFAULT_API_KEY,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, value)
    settings.LLM_PROVIDER = ""
    # The credentials an SDK may find besides the key must not win over it.
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("ANTHROPIC_PROFILE", raising=False)
    yield server
    server.close()


@pytest.fixture
def asgi_servers(transactional_db):
    """Starts daphne processes on the test database: `asgi_servers.start()` returns a base URL."""
    from datamind.lib.testing import AsgiServers

    servers = AsgiServers()
    yield servers
    servers.stop()


@pytest.fixture
def redis_proxy(settings):
    """A `TcpProxy` in front of the test run's Redis, and the Redis URL that goes through it: a
    process given that URL loses Redis when the test cuts the proxy."""
    from urllib.parse import urlsplit

    from datamind.lib.testing import TcpProxy

    proxy = TcpProxy(urlsplit(settings.REDIS_URL).port or 6379)
    yield proxy, proxy.url(settings.REDIS_URL)
    proxy.close()


@pytest.fixture
def caches_through_proxy(settings, redis_proxy):
    """Every cache of this process reached through `redis_proxy`: the proxy, to cut and restore."""
    proxy, redis_url = redis_proxy
    settings.CACHES = {alias: {**config, "LOCATION": redis_url} for alias, config in settings.CACHES.items()}
    return proxy


@pytest.fixture
def asgi_live_server(asgi_servers) -> str:
    """A real daphne process (HTTP and WebSockets) on the test database, for browser tests."""
    return asgi_servers.start()


@pytest.fixture
def celery_processes(transactional_db, settings):
    """A Celery worker and beat to start with `.start_worker()` / `.start_beat()`, on the test
    database and Redis; everything queued before the test is purged."""
    import redis

    from datamind.lib.testing import CeleryProcesses

    # Messages (and unacknowledged ones) left by an earlier test must not reach this worker.
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.flushdb()
    processes = CeleryProcesses()
    yield processes
    processes.stop()
    broker.flushdb()
