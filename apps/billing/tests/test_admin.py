from django.urls import reverse

from apps.accounts.models import AuditLog
from apps.billing.services import budget_period_current
from apps.billing.tests.factories import BudgetSettingsFactory, ModelPriceFactory, UsageRecordFactory


def test_an_org_admin_reads_only_their_orgs_ledger(client, personas):
    UsageRecordFactory(org=personas.org, model="ours-model")
    UsageRecordFactory(org=personas.other_org, model="theirs-model")
    client.force_login(personas.admin)
    html = client.get(reverse("admin:billing_usagerecord_changelist")).content.decode()
    assert "ours-model" in html
    assert "theirs-model" not in html


def test_an_org_admin_views_prices_but_cannot_change_them(client, personas):
    price = ModelPriceFactory()
    client.force_login(personas.admin)
    assert client.get(reverse("admin:billing_modelprice_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_modelprice_add")).status_code == 403
    response = client.post(
        reverse("admin:billing_modelprice_change", args=[price.pk]),
        {"provider": "x", "model": "y", "input_per_million": "1", "output_per_million": "1"},
    )
    assert response.status_code == 403


def test_an_org_admin_changes_the_budget_in_the_admin_and_it_is_audited(client, personas):
    prefs = BudgetSettingsFactory(org=personas.org, monthly_override=10_000)
    budget_period_current(org=personas.org)
    client.force_login(personas.admin)
    response = client.post(
        reverse("admin:billing_budgetsettings_change", args=[prefs.pk]),
        {"monthly_override": "25000", "warn_at_80": "on", "warn_at_100": "on"},
    )
    assert response.status_code == 302
    assert budget_period_current(org=personas.org).budget == 25_000
    entry = AuditLog.objects.get(action="billing.budget_update", org=personas.org)
    assert entry.actor == personas.admin
    assert entry.metadata["old"]["override"] == 10_000 and entry.metadata["new"]["override"] == 25_000


def test_an_org_admin_cannot_open_another_orgs_budget_or_periods(client, personas):
    theirs = BudgetSettingsFactory(org=personas.other_org, monthly_override=10_000)
    period = budget_period_current(org=personas.other_org)
    client.force_login(personas.admin)
    assert client.get(reverse("admin:billing_budgetsettings_change", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:billing_budgetperiod_change", args=[period.pk])).status_code == 404
    html = client.get(reverse("admin:billing_budgetperiod_changelist")).content.decode()
    assert "Globex" not in html
