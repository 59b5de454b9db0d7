"""The Content-Security-Policy in a real browser: every main page, a streamed answer with its
chart (htmx, the ws extension, vega-embed) and the API docs work with no violation reported."""

import re

import pytest
from playwright.sync_api import Page, expect

from apps.chat.tests.test_browser import analyst, demo_warehouse_dir  # noqa: F401 - fixtures
from datamind.lib.testing import PASSWORD

pytestmark = pytest.mark.browser

# Every violation the browser reports, kept across navigations by the init script.
RECORD_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
  const seen = JSON.parse(sessionStorage.getItem('csp') || '[]');
  seen.push(`${e.violatedDirective} ${e.blockedURI} ${location.pathname}`);
  sessionStorage.setItem('csp', JSON.stringify(seen));
});
"""


def test_pages_answers_charts_and_api_docs_run_under_the_policy_without_a_violation(
    analyst,  # noqa: F811 - the fixture imported above
    asgi_live_server,
    page: Page,
):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(RECORD_VIOLATIONS)

    response = page.goto(f"{asgi_live_server}/accounts/login/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
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

    for path in ("/connections/", "/usage/", "/settings/", "/dashboards/", "/alerts/", "/api/docs/"):
        page.goto(f"{asgi_live_server}{path}")
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui .info")).to_be_visible()

    assert page.evaluate("JSON.parse(sessionStorage.getItem('csp') || '[]')") == []
    assert errors == []
