import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import AuditLog
from apps.billing.models import BudgetSettings
from apps.billing.tests.factories import UsageRecordFactory

USAGE = reverse("billing-api:usage")
BUDGET = reverse("billing-api:budget")
SETTINGS = {"monthly_override": 750_000, "warn_at_80": False, "warn_at_100": True}


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_anonymous_callers_get_401(db):
    assert api().get(USAGE).status_code == 401
    assert api().get(BUDGET).status_code == 401
    assert api().put(BUDGET, SETTINGS, format="json").status_code == 401


def test_usage_returns_the_period_summary_and_a_daily_series(personas):
    UsageRecordFactory(org=personas.org, user=personas.analyst, input_tokens=300, output_tokens=200)
    UsageRecordFactory(org=personas.other_org, input_tokens=9_999)
    response = api(personas.viewer).get(USAGE)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"budget", "used", "reserved", "remaining", "resets_on", "timezone", "daily"}
    assert (body["calls"], body["total_tokens"]) == (1, 500)
    assert len(body["daily"]) == 1
    assert body["daily"][0]["total_tokens"] == 500
    assert set(body["daily"][0]) == {"day", "calls", "input_tokens", "output_tokens", "total_tokens", "cost"}


def test_an_outsider_sees_only_their_orgs_usage(personas):
    UsageRecordFactory(org=personas.org, input_tokens=1_000)
    body = api(personas.outsider).get(USAGE).json()
    assert (body["calls"], body["total_tokens"], body["daily"]) == (0, 0, [])


def test_members_read_the_budget_settings(personas):
    response = api(personas.viewer).get(BUDGET)
    assert response.status_code == 200
    assert response.json() == {
        "plan": personas.org.plan,
        "monthly_override": None,
        "warn_at_80": True,
        "warn_at_100": True,
        "updated_by": None,
        "updated_at": response.json()["updated_at"],
    }


def test_an_admin_replaces_the_budget_settings(personas):
    response = api(personas.admin).put(BUDGET, SETTINGS, format="json")
    assert response.status_code == 200
    assert response.json()["monthly_override"] == 750_000
    assert response.json()["updated_by"] == personas.admin.email
    assert api(personas.admin).get(USAGE).json()["budget"] == 750_000
    assert AuditLog.objects.filter(org=personas.org, action="billing.budget_update").exists()


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_analysts_and_viewers_cannot_replace_the_budget(personas, role):
    response = api(getattr(personas, role)).put(BUDGET, SETTINGS, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not BudgetSettings.objects.filter(org=personas.org).exists()


def test_an_outsider_admin_changes_only_their_own_org(personas):
    api(personas.outsider).put(BUDGET, SETTINGS, format="json")
    assert not BudgetSettings.objects.filter(org=personas.org).exists()
    assert BudgetSettings.objects.get(org=personas.other_org).monthly_override == 750_000


def test_a_negative_budget_is_invalid(personas):
    response = api(personas.admin).put(BUDGET, SETTINGS | {"monthly_override": -1}, format="json")
    assert response.status_code == 400
    assert "monthly_override" in response.json()["fields"]
