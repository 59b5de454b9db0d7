"""An alert made and checked in a real browser: Test now draws the history, a check pushes a toast."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.accounts.tests.factories import UserFactory
from apps.alerts.tests.factories import DAILY_SERIES_SQL
from apps.connections.models import Connection, Engine
from apps.connections.services.catalogue import catalogue_refresh
from datamind.lib.testing import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"alerts-{name}.png"), full_page=True)


@pytest.fixture
def analyst(transactional_db, personas, warehouse_root):
    from apps.alerts.tests.conftest import WAREHOUSE_FILE

    connection = Connection.objects.create(
        org=personas.org, name="Metrics", engine=Engine.DUCKDB, database=WAREHOUSE_FILE
    )
    catalogue_refresh(connection_id=connection.pk)
    return UserFactory(org=personas.org, role=Role.ANALYST, email="watcher@acme.test")


def _log_in(page: Page, server: str, email: str) -> None:
    page.goto(f"{server}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/chat/"))


def test_an_analyst_tests_creates_and_checks_an_alert_and_a_colleague_sees_the_toast(
    analyst, personas, asgi_live_server, page: Page, browser
):
    colleague_context = browser.new_context()
    colleague = colleague_context.new_page()
    _log_in(colleague, asgi_live_server, personas.viewer.email)
    colleague.goto(f"{asgi_live_server}/alerts/")

    _log_in(page, asgi_live_server, analyst.email)
    page.goto(f"{asgi_live_server}/alerts/new/")
    page.get_by_label("Metric name").fill("Daily revenue")
    page.get_by_label("Metric SQL").fill(DAILY_SERIES_SQL.format(last=20))
    page.get_by_label("Condition").select_option("anomaly")
    page.get_by_role("button", name="Test now").click()
    preview = page.locator("#alert-preview")
    expect(preview.get_by_text("Would trigger now")).to_be_visible(timeout=20_000)
    expect(preview.locator(".chart svg.marks")).to_be_visible(timeout=20_000)
    _shot(page, "1-test-now")

    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.get_by_role("button", name="Create alert").click()
    expect(page).to_have_url(re.compile(r"/alerts/\d+/$"))
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("Checked now:")).to_be_visible()
    expect(page.locator(".chart svg.marks")).to_be_visible(timeout=20_000)
    _shot(page, "2-detail")

    toast = colleague.locator("#toasts .toast")
    expect(toast).to_contain_text("Daily revenue triggered", timeout=20_000)
    expect(colleague.locator("#notification-badge")).to_contain_text("1")
    _shot(colleague, "3-toast")
    toast.get_by_role("link").click()
    expect(colleague).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(colleague.get_by_text("Why did this happen?").first).to_be_visible()
    # Closed before the server stops: an open socket would hold daphne's shutdown.
    colleague_context.close()
