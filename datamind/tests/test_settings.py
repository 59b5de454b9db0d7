"""The settings module in its two modes, run as the operator would: in a fresh process."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what the test passes: nothing of the test run's own environment (test settings, .env
    # values already exported) may leak in. Empty values also override any `.env` file.
    base = {"PATH": os.environ["PATH"], "LOG_LEVEL": "ERROR"}
    return subprocess.run(  # noqa: S603 - our own manage.py with arguments we wrote
        [sys.executable, MANAGE, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def production(tmp_path: Path) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "datamind.settings",
        "DEBUG": "false",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": secrets.token_urlsafe(45)[:60],
        "ALLOWED_HOSTS": "bi.example.com",
        "DATAMIND_VAR_DIR": str(tmp_path / "var"),
    }


def test_the_production_settings_pass_the_deployment_checks(production: dict[str, str]):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(production: dict[str, str]):
    result = manage("check", env={**production, "SECRET_KEY": ""})

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(production: dict[str, str]):
    result = manage("check", env={**production, "ALLOWED_HOSTS": ""})

    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_production_uses_postgres_and_redis(production: dict[str, str]):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; from django.db import connection as c;"
        "print(c.vendor, s.CACHES['default']['BACKEND'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE)",
        env=production,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "postgresql",
        "datamind.lib.cache.RedisCache",
        "redis://127.0.0.1:6379/0",
        "True",
    ]


def test_the_embedded_default_needs_nothing_but_a_folder(tmp_path: Path):
    var = tmp_path / "var"
    embedded = {"DJANGO_SETTINGS_MODULE": "datamind.settings", "DATAMIND_VAR_DIR": str(var)}
    embedded |= {"DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": ""}

    check = manage("check", env=embedded)
    described = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; from django.db import connection as c;"
        "print(c.vendor, c.settings_dict['NAME'], s.DEBUG, s.CELERY_BROKER_URL)",
        env=embedded,
    )

    assert check.returncode == 0, check.stderr
    assert described.returncode == 0, described.stderr
    assert described.stdout.split() == ["sqlite", str(var / "datamind.sqlite3"), "True", "filesystem://"]
    # The generated secret is kept, so sessions survive a restart, and only its owner reads it.
    assert (var / "secret_key").stat().st_mode & 0o077 == 0


def test_production_cookies_are_secure_http_only_and_same_site(production: dict[str, str]):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE,"
        " s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_HTTPONLY, s.CSRF_COOKIE_SAMESITE, s.SECURE_SSL_REDIRECT,"
        " s.CONTENT_SECURITY_POLICY['DIRECTIVES']['frame-ancestors'])",
        env=production,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "Lax", "True", "True", "Lax", "True", "[\"'none'\"]"]


def test_web_processes_pool_their_connections_and_others_open_one_per_use(production: dict[str, str]):
    describe = "from django.db import connection as c; print(c.settings_dict['CONN_MAX_AGE'], bool(c.pool))"

    pooled = manage(
        "shell", "--no-imports", "-c", describe, env={**production, "DATABASE_POOL_MAX_SIZE": "8"}
    )
    unpooled = manage("shell", "--no-imports", "-c", describe, env=production)

    assert pooled.returncode == 0, pooled.stderr
    assert pooled.stdout.split() == ["0", "True"]
    assert unpooled.stdout.split() == ["0", "False"]
