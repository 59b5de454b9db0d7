"""Asking questions in a real browser over a real WebSocket, answered by the built-in engine on
the demo warehouse, exactly as `make run` serves it."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.accounts.tests.factories import OrganizationFactory, UserFactory
from apps.connections.models import Connection, Engine
from apps.connections.services.catalogue import catalogue_refresh
from apps.connections.services.demo_warehouse import DEMO_WAREHOUSE_FILENAME, demo_warehouse_build
from datamind.lib.testing import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"

# Keeps every text the answer's phase line and streamed text showed, since they change quickly.
RECORD_STREAM = """
window.__phases = []; window.__streamed = [];
new MutationObserver(() => {
  const phase = document.getElementById('answer-phase');
  const text = document.getElementById('answer-text');
  if (phase && !window.__phases.includes(phase.textContent)) window.__phases.push(phase.textContent);
  if (text && text.textContent) window.__streamed.push(text.textContent.length);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="session")
def demo_warehouse_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("warehouses")
    demo_warehouse_build(path=folder / DEMO_WAREHOUSE_FILENAME)
    return folder


@pytest.fixture
def analyst(transactional_db, settings, demo_warehouse_dir):
    settings.CONNECTIONS_FILE_ROOT = demo_warehouse_dir
    org = OrganizationFactory(name="Acme", slug="acme")
    connection = Connection.objects.create(
        org=org, name="Demo warehouse", engine=Engine.DUCKDB, database=DEMO_WAREHOUSE_FILENAME
    )
    catalogue_refresh(connection_id=connection.pk)
    return UserFactory(org=org, role=Role.ANALYST, email="analyst@acme.test")


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"chat-{name}.png"), full_page=True)


def _ask(page: Page, question: str) -> None:
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")


def test_an_analyst_asks_watches_the_answer_stream_in_sees_table_and_chart_then_follows_up(
    analyst, asgi_live_server, page: Page
):
    page.add_init_script(RECORD_STREAM)
    page.goto(f"{asgi_live_server}/accounts/login/")
    page.get_by_label("Email").fill(analyst.email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    expect(page.get_by_text("Built-in engine (offline)").first).to_be_visible()

    page.get_by_role("button", name="Ask").click()  # a new chat on the only connection
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    page.wait_for_selector("body[data-socket=open]")
    _ask(page, "total revenue by region")

    answer = page.locator("article.message-answer").last
    expect(answer.locator("td", has_text="North America")).to_be_visible(timeout=30_000)
    expect(answer.locator(".chart svg.marks")).to_be_visible(timeout=30_000)
    phases = page.evaluate("window.__phases")
    assert any("Writing SQL" in p for p in phases) and any("Running query" in p for p in phases)
    assert page.evaluate("window.__streamed.length") > 0  # text arrived before the finished answer
    _shot(page, "1-answer")

    _ask(page, "now by month")
    second = page.locator("article.message-answer").nth(1)
    expect(second.locator("td", has_text="2026-10")).to_be_visible(timeout=30_000)
    expect(second.locator(".chart svg.marks")).to_be_visible(timeout=30_000)
    assert "SUM(daily_revenue.revenue)" in second.locator("pre.sql").last.text_content()
    _shot(page, "2-follow-up")
