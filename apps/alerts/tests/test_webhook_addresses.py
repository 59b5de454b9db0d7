import ipaddress

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.models import AlertDelivery, NotificationReason
from apps.alerts.services.channels.base import AlertMessage, DeliveryError
from apps.alerts.services.channels.webhook import WebhookChannel
from apps.alerts.tests.factories import AlertEventFactory, AlertFactory
from datamind.lib.outbound import address_refusal

MESSAGE = AlertMessage(
    reason="triggered", title="Revenue", sentence="Revenue is 5.", alert_name="Revenue",
    alert_url="http://testserver/alerts/1/", investigate_path="/alerts/1/", scheduled_for="now",
)  # fmt: skip


def _delivery(url: str, warehouse) -> AlertDelivery:
    event = AlertEventFactory(alert=AlertFactory(owner=warehouse.created_by, connection=warehouse))
    return AlertDelivery.objects.create(
        event=event, position=0, kind="webhook", reason=NotificationReason.TRIGGERED, target=url,
        config={"kind": "webhook", "url": url, "format": "json", "secret": ""},
    )  # fmt: skip


@pytest.fixture
def public_only(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/hook", "http://10.0.0.5/hook", "https://[::1]/hook", "http://localhost/x",
     "http://192.168.1.20/hook", "http://[::ffff:10.0.0.1]/hook"],
)  # fmt: skip
def test_a_webhook_into_our_network_is_refused_when_saved(public_only, url: str):
    with pytest.raises(ValidationError, match="inside DataMind's network"):
        WebhookChannel.clean({"url": url})


@pytest.mark.parametrize("allow_private", [False, True])
def test_the_cloud_metadata_address_is_refused_even_where_private_addresses_are_allowed(
    settings, allow_private: bool
):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = allow_private

    with pytest.raises(ValidationError, match="link-local"):
        WebhookChannel.clean({"url": "http://169.254.169.254/latest/meta-data/"})


def test_a_public_webhook_is_accepted(public_only):
    assert (
        WebhookChannel.clean({"url": "https://hooks.example.com/x"})["url"] == "https://hooks.example.com/x"
    )


@pytest.mark.parametrize(
    ("address", "refused"),
    [("8.8.8.8", False), ("100.64.0.1", True), ("::ffff:127.0.0.1", True), ("fd00::1", True),
     ("2606:4700::1111", False), ("0.0.0.0", True)],  # noqa: S104 - judged, not bound
)  # fmt: skip
def test_addresses_are_judged_by_where_they_lead(address: str, refused: bool):
    assert bool(address_refusal(ipaddress.ip_address(address), allow_private=False)) is refused


def test_a_name_that_resolves_into_our_network_is_refused_when_sent(warehouse, public_only, webhook_server):
    """A saved URL whose name now leads to a private address (DNS changed) never gets the request."""
    port = webhook_server.server_address[1]
    delivery = _delivery(f"http://localhost:{port}/hook", warehouse)

    with pytest.raises(DeliveryError, match="inside DataMind's network") as refused:
        WebhookChannel.send(delivery, MESSAGE)

    assert not refused.value.retryable and webhook_server.requests == []


def test_a_webhook_goes_to_the_checked_address_under_its_own_name(warehouse, webhook_server):
    port = webhook_server.server_address[1]

    WebhookChannel.send(_delivery(f"http://localhost:{port}/hook", warehouse), MESSAGE)

    headers, body = webhook_server.requests[0]
    assert headers["Host"] == f"localhost:{port}" and b'"alert":"Revenue"' in body
