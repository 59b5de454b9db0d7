"""DataMind settings, read once from the environment (and `.env` if present).

Two modes, chosen by what is configured:
- embedded default (no DATABASE_URL): SQLite in var/, local-memory cache, in-process channel
  layer, a filesystem Celery broker, DEBUG on and a generated secret key kept in var/;
- production (DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS...): Postgres, Redis for cache,
  channel layer and broker, secure cookies, HSTS and SSL redirect behind the proxy header.
Every variable is listed in `.env.example`.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("DATAMIND_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")
EMBEDDED = not DATABASE_URL
DEBUG = env.bool("DEBUG", default=EMBEDDED)


def _secret_key() -> str:
    if key := env.str("SECRET_KEY", default=""):
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in production (DEBUG is off).")
    # The embedded default keeps one generated key so sessions survive a restart.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Keys for secrets stored in the database (first encrypts, all decrypt); see datamind/lib/crypto.py.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production (DEBUG is off).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "csp",
    "apps.accounts",
    "apps.connections",
    "apps.chat",
    "apps.dashboards",
    "apps.alerts",
    "apps.billing",
]

MIDDLEWARE = [
    # First: everything after it (rate limits, the audit log, logs) reads the real client address.
    "datamind.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "datamind.middleware.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "datamind.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "datamind.middleware.LogContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "datamind.urls"
WSGI_APPLICATION = "datamind.wsgi.application"
ASGI_APPLICATION = "datamind.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

if EMBEDDED:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "datamind.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
else:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    # Under ASGI, Django runs each request's sync code on a new thread, and a persistent connection
    # (CONN_MAX_AGE > 0) stays with a thread that is gone: under load they pile up until Postgres
    # refuses clients (bench/http_load.py hit "too many clients" with 20 users). A pool per process
    # (psycopg_pool, Django 5.1+) reuses connections safely instead, for web processes: set
    # DATABASE_POOL_MAX_SIZE there (deploy/docker-compose.yml does). Not in Celery: a pool's threads
    # do not survive the fork into prefork children, so workers open a connection per task.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    _pool_size = env.int("DATABASE_POOL_MAX_SIZE", default=0)
    if _pool_size and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": _pool_size,
            # A request waiting this long for a free connection fails instead of hanging; while
            # the database is down, that is how long a page takes to say so (a 503).
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    # With a pool, the pool checks each connection before lending it (Django passes
    # `check_connection`), so connections broken by a database restart are replaced, not handed
    # to requests that would fail on them.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        # Django's Redis backend with one client per process (datamind/lib/cache.py).
        "default": {"BACKEND": "datamind.lib.cache.RedisCache", "LOCATION": REDIS_URL},
        # Rate limits and template fragments fail open while Redis is away (see the backend).
        "ratelimit": {"BACKEND": "datamind.lib.cache.FailOpenRedisCache", "LOCATION": REDIS_URL},
        "template_fragments": {"BACKEND": "datamind.lib.cache.FailOpenRedisCache", "LOCATION": REDIS_URL},
    }
    CHANNEL_LAYERS = {
        # Redis pub/sub: every web process subscribes to the groups its sockets joined. The list-based
        # RedisChannelLayer lost about one push in twenty across processes in the multi-process test
        # (both sockets open, the message never delivered); pushes are fire-and-forget, so
        # pub/sub's "no subscriber, no message" is what we want anyway. The longer socket timeout
        # keeps redis-py from closing a quiet connection.
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# The notification badge's count, cached per person, only where every process shares the cache
# (with a per-process cache the worker's new messages could not drop the web process's copy).
UNREAD_COUNT_CACHE_SECONDS = 300 if REDIS_URL else 0

AUTH_USER_MODEL = "accounts.User"
# The session's user is read with their organisation (every page shows it).
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.UserWithOrgBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# File engines (SQLite, DuckDB) may only open files inside this folder; the demo warehouse lives here.
CONNECTIONS_FILE_ROOT = Path(env.str("CONNECTIONS_FILE_ROOT", default=str(VAR_DIR / "warehouses")))
CONNECTIONS_FILE_ROOT.mkdir(parents=True, exist_ok=True)
# Optional lists of host names or CIDR ranges that connections may (not) reach.
CONNECTIONS_HOST_ALLOWLIST = env.list("CONNECTIONS_HOST_ALLOWLIST", default=[])
CONNECTIONS_HOST_DENYLIST = env.list("CONNECTIONS_HOST_DENYLIST", default=[])
EXPORTS_DIR = VAR_DIR / "exports"

INVITATION_MAX_AGE_DAYS = env.int("INVITATION_MAX_AGE_DAYS", default=7)

# Language models (apps/chat/services/providers.py). An organisation's own choice wins; without one,
# LLM_PROVIDER if set, else Anthropic with an ANTHROPIC_API_KEY, else an OpenAI-compatible server
# with an OPENAI_BASE_URL, else the built-in offline engine, which needs no key.
LLM_PROVIDERS = ("builtin", "anthropic", "openai")
LLM_PROVIDER = env.str("LLM_PROVIDER", default="")
if LLM_PROVIDER and LLM_PROVIDER not in LLM_PROVIDERS:
    raise ImproperlyConfigured(f"LLM_PROVIDER must be one of {', '.join(LLM_PROVIDERS)} (or empty).")
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-5-5")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-5.4-mini")
# Seconds to wait for the model to answer, or for the next piece of a streamed answer.
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=60.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static files from daphne itself: straight from the apps' folders in
# development (no collectstatic needed), hashed and compressed after collectstatic in production.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="DataMind <no-reply@datamind.local>")
# Links in e-mails and webhooks sent from background work, where there is no request to ask.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security. Production defaults are strict; the embedded default runs on plain HTTP.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Health probes come from inside the network over plain HTTP; a redirect would read as unhealthy.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
# Sessions live in Postgres and are read through Redis where there is one (datamind/lib/sessions.py).
SESSION_ENGINE = "datamind.lib.sessions" if REDIS_URL else "django.contrib.sessions.backends.db"
SESSION_CACHE_SECONDS = env.int("SESSION_CACHE_SECONDS", default=120)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Only our own scripts and styles (htmx and its ws extension from django-htmx, vega-embed from
# vl-convert-python, static/js): no inline code, no eval. vega-embed runs with `ast: true`, so
# Vega evaluates expressions with its interpreter instead of `new Function`; its styles are a
# static file. A nonce is there for the rare inline script a page cannot avoid ({{ CSP_NONCE }}).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        # 'self' covers the same-origin WebSocket (ws:/wss:) in current browsers.
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Browser features no page of ours uses, refused for every frame.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=()"
)
# Proxies (addresses or CIDR ranges) allowed to say who the client is in X-Forwarded-For. Only a
# request arriving *from* one of them has that header read; see datamind/middleware.py.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "datamind.lib.authentication.JWTAuthentication",
        "datamind.lib.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "datamind.lib.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "datamind.lib.schema.AutoSchema",
    "EXCEPTION_HANDLER": "datamind.lib.api.exception_handler",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_LIFETIME", default=300)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_LIFETIME", default=86_400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DataMind API",
    "DESCRIPTION": "Ask questions of your databases, manage dashboards, alerts and budgets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A chat message's role (question/answer) and a member's role share a field name.
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "apps.accounts.models.Role",
        "MessageRoleEnum": "apps.chat.models.MessageRole",
        # Exports and subscription attachments offer the same two formats.
        "DataFormatEnum": "apps.connections.models.ExportFormat",
    },
}

# django-ratelimit counts in Redis, shared by all replicas, through a cache that fails open while
# Redis is away (datamind/lib/cache.py FailOpenRedisCache); without Redis, in the default cache.
RATELIMIT_VIEW = "apps.accounts.views.rate_limited"
RATELIMIT_USE_CACHE = "ratelimit" if REDIS_URL else "default"
RATELIMIT_FAIL_OPEN = True
LOGIN_RATE = env.str("LOGIN_RATE", default="5/m")

CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    # A broker that needs no server: messages are files under var/celery/.
    _broker_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if REDIS_URL:
    # A task a killed worker never acknowledged goes back to the queue after this long; alert
    # evaluations are idempotent, so the only cost of a short timeout is a duplicate run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    }

# Alerts: the first retry delay (doubling each time) and failures before the owner is told.
ALERTS_RETRY_BACKOFF_S = env.float("ALERTS_RETRY_BACKOFF_S", default=30)
ALERTS_FAILURES_BEFORE_NOTICE = env.int("ALERTS_FAILURES_BEFORE_NOTICE", default=3)
# Webhooks go only to public addresses unless this is on (a receiver inside your own network);
# link-local addresses (cloud metadata) are refused either way.
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", default=False)

LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING_CONFIG = None

SENTRY_DSN = env.str("SENTRY_DSN", default="")

from datamind.logging import configure_logging  # noqa: E402
from datamind.sentry import configure_sentry  # noqa: E402

configure_logging(fmt=LOG_FORMAT, level=LOG_LEVEL)
configure_sentry(dsn=SENTRY_DSN, environment="development" if DEBUG else "production")
