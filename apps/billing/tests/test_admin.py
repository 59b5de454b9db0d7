from django.urls import reverse

from apps.billing.tests.factories import ModelPriceFactory, UsageRecordFactory


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
