"""/api/v1/alerts/: the same services as the pages, the same permissions, the OpenAPI schema."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.alerts.models import Alert
from apps.alerts.tests.factories import AlertFactory
from datamind.lib.crypto import decrypt

pytestmark = pytest.mark.django_db


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def alert(personas, warehouse) -> Alert:
    return AlertFactory(owner=personas.analyst, connection=warehouse, sql="SELECT 50 AS value")


def _body(warehouse, **overrides) -> dict:
    return {
        "name": "Signups",
        "connection": warehouse.pk,
        "sql": "SELECT 12 AS signups",
        "condition_kind": "threshold",
        "condition_config": {"threshold": 10, "direction": "below"},
        "schedule_kind": "cron",
        "cron": "0 8 * * 1-5",
        "timezone": "America/New_York",
        "channels": [
            {"kind": "webhook", "url": "https://hooks.example.com/x", "format": "slack", "secret": "k"}
        ],
        **overrides,
    }


def test_an_analyst_creates_an_alert_and_the_webhook_secret_is_never_returned(personas, warehouse):
    response = bearer(personas.analyst).post(
        reverse("alerts-api:alert-list"), _body(warehouse), format="json"
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["owner"] == personas.analyst.email and data["next_run_at"]
    assert data["channels"] == [
        {"kind": "webhook", "url": "https://hooks.example.com/x", "format": "slack", "has_secret": True}
    ]
    assert decrypt(Alert.objects.get().channels[0]["secret"]) == "k"


def test_invalid_settings_come_back_in_the_error_body(personas, warehouse):
    body = _body(warehouse, condition_config={"threshold": "lots"}, cron="whenever")
    response = bearer(personas.analyst).post(reverse("alerts-api:alert-list"), body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_members_list_and_read_the_orgs_alerts_only(personas, alert):
    AlertFactory(owner=personas.outsider, connection=alert.connection, org=personas.other_org)
    response = bearer(personas.viewer).get(reverse("alerts-api:alert-list"))
    assert [a["id"] for a in response.json()["results"]] == [alert.pk]


@pytest.mark.parametrize(
    ("method", "name", "body"),
    [
        ("get", "alert-detail", None),
        ("patch", "alert-detail", {"name": "x"}),
        ("delete", "alert-detail", None),
        ("get", "alert-events", None),
        ("post", "alert-evaluate", None),
        ("post", "alert-mute", {"hours": 1}),
    ],
)
def test_another_orgs_alert_is_a_404_on_every_endpoint(personas, alert, method, name, body):
    response = getattr(bearer(personas.outsider), method)(
        reverse(f"alerts-api:{name}", args=[alert.pk]), body, format="json"
    )
    assert response.status_code == 404


def test_an_analyst_changes_their_own_alert_but_not_a_colleagues(personas, alert):
    other = AlertFactory(owner=personas.admin, connection=alert.connection)
    client = bearer(personas.analyst)
    assert (
        client.patch(
            reverse("alerts-api:alert-detail", args=[alert.pk]), {"name": "Mine"}, format="json"
        ).status_code
        == 200
    )
    assert (
        client.patch(
            reverse("alerts-api:alert-detail", args=[other.pk]), {"name": "x"}, format="json"
        ).status_code
        == 403
    )
    assert (
        bearer(personas.viewer)
        .post(reverse("alerts-api:alert-mute", args=[alert.pk]), {"hours": 1})
        .status_code
        == 403
    )
    assert (
        bearer(personas.admin).delete(reverse("alerts-api:alert-detail", args=[alert.pk])).status_code == 204
    )


def test_evaluate_runs_now_and_events_list_it_with_its_notifications(personas, alert):
    client = bearer(personas.analyst)
    event = client.post(reverse("alerts-api:alert-evaluate", args=[alert.pk])).json()
    assert event["state"] == "triggered" and event["value"] == 50
    assert event["deliveries"][0]["kind"] == "in_app" and event["deliveries"][0]["status"] == "sent"
    events = client.get(reverse("alerts-api:alert-events", args=[alert.pk])).json()
    assert events["count"] == 1 and events["results"][0]["id"] == event["id"]


def test_mute_snoozes_for_some_hours(personas, alert):
    data = (
        bearer(personas.analyst).post(reverse("alerts-api:alert-mute", args=[alert.pk]), {"hours": 2}).json()
    )
    assert data["muted_until"] is not None


def test_anonymous_callers_are_refused(alert):
    assert APIClient().get(reverse("alerts-api:alert-list")).status_code == 401


def test_the_endpoints_are_in_the_openapi_schema(client):
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    for path in (
        "/api/v1/alerts/",
        "/api/v1/alerts/{id}/",
        "/api/v1/alerts/{id}/events/",
        "/api/v1/alerts/{id}/evaluate/",
        "/api/v1/alerts/{id}/mute/",
    ):
        assert path in schema["paths"], path
