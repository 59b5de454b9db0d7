"""Pinning an answer and using its dashboard in a real browser, on the demo warehouse, exactly as
`make run` serves it (daphne, the built-in engine, htmx and vega-embed)."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Page, expect

from apps.chat.tests.test_browser import analyst, demo_warehouse_dir  # noqa: F401 - shared fixtures
from apps.dashboards.models import Dashboard
from apps.dashboards.services.refresh import dashboard_refresh
from datamind.lib.testing import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CHART_POINTS = "JSON.parse(document.querySelector('script[id^=widget-spec]').textContent).data.values.length"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboards-{name}.png"), full_page=True)


def test_an_analyst_pins_an_answer_opens_the_dashboard_and_filters_it_by_date(
    analyst,  # noqa: F811 - the fixture, not the import
    asgi_live_server,
    page: Page,
):
    page.goto(f"{asgi_live_server}/accounts/login/")
    page.get_by_label("Email").fill(analyst.email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    page.get_by_role("button", name="Ask").click()
    page.wait_for_selector("body[data-socket=open]")
    page.get_by_label("Your question").fill("total revenue by month")
    page.get_by_label("Your question").press("Enter")
    answer = page.locator("article.message-answer").last
    expect(answer.locator(".chart svg.marks")).to_be_visible(timeout=30_000)

    answer.get_by_role("link", name="Pin to dashboard").click()
    expect(page).to_have_url(re.compile(r"/dashboards/pin/answers/\d+/$"))
    page.get_by_label("New dashboard's title").fill("Revenue")
    page.get_by_role("button", name="Pin").click()

    expect(page).to_have_url(re.compile(r"/dashboards/\d+/$"))
    widget = page.locator("article.widget").first
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    before = page.evaluate(CHART_POINTS)
    _shot(page, "pinned")

    page.get_by_label("From", exact=True).fill("2026-06-01")
    page.get_by_label("To", exact=True).fill("2026-08-31")
    page.get_by_role("button", name="Apply").click()

    expect(page).to_have_url(re.compile(r"date_from=2026-06-01&date_to=2026-08-31"))
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    after = page.evaluate(CHART_POINTS)
    assert before > 3 and after == 3, (before, after)
    months = json.loads(page.locator("script[id^=widget-spec]").text_content())["data"]["values"]
    assert all("2026-06" <= str(next(iter(row.values())))[:7] <= "2026-08" for row in months), months
    _shot(page, "filtered")

    # A refresh elsewhere (here: the service the beat task calls) reaches this open, filtered page
    # over its WebSocket, which reloads the grid with the page's own filters.
    dashboard = Dashboard.objects.get(title="Revenue")
    _refreshed_elsewhere(page, dashboard, "article.widget")
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    assert page.evaluate(CHART_POINTS) == 3

    # An unfiltered page receives the new widget bodies themselves.
    page.get_by_role("link", name="Clear").click()
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    _refreshed_elsewhere(page, dashboard, ".widget-body")
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    assert page.evaluate(CHART_POINTS) == before


def _refreshed_elsewhere(page: Page, dashboard: Dashboard, replaced: str) -> None:
    """Mark what a refresh should replace, refresh as the beat task would, see it replaced."""
    page.wait_for_selector("body[data-socket=open]")
    page.locator(replaced).first.evaluate("element => element.dataset.before = 'refresh'")
    # In a thread of its own: Playwright keeps an event loop in this one.
    with ThreadPoolExecutor(1) as worker:
        worker.submit(_refresh, dashboard).result()
    expect(page.locator(f"{replaced}[data-before]")).to_have_count(0, timeout=15_000)


def _refresh(dashboard: Dashboard) -> None:
    try:
        dashboard_refresh(dashboard=dashboard)
    finally:
        connections.close_all()  # this thread's own, or the test database outlives the test
