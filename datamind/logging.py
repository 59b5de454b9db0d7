"""structlog for every log line: JSON lines in production, a readable console in development.

Request id, user and org are bound to structlog's context variables by the middleware (and by the
API's JWT authentication), so every line logged while serving a request carries them, including
lines from the standard library's loggers.
"""

import logging.config
from typing import Any, Protocol

import structlog

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def make_formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: structlog's and the standard library's lines look alike."""
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=_SHARED_PROCESSORS,
    )


def configure_logging(*, fmt: str, level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"structlog": {"()": make_formatter, "fmt": fmt}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                "django.db.backends": {"level": "WARNING"},
                "daphne": {"level": "WARNING"},
                "asyncio": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _Member(Protocol):
    # The user model cannot be imported here: settings configure logging before apps load.
    pk: Any
    org_id: int | None


def bind_user(user: _Member) -> None:
    """Put the authenticated user and their org on every following log line of this request."""
    structlog.contextvars.bind_contextvars(user_id=user.pk, org_id=user.org_id)
