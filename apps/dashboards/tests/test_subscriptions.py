import csv
import datetime as dt
import io

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.dashboards.models import DeliveryStatus, ExternalRecipient, Subscription, SubscriptionDelivery
from apps.dashboards.services.schedule import cron_next
from apps.dashboards.services.subscriptions import (
    subscription_create,
    subscription_deliver,
    subscriptions_claim_due,
    unsubscribe_token,
)
from apps.dashboards.tasks import subscription_deliver_task, subscriptions_send_due_task
from apps.dashboards.tests.factories import WidgetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(personas, dashboard, widget) -> Subscription:
    ExternalRecipient.objects.create(org=personas.org, address="@partner.test")
    return subscription_create(
        dashboard=dashboard,
        user=personas.analyst,
        cron="0 8 * * *",
        recipients=[personas.viewer.email, "boss@partner.test"],
    )


def _due(subscription: Subscription) -> dt.datetime:
    scheduled = timezone.now() - dt.timedelta(minutes=1)
    Subscription.objects.filter(pk=subscription.pk).update(next_run_at=scheduled)
    return scheduled


def test_the_schedule_is_read_in_the_organisations_time_zone():
    after = dt.datetime(2026, 11, 22, 6, 3, tzinfo=dt.UTC)

    assert cron_next("0 8 * * *", timezone="Pacific/Auckland", after=after) == dt.datetime(
        2026, 11, 22, 19, 0, tzinfo=dt.UTC
    )
    assert cron_next("30 9 * * 1", timezone="Europe/Paris", after=after) == dt.datetime(
        2026, 11, 23, 8, 30, tzinfo=dt.UTC
    )


def test_a_due_subscription_is_emailed_once_per_scheduled_time(subscription, personas):
    scheduled = _due(subscription)

    first = subscriptions_claim_due()
    second = subscriptions_claim_due()
    for delivery_id in first + first:
        subscription_deliver_task(delivery_id)

    assert len(first) == 1 and second == []
    assert SubscriptionDelivery.objects.get().scheduled_for == scheduled
    assert sorted(message.to[0] for message in mail.outbox) == ["boss@partner.test", personas.viewer.email]
    subscription.refresh_from_db()
    assert subscription.next_run_at > timezone.now()


def test_the_same_scheduled_time_cannot_be_delivered_twice(subscription):
    scheduled = _due(subscription)
    SubscriptionDelivery.objects.create(subscription=subscription, scheduled_for=scheduled)

    assert subscriptions_claim_due() == []


def test_the_email_carries_a_decodable_png_and_csv_with_the_right_numbers(subscription):
    _due(subscription)
    [delivery_id] = subscriptions_claim_due()

    subscription_deliver(delivery_id=delivery_id)

    message = mail.outbox[0]
    attachments = {name: (content, kind) for name, content, kind in message.attachments}
    png, kind = attachments["sales-by-region.png"]
    assert kind == "image/png" and Image.open(io.BytesIO(png)).size[0] >= 640
    content, kind = attachments["sales-by-region.csv"]
    rows = list(csv.DictReader(io.StringIO(content.decode() if isinstance(content, bytes) else content)))
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["region"]] = totals.get(row["region"], 0) + float(row["amount"])
    assert totals == {"Americas": 1301, "Asia": 1299, "Europe": 1303}
    body = message.body
    assert f"/dashboards/{subscription.dashboard_id}/" in body and "/dashboards/unsubscribe/" in body
    assert message.extra_headers["List-Unsubscribe"].startswith("<http")
    assert SubscriptionDelivery.objects.get().status == DeliveryStatus.SENT


def test_a_failing_widget_is_noted_in_the_email(subscription, dashboard, shop_connection):
    WidgetFactory(
        dashboard=dashboard, connection=shop_connection, sql="SELECT nope FROM sales", title="Broken"
    )
    _due(subscription)

    subscription_deliver(delivery_id=subscriptions_claim_due()[0])

    assert "Broken: could not load" in mail.outbox[0].body
    assert "nope" in SubscriptionDelivery.objects.get().note


def test_a_failing_widget_skips_the_email_when_asked(subscription, dashboard, shop_connection):
    Subscription.objects.filter(pk=subscription.pk).update(skip_on_failure=True)
    WidgetFactory(dashboard=dashboard, connection=shop_connection, sql="SELECT nope FROM sales")
    _due(subscription)

    subscription_deliver(delivery_id=subscriptions_claim_due()[0])

    assert mail.outbox == [] and SubscriptionDelivery.objects.get().status == DeliveryStatus.SKIPPED


def test_an_unsubscribed_address_gets_nothing_more(client, subscription, personas):
    url = reverse("dashboards:unsubscribe", args=[unsubscribe_token(subscription, "boss@partner.test")])
    assert client.get(url).status_code == 200  # asks first: mail scanners follow links

    client.post(url)
    _due(subscription)
    subscription_deliver(delivery_id=subscriptions_claim_due()[0])

    assert [message.to[0] for message in mail.outbox] == [personas.viewer.email]


def test_a_forged_unsubscribe_link_is_refused(client, subscription):
    response = client.post(reverse("dashboards:unsubscribe", args=["not-a-token"]))

    assert response.status_code == 400
    subscription.refresh_from_db()
    assert subscription.unsubscribed == []


def test_recipients_must_be_members_or_allowed_by_an_admin(personas, dashboard):
    with pytest.raises(ValidationError) as refused:
        subscription_create(
            dashboard=dashboard, user=personas.analyst, cron="0 8 * * *", recipients=["x@evil.test"]
        )

    assert "x@evil.test" in str(refused.value)
    with pytest.raises(ValidationError):
        subscription_create(
            dashboard=dashboard, user=personas.analyst, cron="0 8 * * *", recipients=[personas.outsider.email]
        )


def test_the_subscriptions_page_makes_a_weekly_subscription(client, personas, dashboard):
    client.force_login(personas.analyst)

    response = client.post(
        reverse("dashboards:subscriptions", args=[dashboard.pk]),
        {"frequency": "weekly", "time": "07:30", "weekday": 1, "recipients": personas.analyst.email,
         "attachment_format": "xlsx"},
    )  # fmt: skip

    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.cron == "30 7 * * 1" and subscription.recipients == [personas.analyst.email]


def test_a_delivery_whose_worker_stopped_mid_send_is_marked_failed_not_resent(client, subscription, personas):
    now = timezone.now()
    stalled, recent = (
        SubscriptionDelivery.objects.create(
            subscription=subscription, scheduled_for=now - age, status=DeliveryStatus.SENDING,
            claimed_at=now - age,
        )
        for age in (dt.timedelta(hours=1), dt.timedelta(minutes=2))
    )  # fmt: skip

    subscriptions_send_due_task()

    stalled.refresh_from_db()
    recent.refresh_from_db()
    assert stalled.status == DeliveryStatus.FAILED and "may have received it" in stalled.note
    assert recent.status == DeliveryStatus.SENDING and mail.outbox == []
    client.force_login(personas.analyst)
    page = client.get(reverse("dashboards:subscriptions", args=[subscription.dashboard_id])).content.decode()
    assert "Sending" in page  # the latest delivery is the recent one


def test_the_subscriptions_page_shows_each_subscriptions_last_email(client, subscription, personas):
    client.force_login(personas.analyst)
    url = reverse("dashboards:subscriptions", args=[subscription.dashboard_id])
    assert "None yet" in client.get(url).content.decode()

    _due(subscription)
    for delivery_id in subscriptions_claim_due():
        subscription_deliver_task(delivery_id)

    page = client.get(url).content.decode()
    assert "None yet" not in page and ">Sent</span>" in page
