import csv
import datetime
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import AuditLog
from apps.billing.models import BudgetSettings
from apps.billing.services import budget_period_current
from apps.billing.tests.factories import UsageRecordFactory
from apps.chat.models import ChatMessage, ChatSession, MessageRole

INDEX = reverse("billing:index")
BUDGET = reverse("billing:budget")
LEDGER = reverse("billing:ledger-csv")
SETTINGS = {"monthly_override": "1234567", "warn_at_80": "on"}


@pytest.mark.parametrize("role", ["admin", "analyst", "viewer"])
def test_every_member_sees_the_usage_page(client, personas, role):
    UsageRecordFactory(org=personas.org, user=personas.analyst, input_tokens=1_000, output_tokens=234)
    client.force_login(getattr(personas, role))
    response = client.get(INDEX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Usage</h1>" in html
    assert "1,234" in html
    assert 'data-vega-spec="usage-daily-spec"' in html
    assert "js/usage.js" in html
    assert ("Budget settings" in html) is (role == "admin")


def test_the_usage_page_shows_an_empty_state_when_nothing_was_used(client, personas):
    client.force_login(personas.viewer)
    response = client.get(INDEX)
    assert "Nothing used yet this month" in response.content.decode()
    assert "data-vega-spec" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    for url in (INDEX, LEDGER):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("accounts:login") in response["Location"]
    assert client.post(BUDGET, SETTINGS).status_code == 302


def test_an_outsider_sees_only_their_orgs_figures(client, personas):
    UsageRecordFactory(org=personas.org, user=personas.analyst, input_tokens=987_654, output_tokens=0)
    UsageRecordFactory(org=personas.other_org, user=personas.outsider, input_tokens=4_321, output_tokens=0)
    client.force_login(personas.outsider)
    html = client.get(INDEX).content.decode()
    assert "4,321" in html
    assert "987,654" not in html
    assert personas.analyst.email not in html
    rows = list(csv.reader(io.StringIO(b"".join(client.get(LEDGER).streaming_content).decode())))
    assert [row[5] for row in rows[1:]] == ["4321"]


def test_the_top_questions_link_to_the_chat_only_for_their_asker(client, personas):
    session = ChatSession.objects.create(org=personas.org, user=personas.analyst, title="Sales")
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content="What sold best in May?")
    answer = ChatMessage.objects.create(session=session, role=MessageRole.ASSISTANT)
    UsageRecordFactory(org=personas.org, user=personas.analyst, session=session, message=answer)
    link = reverse("chat:session-detail", args=[session.pk])

    client.force_login(personas.analyst)
    html = client.get(INDEX).content.decode()
    assert "What sold best in May?" in html
    assert f'href="{link}"' in html

    client.force_login(personas.admin)
    html = client.get(INDEX).content.decode()
    assert "What sold best in May?" in html
    assert f'href="{link}"' not in html


def test_the_ledger_exports_the_periods_rows_as_csv(client, personas):
    UsageRecordFactory(org=personas.org, user=personas.analyst, model="m-1", input_tokens=10, output_tokens=5)
    UsageRecordFactory(org=personas.org, model="m-2", purpose="analysis")
    client.force_login(personas.viewer)
    response = client.get(LEDGER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    period = budget_period_current(org=personas.org)
    assert f'filename="usage-{period.period_start:%Y-%m}.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["user"], r["model"], r["purpose"], r["input_tokens"]) for r in rows] == [
        (personas.analyst.email, "m-1", "generation", "10"),
        ("", "m-2", "analysis", "100"),
    ]


def test_an_admin_changes_the_budget_and_it_is_audited(client, personas):
    client.force_login(personas.admin)
    response = client.post(BUDGET, SETTINGS)
    assert response.status_code == 302
    prefs = BudgetSettings.objects.get(org=personas.org)
    assert (prefs.monthly_override, prefs.warn_at_80, prefs.warn_at_100) == (1_234_567, True, False)
    assert budget_period_current(org=personas.org).budget == 1_234_567
    assert AuditLog.objects.filter(org=personas.org, action="billing.budget_update").exists()


def test_an_org_admin_cannot_change_the_plan(client, personas):
    client.force_login(personas.admin)
    client.post(BUDGET, SETTINGS | {"plan": "enterprise"})
    personas.org.refresh_from_db()
    assert personas.org.plan != "enterprise"


def test_an_invalid_budget_is_answered_422_with_the_error(client, personas):
    client.force_login(personas.admin)
    response = client.post(BUDGET, {"monthly_override": "-5"})
    assert response.status_code == 422
    assert "field-invalid" in response.content.decode()
    assert not BudgetSettings.objects.filter(org=personas.org).exists()


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_analysts_and_viewers_cannot_change_the_budget(client, personas, role):
    client.force_login(getattr(personas, role))
    assert client.post(BUDGET, SETTINGS).status_code == 403
    assert not BudgetSettings.objects.filter(org=personas.org).exists()


def test_the_budget_form_only_accepts_post(client, personas):
    client.force_login(personas.admin)
    assert client.get(BUDGET).status_code == 405


# Past periods ------------------------------------------------------------------------------------


def last_month(org):
    """The org's previous period, opened, with 4,321 tokens in its ledger."""
    period = budget_period_current(org=org, at=timezone.now() - datetime.timedelta(days=40))
    UsageRecordFactory(
        org=org, created_at=period.starts_at + datetime.timedelta(days=2), input_tokens=4_321, output_tokens=0
    )
    return period


def test_the_usage_page_shows_the_month_in_the_url(client, personas):
    past = last_month(personas.org)
    UsageRecordFactory(org=personas.org, user=personas.analyst, input_tokens=1_111, output_tokens=0)
    client.force_login(personas.viewer)
    month = f"{past.period_start:%Y-%m}"
    html = client.get(INDEX, {"period": month}).content.decode()
    assert f"Budget for {past.period_start:%B %Y}" in html
    assert "4,321" in html and "1,111" not in html
    assert f'<option value="{month}" selected>' in html
    assert f"{LEDGER}?period={month}" in html
    html = client.get(INDEX).content.decode()
    assert "This month&#x27;s budget" in html or "This month's budget" in html
    assert "1,111" in html and "4,321" not in html


def test_the_picker_offers_this_month_and_the_months_with_usage(client, personas):
    past = last_month(personas.org)
    empty = budget_period_current(org=personas.org, at=timezone.now() - datetime.timedelta(days=100))
    current = budget_period_current(org=personas.org)
    client.force_login(personas.viewer)
    html = client.get(INDEX).content.decode()
    assert f'<option value="{current.period_start:%Y-%m}" selected>' in html
    assert f'<option value="{past.period_start:%Y-%m}">' in html
    assert f'value="{empty.period_start:%Y-%m}"' not in html


def test_an_htmx_request_for_a_month_gets_only_the_usage_fragment(client, personas):
    past = last_month(personas.org)
    client.force_login(personas.viewer)
    response = client.get(INDEX, {"period": f"{past.period_start:%Y-%m}"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="usage">')
    assert "<h1>" not in html and "4,321" in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("value", ["2026-13", "october", "2026/10", "26-10"])
def test_a_malformed_month_is_answered_400_with_a_clear_error(client, personas, value):
    client.force_login(personas.viewer)
    response = client.get(INDEX, {"period": value})
    assert response.status_code == 400
    assert "Give the month as YYYY-MM, for example 2026-10." in response.content.decode()
    response = client.get(LEDGER, {"period": value})
    assert response.status_code == 400
    assert response.content.decode() == "Give the month as YYYY-MM, for example 2026-10."


def test_a_month_without_a_period_is_not_found(client, personas):
    client.force_login(personas.viewer)
    assert client.get(INDEX, {"period": "2001-01"}).status_code == 404
    assert client.get(LEDGER, {"period": "2001-01"}).status_code == 404


def test_another_orgs_month_is_never_shown(client, personas):
    past = last_month(personas.other_org)
    client.force_login(personas.viewer)
    month = f"{past.period_start:%Y-%m}"
    assert client.get(INDEX, {"period": month}).status_code == 404
    assert client.get(LEDGER, {"period": month}).status_code == 404
    budget_period_current(org=personas.org, at=past.starts_at + datetime.timedelta(days=1))
    html = client.get(INDEX, {"period": month}).content.decode()
    assert "4,321" not in html and "Nothing used that month" in html


def test_the_ledger_of_a_past_month_has_only_its_rows(client, personas):
    past = last_month(personas.org)
    UsageRecordFactory(org=personas.org, input_tokens=1_111)
    client.force_login(personas.viewer)
    response = client.get(LEDGER, {"period": f"{past.period_start:%Y-%m}"})
    assert f'filename="usage-{past.period_start:%Y-%m}.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["input_tokens"] for row in rows] == ["4321"]


def test_the_usage_page_costs_the_same_queries_however_many_months_and_rows(client, personas):
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(INDEX).status_code == 200
        return len(queries)

    client.force_login(personas.viewer)
    last_month(personas.org)
    UsageRecordFactory(org=personas.org, user=personas.analyst)
    page_queries()  # the first visit of the month opens its period
    before = page_queries()
    for days in (70, 100, 130):
        period = budget_period_current(org=personas.org, at=timezone.now() - datetime.timedelta(days=days))
        UsageRecordFactory(org=personas.org, created_at=period.starts_at)
    UsageRecordFactory.create_batch(5, org=personas.org, user=personas.admin)
    assert page_queries() == before
