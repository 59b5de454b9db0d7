"""A dashboard while Redis is away (cut through a `TcpProxy`): its page is rendered in full from
Postgres, without the cached grid, session and bell count."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_dashboard_page_renders_while_redis_is_away(
    client, personas, dashboard, widget, caches_through_proxy
):
    client.force_login(personas.analyst)
    url = reverse("dashboards:dashboard-detail", args=[dashboard.pk])
    assert widget.title in client.get(url).content.decode()

    caches_through_proxy.cut()
    widget.title = "Renamed while Redis was away"
    widget.save()
    page = client.get(url)
    assert page.status_code == 200
    assert "Renamed while Redis was away" in page.content.decode()
    assert 'id="notification-badge"' in page.content.decode()

    caches_through_proxy.restore()
    assert "Renamed while Redis was away" in client.get(url).content.decode()
