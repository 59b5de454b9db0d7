from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apps.alerts.models import Alert
from apps.alerts.services.evaluation import alert_evaluate
from apps.alerts.tests.factories import AlertFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(personas, warehouse) -> tuple[Alert, Alert]:
    ours = AlertFactory(owner=personas.analyst, connection=warehouse, name="Our revenue")
    theirs = AlertFactory(owner=personas.outsider, connection=warehouse, name="Their revenue")
    return ours, theirs


def test_an_org_admin_sees_only_their_orgs_alerts_and_events(client, personas, alerts):
    ours, theirs = alerts
    alert_evaluate(alert_id=ours.pk, scheduled_for=datetime(2026, 11, 1, tzinfo=UTC))
    alert_evaluate(alert_id=theirs.pk, scheduled_for=datetime(2026, 11, 1, tzinfo=UTC))
    client.force_login(personas.admin)
    html = client.get(reverse("admin:alerts_alert_changelist")).content.decode()
    assert "Our revenue" in html and "Their revenue" not in html
    events = client.get(reverse("admin:alerts_alertevent_changelist")).content.decode()
    assert "Our revenue" in events and "Their revenue" not in events
    assert client.get(reverse("admin:alerts_alert_change", args=[theirs.pk])).status_code == 404


def test_pausing_in_the_admin_clears_the_next_run(client, personas, alerts):
    ours, _ = alerts
    Alert.objects.filter(pk=ours.pk).update(next_run_at=datetime(2026, 11, 1, tzinfo=UTC))
    client.force_login(personas.admin)
    response = client.post(
        reverse("admin:alerts_alert_change", args=[ours.pk]),
        {"name": "Renamed", "cooldown_minutes": 5, "muted_until_0": "", "muted_until_1": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    ours.refresh_from_db()
    assert ours.name == "Renamed" and not ours.is_active and ours.next_run_at is None
