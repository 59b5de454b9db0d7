"""Notification channels, found through a registry: adding one means adding one module here."""

import importlib
import pkgutil

from django.core.exceptions import ValidationError

from apps.alerts.services.channels.base import AlertMessage, Channel, DeliveryError, registry


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_discover()


def get_channel(kind: str) -> type[Channel]:
    try:
        return registry()[kind]
    except KeyError:
        raise ValidationError({"channels": f"Unknown notification channel {kind!r}."}) from None


def channels_clean(channels: list, *, previous: list | None = None) -> list[dict]:
    """Check every channel's settings; a webhook left without a secret keeps its stored one."""
    if not isinstance(channels, list):
        raise ValidationError({"channels": 'A list of channels, e.g. [{"kind": "in_app"}].'})
    before = {c.get("kind"): c for c in previous or [] if isinstance(c, dict)}
    cleaned = []
    for settings in channels:
        if not isinstance(settings, dict):
            raise ValidationError({"channels": "Each channel is an object with a kind."})
        channel = get_channel(str(settings.get("kind", "")))
        cleaned.append(channel.clean(settings, previous=before.get(channel.kind)))
    return cleaned


def channels_public(channels: list) -> list[dict]:
    return [get_channel(c["kind"]).public(c) for c in channels]


__all__ = ["AlertMessage", "Channel", "DeliveryError", "channels_clean", "channels_public", "get_channel"]
