"""``webhook``: a JSON POST signed with HMAC-SHA256, or a Slack-compatible payload.

The receiver checks ``X-DataMind-Signature: sha256=<hex>`` over ``<timestamp>.<body>`` with the
shared secret, and may refuse old timestamps to stop replays. 5xx, 429 and network errors are
retried with backoff; any other 4xx means the receiver refuses this message, so it is not.
"""

import hashlib
import hmac
import json
import socket
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx2
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from apps.alerts.models import AlertDelivery
from apps.alerts.services.channels.base import AlertMessage, Channel, DeliveryError
from datamind.lib.crypto import decrypt, encrypt
from datamind.lib.outbound import RefusedAddress, literal_refusal, resolve_allowed

TIMEOUT_S = 10.0
FORMATS = {"json": "JSON (signed)", "slack": "Slack-compatible"}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _allow_private() -> bool:
    return django_settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES


def _refuse_internal(url: str) -> None:
    """At save time, refuse what can be refused without a lookup (the name is checked when sent)."""
    if reason := literal_refusal(urlsplit(url).hostname or "", allow_private=_allow_private()):
        raise ValidationError({"channels": f"A webhook cannot point inside DataMind's network: {reason}."})


def _pinned(url: str) -> tuple[str, str, str]:
    """The URL with its host replaced by the checked address, the Host header and the TLS name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_allowed(host, port, allow_private=_allow_private())
    except RefusedAddress as exc:
        raise DeliveryError(f"The webhook points inside DataMind's network: {exc}.", retryable=False) from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"The webhook's host {host} could not be resolved.", retryable=True) from exc
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    pinned = SplitResult(parts.scheme, netloc, parts.path, parts.query, "").geturl()
    return pinned, parts.netloc.rpartition("@")[2], host


def slack_payload(message: AlertMessage) -> dict[str, Any]:
    link = f"<{message.investigate_url}|Why did this happen?> · <{message.alert_url}|Alert>"
    return {
        "text": f"{message.title}: {message.sentence}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{message.title}*\n{message.sentence}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
        ],
    }


class WebhookChannel(Channel):
    kind = "webhook"
    label = "Webhook"

    @classmethod
    def clean(cls, settings: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        url = str(settings.get("url", "")).strip()
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError({"channels": "A webhook needs an http(s) URL."}) from None
        _refuse_internal(url)
        payload_format = settings.get("format") or "json"
        if payload_format not in FORMATS:
            raise ValidationError({"channels": "The webhook format is json or slack."})
        secret = str(settings.get("secret") or "")
        stored = encrypt(secret) if secret else (previous or {}).get("secret", "")
        return {"kind": cls.kind, "url": url, "format": payload_format, "secret": stored}

    @classmethod
    def public(cls, settings: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in settings.items() if k != "secret"}
        return {**shown, "has_secret": bool(settings.get("secret"))}

    @classmethod
    def target(cls, settings: dict[str, Any], event) -> str:
        return settings["url"]

    @classmethod
    def send(cls, delivery: AlertDelivery, message: AlertMessage) -> None:
        config = delivery.config
        payload = slack_payload(message) if config.get("format") == "slack" else message.as_payload()
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "DataMind-Alerts",
            "X-DataMind-Delivery": str(delivery.pk),
            "X-DataMind-Timestamp": timestamp,
        }
        if config.get("secret"):
            headers["X-DataMind-Signature"] = signature(decrypt(config["secret"]), timestamp, body)
        url, headers["Host"], tls_name = _pinned(config["url"])
        try:
            with httpx2.Client(timeout=TIMEOUT_S) as client:
                tls = {"sni_hostname": tls_name}  # the certificate is checked against the name
                response = client.post(url, content=body, headers=headers, extensions=tls)
        except httpx2.TimeoutException as exc:
            raise DeliveryError(
                f"The webhook did not answer within {TIMEOUT_S:.0f} s.", retryable=True
            ) from exc
        except httpx2.RequestError as exc:
            raise DeliveryError(f"The webhook could not be reached: {exc}", retryable=True) from exc
        if response.status_code >= 300:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise DeliveryError(f"The webhook answered {response.status_code}.", retryable=retryable)
