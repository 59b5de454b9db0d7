"""Subscriptions: a dashboard e-mailed on a schedule, with its charts and data attached.

Each scheduled time becomes one SubscriptionDelivery row, unique per (subscription, time), and a
delivery is claimed (pending -> sending) by a conditional UPDATE before anything is sent: a second
beat tick, a redelivered task or two workers never send the same scheduled e-mail twice.
"""

import datetime as dt
import smtplib

import structlog
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import User
from apps.accounts.services import audit_log_record
from apps.connections.engines.base import EngineError
from apps.connections.safety import UnsafeSQLError
from apps.dashboards.models import (
    Dashboard,
    DeliveryStatus,
    ExternalRecipient,
    Subscription,
    SubscriptionDelivery,
    WidgetKind,
)
from apps.dashboards.services import charts
from apps.dashboards.services.exports import widget_data_download
from apps.dashboards.services.schedule import cron_next, zone_of
from apps.dashboards.services.widgets import WidgetData, dashboard_results

logger = structlog.get_logger(__name__)
# Far longer than a send takes (queries, charts, SMTP): a delivery sending for longer has no worker.
STALLED_AFTER = dt.timedelta(minutes=30)
STALLED_NOTE = (
    "The worker stopped while sending this e-mail; some recipients may have received it. "
    "It is not sent again, so that nobody gets it twice."
)

_UNSUBSCRIBE_SALT = "dashboards.unsubscribe"
MAX_RECIPIENTS = 50


def _allowed(org_id: int, addresses: list[str]) -> list[str]:
    """The addresses, normalised, if each is an active member or allowed by an admin."""
    cleaned = sorted({address.strip().lower() for address in addresses if address.strip()})
    if not cleaned:
        raise ValidationError({"recipients": "Add at least one recipient."})
    if len(cleaned) > MAX_RECIPIENTS:
        raise ValidationError({"recipients": f"At most {MAX_RECIPIENTS} recipients."})
    for address in cleaned:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"recipients": f"“{address}” is not an e-mail address."})
    members = set(
        User.objects.filter(org_id=org_id, is_active=True, email__in=cleaned).values_list("email", flat=True)
    )
    allowed = set(ExternalRecipient.objects.filter(org_id=org_id).values_list("address", flat=True))
    refused = [
        a
        for a in cleaned
        if a not in members and a not in allowed and f"@{a.partition('@')[2]}" not in allowed
    ]
    if refused:
        raise ValidationError(
            {"recipients": f"Not a member, nor an address an admin allows: {', '.join(refused)}."}
        )
    return cleaned


@transaction.atomic
def subscription_create(
    *, dashboard: Dashboard, user: User, cron: str, recipients: list[str], **options: object
) -> Subscription:
    subscription = Subscription(
        org=dashboard.org,
        dashboard=dashboard,
        created_by=user,
        cron=" ".join(cron.split()),
        recipients=_allowed(dashboard.org_id, recipients),
        **options,
    )
    subscription.next_run_at = cron_next(
        subscription.cron, timezone=dashboard.org.timezone, after=timezone.now()
    )
    subscription.save()
    audit_log_record(
        action="subscription.create",
        org=dashboard.org,
        actor=user,
        target=dashboard,
        metadata={"cron": subscription.cron, "recipients": subscription.recipients},
    )
    return subscription


@transaction.atomic
def subscription_delete(*, subscription: Subscription, user: User) -> None:
    audit_log_record(
        action="subscription.delete", org=subscription.org, actor=user, target=subscription.dashboard,
        metadata={"cron": subscription.cron, "recipients": subscription.recipients},
    )  # fmt: skip
    subscription.delete()


def unsubscribe_token(subscription: Subscription, address: str) -> str:
    return signing.dumps({"s": subscription.pk, "e": address}, salt=_UNSUBSCRIBE_SALT)


@transaction.atomic
def subscription_unsubscribe(*, token: str) -> tuple[Subscription, str]:
    """Stop sending to the address the token names. ValidationError when the link is not ours."""
    try:
        payload = signing.loads(token, salt=_UNSUBSCRIBE_SALT)
        subscription = (
            Subscription.objects.select_for_update().select_related("dashboard").get(pk=payload["s"])
        )
    except (signing.BadSignature, Subscription.DoesNotExist, KeyError, TypeError):
        raise ValidationError("This unsubscribe link is not valid any more.")
    address = payload["e"]
    if address not in subscription.unsubscribed:
        subscription.unsubscribed = [*subscription.unsubscribed, address]
        subscription.save(update_fields=["unsubscribed"])
    return subscription, address


def subscriptions_claim_due(*, at: dt.datetime | None = None) -> list[int]:
    """A delivery row for each subscription whose time has come, and its next time; returns the
    ids of the deliveries made now (none for a time that already has one)."""
    at = at or timezone.now()
    deliveries = []
    due = Subscription.objects.filter(is_active=True, next_run_at__lte=at).select_related("org")
    for subscription in due:
        try:
            with transaction.atomic():
                delivery = SubscriptionDelivery.objects.create(
                    subscription=subscription, scheduled_for=subscription.next_run_at
                )
                deliveries.append(delivery.pk)
        except IntegrityError:
            pass  # another tick made it first
        following = cron_next(subscription.cron, timezone=subscription.org.timezone, after=at)
        Subscription.objects.filter(pk=subscription.pk, next_run_at=subscription.next_run_at).update(
            next_run_at=following
        )
    return deliveries


def _claim(delivery_id: int) -> bool:
    claimed = SubscriptionDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENDING, claimed_at=timezone.now()
    )
    return bool(claimed)


def subscription_deliveries_stalled_fail(*, at: dt.datetime | None = None) -> int:
    """Deliveries still "sending" long after their claim: the worker stopped mid-send. They are
    marked failed with a note for the subscription's page, not sent again (some recipients may
    have had the e-mail already, and nobody gets two). Returns how many."""
    at = at or timezone.now()
    return SubscriptionDelivery.objects.filter(
        status=DeliveryStatus.SENDING, claimed_at__lt=at - STALLED_AFTER
    ).update(status=DeliveryStatus.FAILED, note=STALLED_NOTE)


def _attachments(subscription: Subscription, results: list[WidgetData]) -> tuple[list, list[str]]:
    files, failures = [], []
    for data in results:
        widget = data.widget
        name = slugify(widget.title) or f"widget-{widget.pk}"
        if data.error:
            failures.append(f"{widget.title}: {data.error}")
            continue
        if widget.kind == WidgetKind.TEXT:
            continue
        if widget.kind == WidgetKind.CHART and data.spec:
            files.append((f"{name}.png", charts.chart_png(data.spec), "image/png"))
        try:
            download = widget_data_download(widget=widget, fmt=subscription.attachment_format)
            files.append(
                (f"{name}.{subscription.attachment_format}", b"".join(download), download.content_type)
            )
        except (UnsafeSQLError, EngineError, ValidationError) as exc:
            failures.append(f"{widget.title}: {getattr(exc, 'detail', exc)}")
    return files, failures


def _send(
    subscription: Subscription,
    delivery: SubscriptionDelivery,
    results: list[WidgetData],
    files: list,
    failures: list[str],
) -> None:
    dashboard = subscription.dashboard
    site = settings.SITE_URL.rstrip("/")
    for address in subscription.recipients:
        if address in subscription.unsubscribed:
            continue
        context = {
            "dashboard": dashboard,
            "results": results,
            "failures": failures,
            "scheduled_for": timezone.localtime(delivery.scheduled_for, zone_of(subscription.org.timezone)),
            "dashboard_url": site + reverse("dashboards:dashboard-detail", args=[dashboard.pk]),
            "unsubscribe_url": site
            + reverse("dashboards:unsubscribe", args=[unsubscribe_token(subscription, address)]),
        }
        email = EmailMultiAlternatives(
            subject=f"{dashboard.title} · DataMind",
            body=render_to_string("dashboards/email/subscription.txt", context),
            to=[address],
            headers={"List-Unsubscribe": f"<{context['unsubscribe_url']}>"},
        )
        email.attach_alternative(render_to_string("dashboards/email/subscription.html", context), "text/html")
        for file_name, content, content_type in files:
            email.attach(file_name, content, content_type)
        email.send()


def subscription_deliver(*, delivery_id: int) -> SubscriptionDelivery:
    """Send one scheduled e-mail to every recipient still subscribed, once."""
    delivery = SubscriptionDelivery.objects.select_related(
        "subscription", "subscription__dashboard", "subscription__org"
    ).get(pk=delivery_id)
    if not _claim(delivery_id):
        return delivery
    subscription = delivery.subscription
    dashboard = subscription.dashboard
    results = dashboard_results(dashboard=dashboard, use_cache=False)
    files, failures = _attachments(subscription, results)
    note = "\n".join(failures)
    if failures and subscription.skip_on_failure:
        SubscriptionDelivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.SKIPPED, note=note)
        return delivery
    try:
        _send(subscription, delivery, results, files, failures)
    except (OSError, smtplib.SMTPException) as exc:
        # Some recipients may have it already: marked failed, not retried, so nobody gets two.
        logger.warning("subscription_send_failed", delivery_id=delivery_id, error=str(exc))
        SubscriptionDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.FAILED, note=str(exc)
        )
        return delivery
    SubscriptionDelivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.SENT, note=note, sent_at=timezone.now()
    )
    return delivery
