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
def asgi_live_server(transactional_db, settings):
    """A real daphne process (HTTP and WebSockets) on the test database, for browser tests."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from django.db import connection

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datamind.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}",
        "CONNECTIONS_FILE_ROOT": str(settings.CONNECTIONS_FILE_ROOT),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "datamind.asgi:application"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/health/", timeout=1)  # noqa: S310 - our own loopback server
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.stderr.read().decode()[-2000:]
                raise RuntimeError(f"daphne did not start: {output}") from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
