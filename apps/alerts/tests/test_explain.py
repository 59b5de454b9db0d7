""" "What moved": the org's model breaks a triggered metric down by the alert's dimension."""

from datetime import UTC, datetime

import duckdb
import pytest

from apps.alerts.models import AlertDelivery
from apps.alerts.services.evaluation import alert_evaluate
from apps.alerts.services.explain import event_explain
from apps.alerts.tests.conftest import WAREHOUSE_FILE
from apps.alerts.tests.factories import AlertFactory
from apps.billing.models import UsageRecord
from apps.connections.services.catalogue import catalogue_refresh

pytestmark = pytest.mark.django_db(transaction=True)

BREAKDOWN_SQL = "SELECT 'Europe' AS region, 10 AS revenue UNION ALL SELECT 'Asia', 40"


def test_a_triggered_alert_with_a_dimension_gets_a_paragraph_through_the_chat_pipeline(
    personas, warehouse, warehouse_root, fake_llm
):
    with duckdb.connect(str(warehouse_root / WAREHOUSE_FILE)) as db:
        db.execute("CREATE TABLE sales (region VARCHAR, revenue INTEGER)")
    catalogue_refresh(connection_id=warehouse.pk)
    alert = AlertFactory(
        owner=personas.analyst,
        connection=warehouse,
        sql="SELECT 50 AS value",
        dimension="region",
        channels=[{"kind": "email", "to": ["ops@acme.test"]}],
    )
    fake_llm.script(f"By region:\n```sql\n{BREAKDOWN_SQL}\n```", input_tokens=300, output_tokens=40)
    fake_llm.script("Asia moved the most: 40 against 10 in Europe.", input_tokens=120, output_tokens=12)

    event = alert_evaluate(alert_id=alert.pk, scheduled_for=datetime(2026, 11, 2, tzinfo=UTC))
    # The e-mail waits for the paragraph (the task that writes it queues the deliveries).
    assert AlertDelivery.objects.get().status == "pending"
    event = event_explain(event_id=event.pk)

    assert event.explanation == "Asia moved the most: 40 against 10 in Europe."
    assert UsageRecord.objects.filter(org=personas.org, user=personas.analyst).exists()
    # Asked once: a rerun finds the paragraph written.
    requests = len(fake_llm.requests)
    event_explain(event_id=event.pk)
    assert len(fake_llm.requests) == requests
