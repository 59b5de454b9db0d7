"""Sending one logged delivery (e-mail, webhook), at most once per success.

A send claims its row with a conditional update; a row left "sending" by a killed worker may be
claimed again once it is older than any send can take, so the message goes out at least once.
"""

from datetime import timedelta

import structlog
from django.db.models import F, Q
from django.utils.timezone import now

from apps.alerts.models import AlertDelivery, DeliveryStatus
from apps.alerts.services.channels import DeliveryError, get_channel
from apps.alerts.services.channels.webhook import TIMEOUT_S
from apps.alerts.services.evaluation import alert_message

logger = structlog.get_logger(__name__)

STALE_CLAIM = timedelta(seconds=6 * TIMEOUT_S)


class DeliveryRetry(Exception):
    """The channel failed in a way another attempt could fix."""


def delivery_send(*, delivery_id: int, final_attempt: bool = True) -> AlertDelivery | None:
    claimable = Q(status=DeliveryStatus.PENDING) | Q(
        status=DeliveryStatus.SENDING, claimed_at__lt=now() - STALE_CLAIM
    )
    claimed = AlertDelivery.objects.filter(claimable, pk=delivery_id).update(
        status=DeliveryStatus.SENDING, claimed_at=now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    delivery = AlertDelivery.objects.select_related("event__alert").get(pk=delivery_id)
    try:
        get_channel(delivery.kind).send(delivery, alert_message(delivery))
    except DeliveryError as exc:
        retry = exc.retryable and not final_attempt
        delivery.status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
        delivery.last_error = exc.detail
        delivery.save(update_fields=["status", "last_error"])
        logger.info("alert_delivery_failed", delivery_id=delivery_id, retry=retry, error=exc.detail)
        if retry:
            raise DeliveryRetry(exc.detail) from exc
        return delivery
    delivery.status, delivery.sent_at, delivery.last_error = DeliveryStatus.SENT, now(), ""
    delivery.save(update_fields=["status", "sent_at", "last_error"])
    return delivery
