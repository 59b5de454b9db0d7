import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import AuditLog
from apps.billing.models import BudgetSettings
from apps.billing.services import budget_period_current
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


def test_usage_of_a_past_month(personas):
    past = budget_period_current(org=personas.org, at=timezone.now() - datetime.timedelta(days=40))
    UsageRecordFactory(
        org=personas.org, created_at=past.starts_at + datetime.timedelta(days=1), input_tokens=4_321
    )
    UsageRecordFactory(org=personas.org, input_tokens=1_111)
    current = budget_period_current(org=personas.org)
    month = f"{past.period_start:%Y-%m}"
    body = api(personas.viewer).get(USAGE, {"period": month}).json()
    assert (body["period_start"], body["is_current"]) == (past.period_start.isoformat(), False)
    assert body["input_tokens"] == 4_321
    assert body["periods"] == [f"{current.period_start:%Y-%m}", month]
    body = api(personas.viewer).get(USAGE).json()
    assert (body["period_start"], body["is_current"], body["input_tokens"]) == (
        current.period_start.isoformat(),
        True,
        1_111,
    )


@pytest.mark.parametrize("value", ["2026-13", "last month", "2026-10-01"])
def test_a_malformed_period_is_a_400_that_says_the_format(personas, value):
    response = api(personas.viewer).get(USAGE, {"period": value})
    assert response.status_code == 400
    assert "Give the month as YYYY-MM, for example 2026-10." in str(response.json())


def test_a_month_without_a_period_is_404(personas):
    assert api(personas.viewer).get(USAGE, {"period": "2001-01"}).status_code == 404


def test_an_outsider_cannot_read_another_orgs_past_month(personas):
    past = budget_period_current(org=personas.org, at=timezone.now() - datetime.timedelta(days=40))
    UsageRecordFactory(
        org=personas.org, created_at=past.starts_at + datetime.timedelta(days=1), input_tokens=4_321
    )
    response = api(personas.outsider).get(USAGE, {"period": f"{past.period_start:%Y-%m}"})
    assert response.status_code == 404
    assert "4321" not in response.content.decode()
