"""Settings for the test suite: the real Postgres and Redis, plus a few speed-ups."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789-abcdefghijklmnop")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datamind")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from datamind.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Worker threads of async code (consumers, the pipeline) open their own connections; closing them
# after each use lets the test database be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# No pool: pytest-django swaps the database for the test one, and each test's transaction must stay
# on the connection the test holds. A server a test starts may keep one, as production web
# processes have (datamind/lib/testing.py, PRODUCTION_WEB).
if not env.bool("TEST_SERVER_DATABASE_POOL", default=False):  # noqa: F405
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
# Tests never collect static files, also in servers they start with DEBUG off.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
# The tests' webhook receivers listen on loopback; test_webhook_addresses.py turns this off.
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
