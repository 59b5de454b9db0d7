"""What every notification channel shares: the message it sends, its errors, the registry.

A channel is a class with a ``kind``; it checks the settings a person typed (``clean``), says who
a delivery goes to (``target``) and sends one message (``send``). Sending raises
:class:`DeliveryError`, whose ``retryable`` says whether another attempt could succeed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings

from apps.alerts.models import AlertDelivery, AlertEvent

_REGISTRY: dict[str, type[Channel]] = {}


class DeliveryError(Exception):
    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


@dataclass(frozen=True)
class AlertMessage:
    """One notification's content, the same for every channel."""

    reason: str
    title: str
    sentence: str
    alert_name: str
    alert_url: str
    investigate_path: str
    scheduled_for: str
    value: float | None = None
    expected: float | None = None
    band: tuple[float, float] | None = None
    explanation: str = ""
    chart: dict[str, Any] = field(default_factory=dict)

    @property
    def investigate_url(self) -> str:
        return settings.SITE_URL + self.investigate_path

    def as_payload(self) -> dict[str, Any]:
        return {
            "event": self.reason,
            "alert": self.alert_name,
            "title": self.title,
            "message": self.sentence,
            "value": self.value,
            "expected": self.expected,
            "band": list(self.band) if self.band else None,
            "scheduled_for": self.scheduled_for,
            "explanation": self.explanation,
            "alert_url": self.alert_url,
            "investigate_url": self.investigate_url,
        }


class Channel(ABC):
    kind: ClassVar[str]
    label: ClassVar[str]
    # In-app messages are rows in our own database: written with the event, never retried.
    in_transaction: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _REGISTRY[cls.kind] = cls

    @classmethod
    def clean(cls, settings: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """The settings to store, or ValidationError; `previous` keeps write-only secrets."""
        return {"kind": cls.kind}

    @classmethod
    def public(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings as shown back to people (no secrets)."""
        return dict(settings)

    @classmethod
    def target(cls, settings: dict[str, Any], event: AlertEvent) -> str:
        return ""

    @classmethod
    @abstractmethod
    def send(cls, delivery: AlertDelivery, message: AlertMessage) -> None:
        """Deliver, or raise DeliveryError."""


def registry() -> dict[str, type[Channel]]:
    return dict(_REGISTRY)
