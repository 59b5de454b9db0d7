import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone

from apps.dashboards.models import Dashboard, Visibility
from apps.dashboards.routing import websocket_urlpatterns
from apps.dashboards.services.refresh import dashboards_claim_due
from apps.dashboards.tasks import dashboard_refresh_task

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(dashboard: Dashboard, user, query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/dashboards/{dashboard.pk}/{query}"
    )
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


def test_the_channel_layer_is_the_real_redis_one():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"


async def test_a_scheduled_refresh_reaches_every_open_page(personas, dashboard, widget):
    await database_sync_to_async(Dashboard.objects.filter(pk=dashboard.pk).update)(
        schedule_minutes=15, next_refresh_at=timezone.now() - dt.timedelta(seconds=1)
    )
    analyst = await connect(dashboard, personas.analyst)
    viewer = await connect(dashboard, personas.viewer)
    try:
        # What the beat tick and the worker do, in order: claim what is due, refresh each.
        claimed = await database_sync_to_async(dashboards_claim_due)()
        assert claimed == [dashboard.pk]
        await database_sync_to_async(dashboard_refresh_task)(dashboard.pk)

        frames = [await analyst.receive_from(timeout=10), await viewer.receive_from(timeout=10)]
    finally:
        await analyst.disconnect()
        await viewer.disconnect()

    assert frames[0] == frames[1]
    assert f'id="widget-body-{widget.pk}" hx-swap-oob="outerHTML"' in frames[0]
    assert "Europe" in frames[0]
    refreshed = await database_sync_to_async(Dashboard.objects.get)(pk=dashboard.pk)
    assert refreshed.next_refresh_at > timezone.now() + dt.timedelta(minutes=14)
    assert await database_sync_to_async(dashboards_claim_due)() == []


async def test_a_filtered_page_is_told_to_reload_its_grid_with_its_own_filters(personas, dashboard, widget):
    filtered = await connect(dashboard, personas.viewer, "?filtered=1")
    try:
        await database_sync_to_async(dashboard_refresh_task)(dashboard.pk)
        frame = await filtered.receive_from(timeout=10)
    finally:
        await filtered.disconnect()

    assert 'id="dashboard-reload"' in frame and 'hx-include="#dashboard-filters"' in frame
    assert f"/dashboards/{dashboard.pk}/" in frame and "widget-body" not in frame


async def test_another_orgs_dashboard_closes_with_4404(personas, dashboard):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/dashboards/{dashboard.pk}/")
    communicator.scope["user"] = personas.outsider

    connected, code = await communicator.connect()

    assert not connected and code == 4404


async def test_a_colleagues_private_dashboard_closes_with_4404(personas, dashboard):
    await database_sync_to_async(Dashboard.objects.filter(pk=dashboard.pk).update)(
        visibility=Visibility.PRIVATE
    )
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/dashboards/{dashboard.pk}/")
    communicator.scope["user"] = personas.viewer

    connected, code = await communicator.connect()

    assert not connected and code == 4404


async def test_anonymous_visitors_are_closed_with_4401(dashboard):
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/dashboards/{dashboard.pk}/")
    communicator.scope["user"] = AnonymousUser()

    connected, code = await communicator.connect()

    assert not connected and code == 4401
