"""The foundation's main flows in a real browser (Playwright driving Debian's chromium)."""

import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from apps.accounts.models import AuditLog, Role, User
from apps.accounts.services import DEMO_PASSWORD, demo_org_ensure
from datamind.lib.testing import browser_sign_up

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"accounts-{name}.png"), full_page=True)


def _log_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_new_organisation_signs_up_invites_a_member_changes_a_role_and_reads_the_audit_log(
    live_server, page: Page, browser
):
    base = live_server.url
    browser_sign_up(
        page,
        base,
        org="Initech",
        name="Bill Lumbergh",
        email="bill@initech.test",
        password="tps-reports-2026",
    )
    page.get_by_role("button", name="Create organisation").click()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    _shot(page, "1-signed-up")

    page.goto(f"{base}/settings/members/")
    page.get_by_label("Email").fill("milton@initech.test")
    page.get_by_label("Role", exact=True).select_option(Role.ANALYST)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("cell", name="milton@initech.test").first).to_be_visible()
    _shot(page, "2-invited")
    link = re.search(r"https?://\S+/invitations/\S+/", mail.outbox[-1].body).group(0)

    invitee = browser.new_context().new_page()
    invitee.goto(link)
    invitee.get_by_label("Your name").fill("Milton Waddams")
    invitee.get_by_label("Password", exact=True).fill("red-stapler-2026")
    invitee.get_by_label("Password again").fill("red-stapler-2026")
    invitee.get_by_role("button", name=re.compile("join", re.IGNORECASE)).click()
    expect(invitee).to_have_url(re.compile(r"/chat/$"))
    milton = User.objects.get(email="milton@initech.test")
    assert milton.role == Role.ANALYST and milton.org.name == "Initech"

    page.goto(f"{base}/settings/members/")
    page.get_by_label("Role of Milton Waddams").select_option(Role.VIEWER)
    expect(page.get_by_label("Role of Milton Waddams")).to_have_value(Role.VIEWER)
    for _ in range(50):  # the select posts on change; wait for the server to have saved it
        milton.refresh_from_db()
        if milton.role == Role.VIEWER:
            break
        page.wait_for_timeout(100)
    assert milton.role == Role.VIEWER

    page.goto(f"{base}/audit/")
    expect(page.get_by_role("cell", name="user.role_change").first).to_be_visible()
    expect(page.get_by_role("cell", name="user.invite").first).to_be_visible()
    _shot(page, "3-audit-log")
    assert AuditLog.objects.filter(org=milton.org, action="invitation.accept").exists()

    page.locator("details.usermenu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_the_demo_admin_logs_in_and_sees_the_navigation(live_server, page: Page, settings):
    settings.DEBUG = True
    demo_org_ensure()
    _log_in(page, live_server.url, "admin@acme.test", DEMO_PASSWORD)
    expect(page).to_have_url(re.compile(r"/chat/$"))
    for section in ("Chat", "Dashboards", "Alerts", "Connections", "Usage", "Settings", "Audit"):
        expect(page.get_by_role("navigation").get_by_role("link", name=section, exact=True)).to_be_visible()
    _shot(page, "4-demo-admin")
