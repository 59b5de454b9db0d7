"""In-app notifications reach open pages through the real Redis channel layer."""

from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from apps.alerts.routing import websocket_urlpatterns
from apps.alerts.services.evaluation import alert_evaluate
from apps.alerts.tests.factories import AlertFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/notifications/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_a_triggered_alert_reaches_the_open_pages_of_the_orgs_members_only(personas, warehouse):
    alert = await database_sync_to_async(AlertFactory)(
        owner=personas.analyst, connection=warehouse, sql="SELECT 50 AS value"
    )
    member, outsider = await _connect(personas.viewer), await _connect(personas.outsider)

    await database_sync_to_async(alert_evaluate)(
        alert_id=alert.pk, scheduled_for=datetime(2026, 11, 2, tzinfo=UTC)
    )

    frame = await member.receive_from(timeout=10)
    assert f"{alert.name} triggered" in frame
    assert 'id="toasts" hx-swap-oob="beforeend"' in frame
    assert 'id="notification-badge"' in frame and ">1<" in frame
    assert await outsider.receive_nothing(timeout=0.5)
    await member.disconnect()
    await outsider.disconnect()


async def test_an_anonymous_socket_is_closed():
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/notifications/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected and code == 4401
