"""More than one machine, on loopback: two web processes (daphne) and a Celery worker and beat share
Postgres and the Redis channel layer, and nothing a user sees depends on which process serves them.

A viewer's page is open on web process 2. The alert that fires there is evaluated by the worker
(dispatched by beat), and the dashboard refresh is started by an analyst on web process 1: both
reach the page only through the channel layer.
"""

from contextlib import contextmanager
from datetime import timedelta

import duckdb
import pytest
from django.utils.timezone import now
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from playwright.sync_api import Browser, Page, expect

from apps.alerts.models import Alert, Notification
from apps.alerts.tests.factories import AlertFactory
from apps.alerts.tests.test_browser import _log_in
from apps.connections.models import Connection, Engine
from apps.connections.services.catalogue import catalogue_refresh
from apps.dashboards.models import Visibility
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory
from datamind.lib.testing import wait_for

pytestmark = pytest.mark.browser

SALES_FILE = "sales.duckdb"
METRICS_FILE = "metrics.duckdb"
PUSH_TIMEOUT_MS = 20_000
# Records each htmx WebSocket as it opens and closes: the server joins the channel-layer group
# before it accepts, so an open socket is one a push will reach; a close says why one did not.
TRACK_SOCKETS = """
window.openSockets = [];
window.socketEvents = [];
for (const kind of ["wsOpen", "wsClose", "wsError", "wsAfterMessage"]) {
  document.addEventListener("htmx:" + kind, (event) => {
    const path = event.target.closest("[ws-connect]").getAttribute("ws-connect");
    if (kind === "wsOpen") window.openSockets.push(path);
    const code = event.detail && event.detail.event && event.detail.event.code;
    window.socketEvents.push(`${(performance.now() / 1000).toFixed(1)} s ${kind} ${path} ${code || ""}`);
  });
}
"""


def _write_sales(root, *amounts: float) -> None:
    """Replace the sales rows; the web processes open the file read-only for each query only."""

    def written() -> bool:
        try:
            with duckdb.connect(str(root / SALES_FILE)) as con:
                con.execute("CREATE OR REPLACE TABLE sales (amount DOUBLE)")
                con.executemany("INSERT INTO sales VALUES (?)", [(a,) for a in amounts])
            return True
        except duckdb.IOException:  # a reader holds the file this instant
            return False

    wait_for(written, timeout=10, message="the sales file stayed locked")


@pytest.fixture
def setup(personas, tmp_path, settings):
    """Two warehouse files, a shared dashboard with one KPI (sum of sales) and a due-able alert."""
    root = tmp_path / "warehouses"
    root.mkdir()
    settings.CONNECTIONS_FILE_ROOT = root
    _write_sales(root, 40, 60)
    duckdb.connect(str(root / METRICS_FILE)).close()
    sales, metrics = (
        Connection.objects.create(org=personas.org, name=name, engine=Engine.DUCKDB, database=file)
        for name, file in (("Sales", SALES_FILE), ("Metrics", METRICS_FILE))
    )
    catalogue_refresh(connection_id=sales.pk)
    dashboard = DashboardFactory(org=personas.org, owner=personas.analyst, visibility=Visibility.ORG)
    widget = WidgetFactory(
        dashboard=dashboard,
        connection=sales,
        kind="kpi",
        title="Revenue",
        sql="SELECT sum(amount) AS revenue FROM sales",
        chart={"y": "revenue"},
    )
    # Not due (no next run) until the test says so; then the org hears about it in the app.
    alert = AlertFactory(
        owner=personas.analyst,
        connection=metrics,
        name="Signups spike",
        sql="SELECT 50 AS value",
        channels=[{"kind": "in_app", "to": "org"}],
        once_while_watched=True,
    )
    # Beat's dispatch entry ticks every minute when installed; here every second.
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(task="apps.alerts.tasks.alerts_dispatch_task").update(
        interval=every_second, crontab=None
    )
    return root, dashboard, widget, alert


@contextmanager
def _sockets_reported(page: Page):
    """A push that never arrives fails with the page's socket history (a reconnect loses pushes)."""
    try:
        yield
    except AssertionError as error:
        history = "\n".join(page.evaluate("socketEvents"))
        raise AssertionError(f"{error}\nThe page's WebSockets:\n{history}") from None


@pytest.fixture
def page_on(browser: Browser):
    """`page_on(server, email, path)`: a page of its own (own cookies) logged in on that server.
    The contexts close before the servers stop, so no socket holds a server open."""
    contexts = []

    def open_page(server: str, email: str, path: str) -> Page:
        contexts.append(context := browser.new_context())
        page = context.new_page()
        page.add_init_script(TRACK_SOCKETS)
        _log_in(page, server, email)
        page.goto(f"{server}{path}")
        return page

    yield open_page
    for context in contexts:
        context.close()


def test_pushes_reach_a_page_on_web_2_from_the_worker_and_from_web_1(
    setup, personas, asgi_servers, celery_processes, page_on, tmp_path
):
    root, dashboard, widget, alert = setup
    # The worker and beat boot while the web processes start and the pages load.
    celery_processes.start_worker()
    celery_processes.start_beat(str(tmp_path / "beat-schedule"))
    web_1, web_2 = asgi_servers.start(), asgi_servers.start()
    assert web_1 != web_2

    path = f"/dashboards/{dashboard.pk}/"
    viewer = page_on(web_2, personas.viewer.email, path)
    value = viewer.locator(f"#widget-body-{widget.pk} .kpi-value")
    expect(value).to_have_text("100", timeout=PUSH_TIMEOUT_MS)
    viewer.wait_for_function(
        f"['/ws/notifications/', '/ws/dashboards/{dashboard.pk}/'].every(s => openSockets.includes(s))",
        timeout=PUSH_TIMEOUT_MS,
    )
    expect(viewer.locator("#toasts .toast")).to_have_count(0)

    # (a) The alert falls due: beat dispatches it, the worker evaluates it and pushes the toast.
    Alert.objects.filter(pk=alert.pk).update(next_run_at=now() - timedelta(seconds=1))
    with _sockets_reported(viewer):
        expect(viewer.locator("#toasts .toast")).to_contain_text("Signups spike triggered", timeout=30_000)
    expect(viewer.locator("#notification-badge")).to_contain_text("1")
    assert Notification.objects.filter(user=personas.viewer).count() == 1
    assert celery_processes.worker.poll() is None and celery_processes.beat.poll() is None

    # (b) The sales change; an analyst on web 1 presses Refresh all; web 2's page shows the new sum.
    analyst = page_on(web_1, personas.analyst.email, path)
    expect(analyst.locator(f"#widget-body-{widget.pk} .kpi-value")).to_have_text("100")
    _write_sales(root, 100, 150)
    analyst.get_by_role("button", name="Refresh all").click()
    expect(analyst.locator(f"#widget-body-{widget.pk} .kpi-value")).to_have_text("250")
    with _sockets_reported(viewer):
        expect(value).to_have_text("250", timeout=PUSH_TIMEOUT_MS)
