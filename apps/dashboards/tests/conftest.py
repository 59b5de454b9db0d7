import pytest

from apps.chat.tests.conftest import shop_connection, shop_root  # noqa: F401 - shared fixtures
from apps.dashboards.models import Dashboard, Visibility, Widget
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory

BY_REGION = (
    "SELECT r.name AS region, s.day, s.amount FROM sales s "
    "JOIN regions r USING (region_id) ORDER BY s.sale_id"
)
TOTALS = (
    "SELECT r.name AS region, sum(s.amount) AS total FROM sales s "
    "JOIN regions r USING (region_id) GROUP BY 1 ORDER BY 1"
)


@pytest.fixture
def dashboard(personas) -> Dashboard:
    return DashboardFactory(
        org=personas.org,
        owner=personas.analyst,
        visibility=Visibility.ORG,
        filter_fields=[{"key": "region", "label": "Region"}],
    )


@pytest.fixture
def widget(dashboard, shop_connection) -> Widget:  # noqa: F811 - the fixture, not the import
    return WidgetFactory(
        dashboard=dashboard,
        connection=shop_connection,
        title="Sales by region",
        sql=BY_REGION,
        chart={"mark": "bar", "x": "region", "y": "amount", "aggregate": "sum"},
        filter_columns={"date": "day", "region": "region"},
    )
