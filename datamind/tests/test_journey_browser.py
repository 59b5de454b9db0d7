"""The whole product in a real browser, as a brand-new user meets it, and its main flows driven by
the keyboard alone.

The journey runs on the stack `make run` serves: daphne (HTTP + WebSockets), a Celery worker
(the new connection's catalogue is read in the background), the Redis channel layer, the demo
warehouse, and a language model spoken to through the real anthropic SDK (a local fake server,
so the usage page has real token counts). Every step is screenshotted to
`test-artifacts/screenshots/journey-NN-<step>.png`; console errors and Content-Security-Policy
violations are collected all the way through and must stay empty.
"""

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils.timezone import now
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from apps.accounts.models import Role
from apps.accounts.tests.factories import OrganizationFactory, UserFactory
from apps.alerts.models import Alert, Notification
from apps.alerts.tasks import alerts_dispatch_task
from apps.chat.tests.test_browser import RECORD_STREAM, demo_warehouse_dir  # noqa: F401 - fixture
from apps.connections.models import Connection, Engine
from apps.connections.services.catalogue import catalogue_refresh
from apps.connections.services.demo_warehouse import DEMO_WAREHOUSE_FILENAME
from apps.dashboards.models import Dashboard, Widget, WidgetKind
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory
from datamind.lib.testing import PASSWORD, browser_sign_up

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
QUESTION = "What was our revenue by month?"
SQL_BY_MONTH = (
    "SELECT date_trunc('month', date) AS month, sum(revenue) AS revenue "
    "FROM daily_revenue GROUP BY 1 ORDER BY 1"
)
# The model's reply to the question, streamed a dozen characters at a time; then its analysis.
SQL_REPLY = f"Revenue lives in daily_revenue; I'll add it up per month.\n```sql\n{SQL_BY_MONTH}\n```"
GENERATION_TOKENS, ANALYSIS_TOKENS = (400, 60), (150, 12)
ANALYSIS = "Revenue grew steadily, with the usual dip after the holidays."
CHART_POINTS = "JSON.parse(document.querySelector('script[id^=widget-spec]').textContent).data.values.length"

# Kept across navigations (sessionStorage): every CSP violation, and the paths of the htmx
# WebSockets the current page has open (the server joins its groups before it accepts).
RECORD_PAGE = """
document.addEventListener('securitypolicyviolation', (e) => {
  const seen = JSON.parse(sessionStorage.getItem('csp') || '[]');
  seen.push(`${e.violatedDirective} ${e.blockedURI} ${location.pathname}`);
  sessionStorage.setItem('csp', JSON.stringify(seen));
});
window.openSockets = [];
// Where the focus went around each swap, for the message of a keyboard test that loses it.
window.__focusLog = [];
const focusEvents = ['focusin', 'focusout', 'change', 'submit'];
for (const kind of [...focusEvents, 'htmx:beforeSwap', 'htmx:afterSwap', 'htmx:afterSettle']) {
  document.addEventListener(kind, (e) => {
    const t = e.target, a = document.activeElement, at = performance.now().toFixed(0);
    window.__focusLog.push(`${at} ${kind} ${t.id || t.tagName} active=${a && (a.id || a.tagName)}`);
  }, true);
}
document.addEventListener('htmx:wsOpen', (e) => {
  window.openSockets.push(e.target.closest('[ws-connect]').getAttribute('ws-connect'));
});
"""


class Watched:
    """A page whose console errors, uncaught exceptions and CSP violations are collected, and
    whose steps are screenshotted in order."""

    def __init__(self, page: Page, prefix: str) -> None:
        self.page, self.prefix, self.steps = page, prefix, 0
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.add_init_script(RECORD_PAGE + RECORD_STREAM)

    def shot(self, step: str) -> None:
        self.steps += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.prefix}-{self.steps:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)

    def assert_clean(self) -> None:
        violations = self.page.evaluate("JSON.parse(sessionStorage.getItem('csp') || '[]')")
        assert violations == [], violations
        assert self.errors == [], self.errors


@pytest.fixture
def watched(page: Page) -> Iterator[Callable[[str], Watched]]:
    yield lambda prefix: Watched(page, prefix)


@pytest.fixture
def stack(demo_warehouse_dir, settings, fake_llm, celery_processes, asgi_servers) -> str:  # noqa: F811
    """daphne and a Celery worker on the test database and Redis, the demo warehouse in the
    folder file connections may use, the model behind the fake server: the base URL."""
    settings.CONNECTIONS_FILE_ROOT = demo_warehouse_dir
    reply_chunks = [SQL_REPLY[i : i + 12] for i in range(0, len(SQL_REPLY), 12)]
    fake_llm.script(SQL_REPLY, chunks=reply_chunks, chunk_delay=0.03, input_tokens=400, output_tokens=60)
    fake_llm.script(ANALYSIS, input_tokens=150, output_tokens=12)
    # The worker boots while daphne starts; both read the environment set up above.
    celery_processes.start_worker()
    return asgi_servers.start()


def _reload_until_visible(page: Page, locator, *, timeout_s: float = 45) -> None:
    """What a user does while something happens in the background: look, reload, look again."""
    for _ in range(int(timeout_s * 2)):
        if locator.count() and locator.first.is_visible():
            return
        page.wait_for_timeout(500)
        page.reload()
    expect(locator.first).to_be_visible()


def test_a_new_user_signs_up_connects_asks_pins_filters_sets_an_alert_sees_it_fire_and_logs_out(
    stack: str, watched, fake_llm
):
    journey = watched("journey")
    page = journey.page

    # 1. Sign up: a new organisation and its first admin, who lands in an empty chat.
    browser_sign_up(
        page,
        stack,
        org="Initrode",
        name="Peter Gibbons",
        email="peter@initrode.test",
        password="tps-reports-2026",
    )
    journey.shot("sign-up")
    page.get_by_role("button", name="Create organisation").click()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    expect(page.get_by_text("Connect a database first")).to_be_visible()
    journey.shot("empty-chat")

    # 2. Connect the demo warehouse: a DuckDB file offered from the warehouse folder.
    page.get_by_role("link", name="Add a connection").click()
    page.get_by_label("Name", exact=True).fill("Demo warehouse")
    page.get_by_label("Database engine").select_option(Engine.DUCKDB)
    expect(page.get_by_text(DEMO_WAREHOUSE_FILENAME)).to_be_visible()  # the folder's file list
    page.get_by_label("Database file").fill(DEMO_WAREHOUSE_FILENAME)
    journey.shot("connection-form")
    page.get_by_role("button", name="Save connection").click()
    expect(page).to_have_url(re.compile(r"/connections/\d+/$"))
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("Connected", timeout=15_000)
    journey.shot("connection-tested")
    # The worker reads the catalogue in the background; the list says when it is ready.
    page.get_by_role("navigation").get_by_role("link", name="Connections").click()
    _reload_until_visible(page, page.locator(".badge-ok", has_text="Ready"))
    journey.shot("connection-ready")

    # 3. Ask: phases and the model's text stream in, then the table and the drawn chart.
    page.get_by_role("navigation").get_by_role("link", name="Chat").click()
    page.get_by_role("button", name="Ask").click()  # a new chat on the only connection
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    page.wait_for_selector("body[data-socket=open]")
    page.get_by_label("Your question").fill(QUESTION)
    page.get_by_label("Your question").press("Enter")
    expect(page.locator("#answer-text")).to_contain_text("Revenue lives in", timeout=15_000)
    journey.shot("answer-streaming")
    answer = page.locator("article.message-answer").last
    expect(answer.locator(".chart svg.marks")).to_be_visible(timeout=30_000)
    expect(answer.locator("td", has_text="2026-10").first).to_be_visible()
    expect(answer.get_by_text(ANALYSIS)).to_be_visible()
    phases = page.evaluate("window.__phases")
    assert any("Writing SQL" in p for p in phases) and any("Running query" in p for p in phases), phases
    # The text arrived in pieces, before the finished answer replaced it.
    assert page.evaluate("window.__streamed.length") >= 3
    assert len(fake_llm.requests) == 2
    journey.shot("answer")

    # 4. Pin it to a new dashboard and open the dashboard.
    answer.get_by_role("link", name="Pin to dashboard").click()
    expect(page).to_have_url(re.compile(r"/dashboards/pin/answers/\d+/$"))
    page.get_by_label("New dashboard's title").fill("Revenue overview")
    journey.shot("pin")
    page.get_by_role("button", name="Pin").click()
    expect(page).to_have_url(re.compile(r"/dashboards/\d+/$"))
    widget = page.locator("article.widget:not(.widget-loading)").first
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    months = page.evaluate(CHART_POINTS)
    assert months == 24, months  # the demo warehouse's two years
    journey.shot("dashboard")

    # 5. Filter it by a date range (the answer's date column is the filter's): three months left.
    page.get_by_label("From", exact=True).fill("2026-06-01")
    page.get_by_label("To", exact=True).fill("2026-08-31")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"date_from=2026-06-01&date_to=2026-08-31"))
    expect(widget.locator(".widget-chart svg.marks")).to_be_visible(timeout=30_000)
    filtered = json.loads(page.locator("script[id^=widget-spec]").text_content())["data"]["values"]
    assert [str(row["month"])[:7] for row in filtered] == ["2026-06", "2026-07", "2026-08"], filtered
    journey.shot("dashboard-filtered")

    # 6. An alert from the widget's menu: its SQL and connection come with it.
    widget.get_by_text("⋯").click()  # the menu's summary, "Actions for <title>"
    widget.get_by_role("link", name="Create alert").click()
    expect(page).to_have_url(re.compile(r"/alerts/new/\?widget=\d+$"))
    expect(page.get_by_label("Metric name")).to_have_value(QUESTION)
    expect(page.get_by_label("Metric SQL")).to_have_value(re.compile("daily_revenue"))
    page.get_by_label("Condition").select_option("threshold")
    page.get_by_label("Direction").select_option("above")
    page.get_by_label("Threshold").fill("1000")
    page.get_by_role("button", name="Test now").click()
    expect(page.locator("#alert-preview").get_by_text("Would trigger now")).to_be_visible(timeout=20_000)
    journey.shot("alert-test-now")
    page.get_by_role("button", name="Create alert").click()
    expect(page).to_have_url(re.compile(r"/alerts/\d+/$"))
    journey.shot("alert-created")

    # 7. It falls due and fires in the background, while the user looks at the alert's page.
    # The dispatch task is sent exactly as beat sends it every minute; the worker queues and runs
    # the evaluation and pushes the toast through the Redis channel layer to daphne, which
    # forwards it to this page's /ws/notifications/ socket.
    page.wait_for_function("window.openSockets.includes('/ws/notifications/')")
    expect(page.locator("#toasts .toast")).to_have_count(0)
    alert = Alert.objects.get(name=QUESTION)
    Alert.objects.filter(pk=alert.pk).update(next_run_at=now() - timedelta(seconds=1))
    alerts_dispatch_task.delay()
    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text(f"{QUESTION} triggered", timeout=30_000)
    expect(page.locator("#notification-badge")).to_contain_text("1")
    journey.shot("alert-fired")
    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("main")).to_contain_text(f"{QUESTION} triggered")
    assert Notification.objects.filter(user__email="peter@initrode.test").count() == 1
    journey.shot("notifications")

    # 8. Usage: the two model calls of the question, their tokens, the question itself.
    page.get_by_role("navigation").get_by_role("link", name="Usage").click()
    total = sum(GENERATION_TOKENS) + sum(ANALYSIS_TOKENS)
    expect(page.locator("main")).to_contain_text(f"{total} tokens in 2 calls")
    top = page.locator("section", has=page.get_by_role("heading", name="The most expensive questions"))
    expect(top.get_by_role("row", name=re.compile(re.escape(QUESTION)))).to_contain_text(str(total))
    journey.shot("usage")

    # 9. Log out: back to the log-in page, and the app's pages are closed again.
    page.locator("details.usermenu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.goto(f"{stack}/dashboards/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/dashboards/"))
    journey.shot("logged-out")

    journey.assert_clean()


# --- Keyboard only ------------------------------------------------------------------------------

# The focused element, described for a failure message, and whether the browser draws its focus.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {label: 'body', visible: false};
  const style = getComputedStyle(e);
  const label = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' +
    (e.getAttribute('aria-label') || e.textContent || e.value || '').trim().slice(0, 40) + '"';
  const drawn = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return {label, visible: drawn};
}"""


def _tab_to(page: Page, selector: str, *, backwards: bool = False, limit: int = 80) -> None:
    """Press Tab (or Shift+Tab) until `selector` has the focus; every element the focus passes
    on the way must show it (the body is where the focus leaves the page for the browser's UI)."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        focused = page.evaluate(FOCUSED)
        assert focused["visible"] or focused["label"] == "body", f"{focused['label']} hides its focus"
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        seen.append(focused["label"])
    raise AssertionError(f"{selector} never got the focus; it went through: {seen}")


def _focused_is(page: Page, selector: str) -> bool:
    return page.evaluate("s => document.activeElement.matches(s)", selector)


def _focus_comes_back_to(page: Page, selector: str) -> None:
    """After a swap the focus is restored by htmx (same id) or by dashboards.js once the tile has
    loaded; give it that moment, and say where the focus went if it never came back."""
    try:
        page.wait_for_function("s => document.activeElement.matches(s)", arg=selector, timeout=5_000)
    except PlaywrightTimeoutError:
        log = "\n".join(page.evaluate("window.__focusLog.slice(-40)"))
        raise AssertionError(f"the focus did not come back to {selector}:\n{log}") from None


@pytest.fixture
def keyboard_user(transactional_db, settings, demo_warehouse_dir):  # noqa: F811 - the fixture
    """An analyst of an org with the demo warehouse and a dashboard holding one KPI widget."""
    settings.CONNECTIONS_FILE_ROOT = demo_warehouse_dir
    org = OrganizationFactory(name="Acme", slug="acme")
    connection = Connection.objects.create(
        org=org, name="Demo warehouse", engine=Engine.DUCKDB, database=DEMO_WAREHOUSE_FILENAME
    )
    catalogue_refresh(connection_id=connection.pk)
    user = UserFactory(org=org, role=Role.ANALYST, email="keys@acme.test")
    dashboard = DashboardFactory(org=org, owner=user, title="Sales")
    WidgetFactory(
        dashboard=dashboard,
        connection=connection,
        kind=WidgetKind.KPI,
        title="Orders",
        sql="SELECT count(*) AS orders FROM orders",
        chart={"y": "orders"},
        position=0,
    )
    return user


def test_the_main_flows_work_from_the_keyboard_alone_with_the_focus_always_shown(
    keyboard_user, asgi_live_server, watched
):
    keys = watched("keyboard")
    page = keys.page
    press = page.keyboard.press

    # Log in: the e-mail field has the focus on arrival; Tab to the password, Enter.
    page.goto(f"{asgi_live_server}/accounts/login/")
    assert _focused_is(page, "input#id_email"), page.evaluate(FOCUSED)
    page.keyboard.type(keyboard_user.email)
    _tab_to(page, "input#id_password")
    page.keyboard.type(PASSWORD)
    press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/$"))

    # The skip link comes first, shows itself when focused and takes the focus to the content.
    press("Tab")
    assert _focused_is(page, "a.skip-link"), page.evaluate(FOCUSED)
    box = page.locator("a.skip-link").bounding_box()
    assert box is not None and box["y"] >= 0 and page.evaluate(FOCUSED)["visible"]
    keys.shot("skip-link")
    press("Enter")
    assert _focused_is(page, "main#main"), page.evaluate(FOCUSED)
    press("Tab")
    assert page.evaluate("document.getElementById('main').contains(document.activeElement)")

    # Through the navigation to Dashboards, and back to Chat.
    _tab_to(page, "nav.mainnav a[href='/dashboards/']", backwards=True)
    press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboards/$"))
    _tab_to(page, "nav.mainnav a[href='/chat/']")
    keys.shot("nav")
    press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/$"))

    # A new chat on the (preselected) connection; the question typed and sent with Enter.
    _tab_to(page, "form[action='/chat/sessions/new/'] button[type=submit]")
    press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    page.wait_for_selector("body[data-socket=open]")
    _tab_to(page, "textarea#question")
    page.keyboard.type("total revenue by month")
    press("Enter")
    answer = page.locator("article.message-answer").last
    expect(answer.locator(".chart svg.marks")).to_be_visible(timeout=30_000)
    assert _focused_is(page, "textarea#question"), page.evaluate(FOCUSED)  # ready for a follow-up
    keys.shot("answer")

    # Back from the question box to the answer's actions: Pin to dashboard, onto "Sales".
    _tab_to(page, "article.message-answer a[href*='/dashboards/pin/answers/']", backwards=True)
    keys.shot("answer-actions")
    press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboards/pin/answers/\d+/$"))
    _tab_to(page, "select[name=dashboard]")
    press("ArrowDown")  # from "A new dashboard…" to Sales
    expect(page.locator("select[name=dashboard]")).to_have_value(str(Dashboard.objects.get().pk))
    _tab_to(page, "form[action='/dashboards/pin/'] button[type=submit]")
    press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboards/\d+/$"))
    orders, pinned = Widget.objects.order_by("position")
    loaded = "article.widget:not(.widget-loading)"
    expect(page.locator(loaded)).to_have_count(2, timeout=30_000)

    # Move the pinned widget before the KPI with its ← button; the focus stays on the button.
    _tab_to(page, f"#move-earlier-{pinned.pk}")
    press("Enter")
    expect(page.locator("article.widget").first).to_have_id(f"widget-{pinned.pk}")
    expect(page.locator(loaded)).to_have_count(2, timeout=30_000)
    _focus_comes_back_to(page, f"#move-earlier-{pinned.pk}")
    assert [w.pk for w in Widget.objects.order_by("position")] == [pinned.pk, orders.pk]

    # Make it wider with the arrow keys on its width select (saved at once).
    _tab_to(page, f"#width-{pinned.pk}")
    width = page.locator(f"#width-{pinned.pk}").input_value()
    press("ArrowDown")
    expect(page.locator(f"#widget-{pinned.pk}")).not_to_have_class(re.compile(rf"\bw-{width}\b"))
    expect(page.locator(loaded)).to_have_count(2, timeout=30_000)
    pinned.refresh_from_db()
    assert pinned.width > int(width)
    _focus_comes_back_to(page, f"#width-{pinned.pk}")
    keys.shot("dashboard-arranged")

    # Its menu opens with Enter and closes with Escape, the focus back on its button; Create alert
    # opens the alert form with the widget's metric.
    menu = page.locator(f"#widget-{pinned.pk} details.widget-menu")
    _tab_to(page, f"#widget-{pinned.pk} summary")
    press("Enter")
    expect(menu).to_have_attribute("open", "")
    press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    assert page.evaluate("document.activeElement.matches('details.widget-menu > summary')")
    press("Enter")
    expect(menu).to_have_attribute("open", "")
    _tab_to(page, f"#widget-{pinned.pk} a[href*='/alerts/new/']")
    keys.shot("widget-menu")
    press("Enter")
    expect(page).to_have_url(re.compile(rf"/alerts/new/\?widget={pinned.pk}$"))
    _tab_to(page, "input[name=name]")
    assert page.evaluate("document.activeElement.value") == pinned.title
    keys.shot("alert-form")

    keys.assert_clean()
