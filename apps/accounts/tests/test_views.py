import re
import time
from datetime import datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import django_ratelimit.core
import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.core import mail, signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import AuditLog, Invitation, Organization, Role, User
from apps.accounts.tests.factories import AuditLogFactory, InvitationFactory, UserFactory
from apps.accounts.views import rate_limited
from datamind.lib.testing import Personas

HTMX = {"HX-Request": "true"}
LINK = re.compile(r"https?://\S+")


class FrozenClock:
    """Stands in for the `time` module inside django-ratelimit."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ratelimit_clock(monkeypatch) -> FrozenClock:
    # Limits count in windows aligned to the clock; stopping it keeps all of a test's attempts in
    # one window, so the test cannot straddle a boundary and pass or fail by chance.
    clock = FrozenClock()
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    return clock


def audit_actions(org: Organization | None = None) -> list[str]:
    return list(AuditLog.objects.filter(org=org).order_by("id").values_list("action", flat=True))


def logged_in_user_id(client) -> int | None:
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def login(client, email: str, password: str, **extra):
    return client.post(reverse("accounts:login"), {"email": email, "password": password}, **extra)


# Sign-up ----------------------------------------------------------------------------------------


def test_signing_up_creates_the_organisation_and_its_admin_and_logs_them_in(client, db, password):
    response = client.post(
        reverse("accounts:signup"),
        {
            "org_name": "Initech",
            "full_name": "Peter Gibbons",
            "email": "Peter@Initech.test",
            "password1": password,
            "password2": password,
            "timezone": "Europe/Paris",
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("home")
    user = User.objects.get(email="peter@initech.test")
    assert user.role == Role.ADMIN
    assert user.org.name == "Initech"
    assert user.org.timezone == "Europe/Paris"
    assert logged_in_user_id(client) == user.pk
    assert "org.signup" in audit_actions(user.org)


def test_signing_up_with_an_email_that_has_an_account_is_refused(client, personas, password):
    response = client.post(
        reverse("accounts:signup"),
        {
            "org_name": "Another",
            "full_name": "Ada",
            "email": "ADMIN@acme.test",
            "password1": password,
            "password2": password,
            "timezone": "UTC",
        },
    )

    assert response.status_code == 422
    assert "An account with this email already exists" in response.text
    assert not Organization.objects.filter(name="Another").exists()
    assert logged_in_user_id(client) is None


def test_signing_up_with_two_different_passwords_is_refused(client, db, password):
    response = client.post(
        reverse("accounts:signup"),
        {
            "org_name": "Initech",
            "full_name": "Peter",
            "email": "peter@initech.test",
            "password1": password,
            "password2": password + "x",
            "timezone": "UTC",
        },
    )

    assert response.status_code == 422
    assert "The two passwords don" in response.text
    assert not User.objects.filter(email="peter@initech.test").exists()


def test_signing_up_with_a_weak_password_shows_why(client, db):
    response = client.post(
        reverse("accounts:signup"),
        {
            "org_name": "Initech",
            "full_name": "Peter",
            "email": "peter@initech.test",
            "password1": "12345678",
            "password2": "12345678",
            "timezone": "UTC",
        },
    )

    assert response.status_code == 422
    assert "This password is too common." in response.text
    assert not Organization.objects.filter(name="Initech").exists()


@pytest.mark.parametrize("name", ["accounts:signup", "accounts:login"])
def test_a_logged_in_member_visiting_signup_or_login_is_sent_home(client, personas, name):
    client.force_login(personas.analyst)

    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response.url == reverse("home")


# Log-in and log-out -----------------------------------------------------------------------------


def test_a_member_logs_in_with_their_email_and_password(client, personas, password):
    response = login(client, "Analyst@Acme.test", password)

    assert response.status_code == 302
    assert response.url == reverse("home")
    assert logged_in_user_id(client) == personas.analyst.pk
    entry = AuditLog.objects.get(action="user.login")
    assert (entry.org, entry.actor, entry.ip) == (personas.org, personas.analyst, "127.0.0.1")


def test_logging_in_returns_to_the_page_that_asked_for_it(client, personas, password):
    response = client.post(
        reverse("accounts:login"),
        {"email": personas.admin.email, "password": password, "next": "/settings/members/"},
    )

    assert response.url == "/settings/members/"


def test_logging_in_never_follows_a_next_to_another_site(client, personas, password):
    response = client.post(
        reverse("accounts:login"),
        {"email": personas.admin.email, "password": password, "next": "https://evil.example/steal"},
    )

    assert response.url == reverse("home")


def test_the_login_page_carries_next_through_the_form(client, db):
    response = client.get(reverse("accounts:login"), {"next": "/settings/"})

    assert '<input type="hidden" name="next" value="/settings/">' in response.text


def test_a_wrong_password_is_refused_with_a_message_and_audited(client, personas):
    response = login(client, personas.analyst.email, "not-the-password")

    assert response.status_code == 422
    assert "That email and password don&#x27;t match an account" in response.text
    assert logged_in_user_id(client) is None
    entry = AuditLog.objects.get(action="user.login_failed")
    assert entry.org == personas.org
    assert entry.metadata == {"email": personas.analyst.email, "reason": "bad_credentials"}


def test_a_deactivated_member_cannot_log_in_even_with_the_right_password(client, personas, password):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    response = login(client, personas.analyst.email, password)

    assert response.status_code == 422
    assert "This account has been deactivated" in response.text
    assert logged_in_user_id(client) is None
    entry = AuditLog.objects.get(action="user.login_failed")
    assert entry.metadata["reason"] == "inactive"


def test_a_deactivated_account_is_not_revealed_to_someone_without_its_password(client, personas):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    response = login(client, personas.analyst.email, "a-guess")

    assert "deactivated" not in response.text
    assert "That email and password don&#x27;t match an account" in response.text


def test_the_sixth_attempt_from_one_ip_within_a_minute_is_refused(
    client, personas, password, ratelimit_clock
):
    for n in range(5):
        assert login(client, f"guess{n}@acme.test", "nope").status_code == 422

    response = login(client, personas.analyst.email, password)

    assert response.status_code == 429
    assert "Too many log-in attempts. Wait a minute and try again." in response.text
    assert logged_in_user_id(client) is None


def test_the_sixth_attempt_at_one_email_within_a_minute_is_refused_from_any_ip(
    client, personas, password, ratelimit_clock
):
    for n in range(5):
        response = login(client, personas.analyst.email.upper(), "nope", REMOTE_ADDR=f"10.0.0.{n + 1}")
        assert response.status_code == 422

    response = login(client, personas.analyst.email, password, REMOTE_ADDR="10.0.0.99")

    assert response.status_code == 429
    assert "Too many log-in attempts" in response.text
    assert logged_in_user_id(client) is None


def test_the_log_in_limit_lifts_after_a_minute(client, personas, password, ratelimit_clock):
    for _ in range(6):
        login(client, personas.analyst.email, "nope")

    ratelimit_clock.advance(61)
    response = login(client, personas.analyst.email, password)

    assert response.status_code == 302
    assert logged_in_user_id(client) == personas.analyst.pk


def test_the_log_in_rate_comes_from_the_setting(client, personas, settings, ratelimit_clock):
    settings.LOGIN_RATE = "2/m"

    statuses = [login(client, personas.analyst.email, "nope").status_code for _ in range(3)]

    assert statuses == [422, 422, 429]


def test_logging_out_needs_a_post(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("accounts:logout"))

    assert response.status_code == 405
    assert logged_in_user_id(client) == personas.analyst.pk


def test_logging_out_ends_the_session_and_is_audited(client, personas):
    client.force_login(personas.analyst)

    response = client.post(reverse("accounts:logout"), follow=True)

    assert response.redirect_chain[0] == (reverse("accounts:login"), 302)
    assert "You have logged out." in response.text
    assert logged_in_user_id(client) is None
    assert audit_actions(personas.org) == ["user.logout"]


# Password reset, change and profile ---------------------------------------------------------------


def test_asking_for_a_password_reset_emails_a_link(client, personas):
    response = client.post(reverse("accounts:password-reset"), {"email": "Analyst@Acme.test"})

    assert response.status_code == 302
    assert response.url == reverse("accounts:password-reset-sent")
    [email] = mail.outbox
    assert email.to == [personas.analyst.email]
    assert LINK.search(email.body).group().startswith("http://testserver/accounts/password/reset/")
    assert "user.password_reset_request" in audit_actions(personas.org)


def test_asking_for_a_reset_of_an_unknown_email_says_the_same_and_sends_nothing(client, db):
    response = client.post(reverse("accounts:password-reset"), {"email": "nobody@nowhere.test"}, follow=True)

    assert "Check your email" in response.text
    assert mail.outbox == []


def test_the_reset_link_sets_a_new_password_once_and_the_old_one_stops_working(client, personas, password):
    client.post(reverse("accounts:password-reset"), {"email": personas.analyst.email})
    link = LINK.search(mail.outbox[0].body).group()

    page = client.get(link, follow=True)
    assert "Choose a new password" in page.text
    # The token left the address bar before the form was shown.
    form_url = page.redirect_chain[-1][0]
    assert "set-password" in form_url
    response = client.post(
        form_url, {"new_password1": "a-brand-new-passphrase", "new_password2": "a-brand-new-passphrase"}
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:password-reset-complete")
    assert "user.password_change" in audit_actions(personas.org)
    assert login(client, personas.analyst.email, password).status_code == 422
    assert login(client, personas.analyst.email, "a-brand-new-passphrase").status_code == 302
    client.logout()
    reused = client.get(link, follow=True)
    assert reused.status_code == 400
    assert "This link no longer works" in reused.text


def test_a_tampered_reset_link_is_refused(client, personas):
    client.post(reverse("accounts:password-reset"), {"email": personas.analyst.email})
    link = LINK.search(mail.outbox[0].body).group()

    response = client.get(link.rstrip("/") + "x/", follow=True)

    assert response.status_code == 400
    assert "This link no longer works" in response.text


def test_password_reset_requests_are_rate_limited(client, personas, ratelimit_clock):
    for _ in range(5):
        client.post(reverse("accounts:password-reset"), {"email": personas.analyst.email})

    response = client.post(reverse("accounts:password-reset"), {"email": personas.analyst.email})

    assert response.status_code == 429
    assert "Too many password-reset requests" in response.text
    assert len(mail.outbox) == 5


def test_a_member_changes_their_password_and_stays_logged_in(client, personas, password):
    client.force_login(personas.analyst)

    response = client.post(
        reverse("accounts:password-change"),
        {
            "old_password": password,
            "new_password1": "another-good-passphrase",
            "new_password2": "another-good-passphrase",
        },
        follow=True,
    )

    assert "Your password was changed." in response.text
    assert logged_in_user_id(client) == personas.analyst.pk
    personas.analyst.refresh_from_db()
    assert personas.analyst.check_password("another-good-passphrase")
    assert audit_actions(personas.org) == ["user.password_change"]


def test_changing_the_password_needs_the_old_one(client, personas, password):
    client.force_login(personas.analyst)

    response = client.post(
        reverse("accounts:password-change"),
        {
            "old_password": "wrong",
            "new_password1": "another-good-passphrase",
            "new_password2": "another-good-passphrase",
        },
    )

    assert response.status_code == 422
    assert "Your old password was entered incorrectly" in response.text
    personas.analyst.refresh_from_db()
    assert personas.analyst.check_password(password)


def test_a_member_updates_their_name_on_their_profile(client, personas):
    client.force_login(personas.viewer)

    response = client.post(reverse("accounts:profile"), {"full_name": "  Vera Viewer "}, follow=True)

    assert "Your profile was saved." in response.text
    personas.viewer.refresh_from_db()
    assert personas.viewer.full_name == "Vera Viewer"


def test_the_profile_shows_the_members_email_org_and_role(client, personas):
    client.force_login(personas.viewer)

    response = client.get(reverse("accounts:profile"))

    assert personas.viewer.email in response.text
    assert "Acme" in response.text
    assert "Viewer" in response.text


# Invitations --------------------------------------------------------------------------------------


def invite(client, email: str, role: str = Role.ANALYST, **extra):
    return client.post(reverse("accounts:member-invite"), {"email": email, "role": role}, **extra)


def test_an_admin_invites_someone_who_accepts_and_joins_with_that_role(
    client, personas, password, django_capture_on_commit_callbacks
):
    client.force_login(personas.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(client, "Newcomer@Acme.test", Role.VIEWER, headers=HTMX)

    assert response.status_code == 200
    assert "Invitation sent to newcomer@acme.test" in response.text
    assert "newcomer@acme.test" in response.text.split("Pending invitations")[1]
    [email] = mail.outbox
    assert email.to == ["newcomer@acme.test"]
    link = LINK.search(email.body).group()

    client.logout()
    page = client.get(link)
    assert page.status_code == 200
    assert "Join Acme" in page.text
    assert "newcomer@acme.test" in page.text
    assert "Viewer" in page.text

    response = client.post(link, {"full_name": "Nora Newcomer", "password1": password, "password2": password})

    assert response.status_code == 302
    user = User.objects.get(email="newcomer@acme.test")
    assert (user.org, user.role, user.full_name) == (personas.org, Role.VIEWER, "Nora Newcomer")
    assert logged_in_user_id(client) == user.pk
    assert Invitation.objects.get(email="newcomer@acme.test").accepted_at is not None
    assert {"user.invite", "invitation.accept"} <= set(audit_actions(personas.org))


def test_an_invitation_link_older_than_its_lifetime_is_refused(
    client, personas, django_capture_on_commit_callbacks
):
    client.force_login(personas.admin)
    eight_days_ago = signing.b62_encode(int(time.time()) - 8 * 24 * 3600)
    # The link is signed as if it had been sent eight days ago; the limit is seven.
    with (
        mock.patch.object(signing.TimestampSigner, "timestamp", return_value=eight_days_ago),
        django_capture_on_commit_callbacks(execute=True),
    ):
        invite(client, "late@acme.test")
    link = LINK.search(mail.outbox[0].body).group()
    client.logout()

    response = client.get(link)

    assert response.status_code == 400
    assert "This invitation has expired. Ask your admin to send a new one." in response.text
    assert "<form" not in response.text.split("<main", 1)[1]


def test_an_invitation_past_its_expiry_date_is_refused(client, personas, settings, password):
    invitation = InvitationFactory(org=personas.org, expires_at=timezone.now() - timedelta(minutes=1))
    link = reverse("accounts:invitation-accept", args=[services.invitation_token(invitation)])

    response = client.post(link, {"full_name": "Late", "password1": password, "password2": password})

    assert response.status_code == 400
    assert "This invitation has expired" in response.text
    assert not User.objects.filter(email=invitation.email).exists()


def test_a_revoked_invitation_link_is_refused(client, personas):
    invitation = InvitationFactory(org=personas.org, invited_by=personas.admin)
    link = reverse("accounts:invitation-accept", args=[services.invitation_token(invitation)])
    client.force_login(personas.admin)
    client.post(reverse("accounts:invitation-revoke", args=[invitation.pk]))
    client.logout()

    response = client.get(link)

    assert response.status_code == 400
    assert "This invitation was withdrawn" in response.text


def test_an_invitation_link_works_only_once(client, personas, password):
    invitation = InvitationFactory(org=personas.org)
    link = reverse("accounts:invitation-accept", args=[services.invitation_token(invitation)])
    client.post(link, {"full_name": "Once", "password1": password, "password2": password})
    client.logout()

    response = client.get(link)

    assert response.status_code == 400
    assert "This invitation was already used. Log in with your email instead." in response.text
    assert User.objects.filter(email=invitation.email).count() == 1


def test_a_tampered_invitation_link_is_refused(client, personas):
    invitation = InvitationFactory(org=personas.org)
    token = services.invitation_token(invitation)

    response = client.get(reverse("accounts:invitation-accept", args=[token[:-2] + "xx"]))

    assert response.status_code == 400
    assert "This invitation link is not valid" in response.text


def test_a_logged_in_member_opening_an_invitation_is_asked_to_log_out_first(client, personas):
    invitation = InvitationFactory(org=personas.org)
    client.force_login(personas.analyst)

    response = client.post(
        reverse("accounts:invitation-accept", args=[services.invitation_token(invitation)]),
        {"full_name": "Someone", "password1": "x", "password2": "x"},
    )

    assert "Log out first" in response.text
    assert not User.objects.filter(email=invitation.email).exists()


def test_inviting_an_existing_member_is_refused_in_the_form(client, personas):
    client.force_login(personas.admin)

    response = invite(client, personas.viewer.email, headers=HTMX)

    assert response.status_code == 422
    assert "This person is already a member of your organisation." in response.text
    assert "<html" not in response.text
    assert not Invitation.objects.exists()


def test_an_invitation_without_javascript_returns_to_the_member_list_with_a_message(client, personas):
    client.force_login(personas.admin)

    response = invite(client, "plain@acme.test", follow=True)

    assert response.redirect_chain == [(reverse("accounts:member-list"), 302)]
    assert "Invitation sent to plain@acme.test" in response.text


def test_an_admin_revokes_a_pending_invitation(client, personas):
    invitation = InvitationFactory(org=personas.org, invited_by=personas.admin, email="gone@acme.test")
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:invitation-revoke", args=[invitation.pk]), headers=HTMX)

    assert response.status_code == 200
    assert "The invitation to gone@acme.test was revoked" in response.text
    assert "No pending invitations." in response.text
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


# Members -------------------------------------------------------------------------------------------


def test_an_admin_sees_active_and_deactivated_members_and_pending_invitations(client, personas):
    services.user_deactivate(actor=personas.admin, user=personas.viewer)
    InvitationFactory(org=personas.org, invited_by=personas.admin, email="pending@acme.test")
    InvitationFactory(org=personas.other_org, email="elsewhere@globex.test")
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:member-list"))

    assert response.status_code == 200
    for email in (personas.admin.email, personas.analyst.email, personas.viewer.email, "pending@acme.test"):
        assert email in response.text
    assert "Deactivated" in response.text
    assert personas.outsider.email not in response.text
    assert "elsewhere@globex.test" not in response.text


def test_the_member_list_is_a_full_page_and_its_htmx_request_only_the_fragment(client, personas):
    client.force_login(personas.admin)

    page = client.get(reverse("accounts:member-list"))
    fragment = client.get(reverse("accounts:member-list"), headers=HTMX)

    assert "<html" in page.text
    assert 'id="members"' in page.text
    assert "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<div id="members"')
    assert "HX-Request" in fragment["Vary"]
    assert "HX-Request" in page["Vary"]


def test_the_member_list_costs_the_same_queries_for_three_members_or_thirty(
    client, personas, django_assert_num_queries
):
    client.force_login(personas.admin)
    client.get(reverse("accounts:member-list"))  # the session and the bell's count now cached
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("accounts:member-list"))
    UserFactory.create_batch(27, org=personas.org)
    InvitationFactory.create_batch(10, org=personas.org, invited_by=personas.admin)

    with django_assert_num_queries(len(few)):
        response = client.get(reverse("accounts:member-list"))

    assert response.text.count('id="role-') == 30


def test_an_admin_changes_a_members_role(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:member-role", args=[personas.viewer.pk]), {"role": Role.ANALYST}, headers=HTMX
    )

    assert response.status_code == 200
    assert "role is now Analyst" in response.text
    assert 'hx-swap-oob="innerHTML"' in response.text
    personas.viewer.refresh_from_db()
    assert personas.viewer.role == Role.ANALYST
    entry = AuditLog.objects.get(action="user.role_change")
    assert (entry.actor, entry.metadata["from"], entry.metadata["to"]) == (
        personas.admin,
        "viewer",
        "analyst",
    )


def test_an_admin_changes_a_role_without_javascript(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:member-role", args=[personas.analyst.pk]), {"role": Role.ADMIN}, follow=True
    )

    assert response.redirect_chain == [(reverse("accounts:member-list"), 302)]
    assert "role is now Admin" in response.text
    personas.analyst.refresh_from_db()
    assert personas.analyst.role == Role.ADMIN


def test_an_unknown_role_is_refused(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:member-role", args=[personas.viewer.pk]), {"role": "owner"}, headers=HTMX
    )

    assert response.status_code == 422
    assert "Choose one of: viewer, analyst, admin." in response.text
    personas.viewer.refresh_from_db()
    assert personas.viewer.role == Role.VIEWER


def test_the_last_admin_cannot_demote_themselves(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:member-role", args=[personas.admin.pk]), {"role": Role.ANALYST}, headers=HTMX
    )

    assert response.status_code == 422
    assert "This is the organisation&#x27;s last admin. Make someone else an admin first." in response.text
    personas.admin.refresh_from_db()
    assert personas.admin.role == Role.ADMIN
    assert not AuditLog.objects.filter(action="user.role_change").exists()


def test_the_last_admin_cannot_deactivate_themselves(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:member-deactivate", args=[personas.admin.pk]), headers=HTMX)

    assert response.status_code == 422
    assert "last admin" in response.text
    personas.admin.refresh_from_db()
    assert personas.admin.is_active


def test_an_admin_who_steps_down_while_another_admin_remains_is_sent_home(client, personas):
    services.user_change_role(actor=personas.admin, user=personas.analyst, role=Role.ADMIN)
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:member-role", args=[personas.admin.pk]), {"role": Role.ANALYST}, headers=HTMX
    )

    assert response["HX-Redirect"] == reverse("home")
    personas.admin.refresh_from_db()
    assert personas.admin.role == Role.ANALYST


def test_an_admin_deactivates_a_member_who_then_cannot_log_in(client, personas, password):
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:member-deactivate", args=[personas.analyst.pk]), headers=HTMX)

    assert response.status_code == 200
    assert "was deactivated" in response.text
    assert "Reactivate" in response.text
    personas.analyst.refresh_from_db()
    assert not personas.analyst.is_active
    client.logout()
    assert login(client, personas.analyst.email, password).status_code == 422


def test_a_deactivated_members_open_session_stops_working(client, personas):
    client.force_login(personas.analyst)
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_an_admin_reactivates_a_member(client, personas):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:member-reactivate", args=[personas.analyst.pk]), follow=True)

    assert "was reactivated" in response.text
    personas.analyst.refresh_from_db()
    assert personas.analyst.is_active
    assert "user.reactivate" in audit_actions(personas.org)


# Organisation settings --------------------------------------------------------------------------------


def test_an_admin_renames_the_organisation_and_changes_its_timezone(client, personas):
    client.force_login(personas.admin)

    response = client.post(
        reverse("accounts:org-settings"), {"name": "Acme Ltd", "timezone": "Asia/Tokyo"}, follow=True
    )

    assert "Organisation settings saved." in response.text
    personas.org.refresh_from_db()
    assert (personas.org.name, personas.org.timezone) == ("Acme Ltd", "Asia/Tokyo")
    entry = AuditLog.objects.get(action="org.update")
    assert entry.metadata == {"name": ["Acme", "Acme Ltd"], "timezone": ["UTC", "Asia/Tokyo"]}


def test_an_unknown_timezone_is_refused(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:org-settings"), {"name": "Acme", "timezone": "Mars/Olympus"})

    assert response.status_code == 422
    personas.org.refresh_from_db()
    assert personas.org.timezone == "UTC"


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_a_non_admin_sees_the_organisation_settings_read_only(client, personas, persona):
    client.force_login(getattr(personas, persona))

    response = client.get(reverse("accounts:org-settings"))

    assert response.status_code == 200
    assert "Acme" in response.text
    assert reverse("accounts:profile") in response.text
    assert '<form method="post" action="/settings/"' not in response.text
    assert reverse("accounts:member-list") not in response.text


# Audit log ------------------------------------------------------------------------------------------------


def test_the_audit_log_lists_only_the_organisations_entries(client, personas):
    AuditLogFactory(org=personas.org, action="connection.create", actor=personas.analyst)
    AuditLogFactory(org=personas.other_org, action="connection.delete", actor=personas.outsider)
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:audit-log"))

    assert response.status_code == 200
    assert "connection.create" in response.text
    assert "connection.delete" not in response.text
    assert personas.outsider.email not in response.text


def test_the_audit_log_shows_times_in_the_organisations_timezone(client, personas):
    personas.org.timezone = "Asia/Tokyo"
    personas.org.save()
    AuditLogFactory(org=personas.org, created_at=datetime(2025, 3, 1, 23, 30, tzinfo=ZoneInfo("UTC")))
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:audit-log"))

    assert "2025-03-02 08:30:00" in response.text
    assert "Times are in Asia/Tokyo" in response.text


def test_the_audit_log_filters_by_action_actor_day_and_text(client, personas):
    utc = ZoneInfo("UTC")
    AuditLogFactory(
        org=personas.org,
        action="user.invite",
        actor=personas.admin,
        metadata={"email": "zed@acme.test"},
        created_at=datetime(2025, 5, 2, 12, tzinfo=utc),
    )
    AuditLogFactory(
        org=personas.org,
        action="user.login",
        actor=personas.analyst,
        created_at=datetime(2025, 5, 3, 9, tzinfo=utc),
    )
    AuditLogFactory(
        org=personas.org,
        action="user.login",
        actor=personas.admin,
        created_at=datetime(2025, 5, 9, 9, tzinfo=utc),
    )
    client.force_login(personas.admin)
    url = reverse("accounts:audit-log")

    def rows(**params) -> int:
        return client.get(url, params, headers=HTMX).text.count("<tr>") - 1

    assert rows() == 3
    assert rows(action="user.login") == 2
    assert rows(actor=personas.analyst.pk) == 1
    assert rows(since="2025-05-03", until="2025-05-08") == 1
    assert rows(q="zed@") == 1
    assert rows(action="user.login", actor=personas.admin.pk) == 1


def test_the_audit_log_offers_only_its_organisations_actions_and_people(client, personas):
    AuditLogFactory(org=personas.org, action="alert.create")
    AuditLogFactory(org=personas.other_org, action="secret.thing")
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:audit-log"))

    assert '<option value="alert.create">' in response.text
    assert "secret.thing" not in response.text
    assert personas.outsider.email not in response.text


def test_the_audit_log_shows_an_empty_state_when_nothing_matches(client, personas):
    AuditLogFactory(org=personas.org, action="user.login")
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:audit-log"), {"q": "no-such-thing"})

    assert "No entries match these filters" in response.text
    assert "<table" not in response.text


def test_the_audit_log_pages_by_fifty_and_keeps_the_filters_in_the_page_links(client, personas):
    AuditLogFactory.create_batch(120, org=personas.org, action="user.login")
    AuditLogFactory.create_batch(5, org=personas.org, action="user.logout")
    client.force_login(personas.admin)

    first = client.get(reverse("accounts:audit-log"), {"action": "user.login"})
    last = client.get(reverse("accounts:audit-log"), {"action": "user.login", "page": 3}, headers=HTMX)

    assert first.text.count("<code>user.login</code>") == 50
    assert "Page 1 of 3" in first.text
    assert 'href="?action=user.login&amp;page=2"' in first.text
    assert last.text.count("<code>user.login</code>") == 20
    assert 'href="?action=user.login&amp;page=2"' in last.text
    assert "<html" not in last.text


def test_an_htmx_filter_request_gets_only_the_table(client, personas):
    AuditLogFactory(org=personas.org)
    client.force_login(personas.admin)

    response = client.get(reverse("accounts:audit-log"), {"action": "user.login"}, headers=HTMX)

    assert response.text.lstrip().startswith('<section id="audit-table"')
    assert "<html" not in response.text
    assert "HX-Request" in response["Vary"]


def test_the_audit_log_costs_the_same_queries_for_one_entry_or_a_full_page(
    client, personas, django_assert_num_queries
):
    AuditLogFactory(org=personas.org, actor=personas.analyst)
    client.force_login(personas.admin)
    url = reverse("accounts:audit-log")
    client.get(url)  # the session and the bell's count now cached
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(60):
        AuditLogFactory(org=personas.org, actor=UserFactory(org=personas.org), action=f"action.{n % 7}")

    with django_assert_num_queries(len(few)):
        response = client.get(url)

    assert response.text.count("<tr>") == 51


# Who may do what -----------------------------------------------------------------------------------------

ADMIN_GET_PAGES = ["accounts:member-list", "accounts:audit-log"]
ADMIN_POSTS = [
    ("accounts:member-invite", None),
    ("accounts:member-role", "member"),
    ("accounts:member-deactivate", "member"),
    ("accounts:member-reactivate", "member"),
    ("accounts:invitation-revoke", "invitation"),
]
MEMBER_PAGES = ["accounts:org-settings", "accounts:profile", "accounts:password-change"]


def url_for(name: str, kind: str | None, personas: Personas) -> str:
    if kind == "member":
        return reverse(name, args=[personas.viewer.pk])
    if kind == "invitation":
        return reverse(name, args=[InvitationFactory(org=personas.org).pk])
    return reverse(name)


@pytest.mark.parametrize("name", ADMIN_GET_PAGES + MEMBER_PAGES)
def test_anonymous_visitors_are_asked_to_log_in(client, db, name):
    url = reverse(name)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize(("name", "kind"), ADMIN_POSTS)
def test_anonymous_posts_to_admin_actions_change_nothing(client, personas, name, kind):
    response = client.post(url_for(name, kind, personas), {"role": Role.ADMIN, "email": "x@acme.test"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
@pytest.mark.parametrize("name", ADMIN_GET_PAGES)
def test_analysts_and_viewers_cannot_open_admin_pages(client, personas, persona, name):
    client.force_login(getattr(personas, persona))

    response = client.get(reverse(name))

    assert response.status_code == 403
    assert "Only admins of your organisation can do this." in response.text


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
@pytest.mark.parametrize(("name", "kind"), [*ADMIN_POSTS, ("accounts:org-settings", None)])
def test_analysts_and_viewers_cannot_use_admin_actions(client, personas, persona, name, kind):
    client.force_login(getattr(personas, persona))

    response = client.post(
        url_for(name, kind, personas),
        {"role": Role.ADMIN, "email": "x@acme.test", "name": "Pwned", "timezone": "UTC"},
    )

    assert response.status_code == 403
    personas.viewer.refresh_from_db()
    assert personas.viewer.role == Role.VIEWER
    assert personas.viewer.is_active
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(("name", "kind"), [p for p in ADMIN_POSTS if p[1]])
def test_an_admin_of_another_organisation_gets_404_for_this_organisations_members(
    client, personas, name, kind
):
    client.force_login(personas.outsider)

    response = client.post(url_for(name, kind, personas), {"role": Role.ANALYST})

    assert response.status_code == 404
    personas.viewer.refresh_from_db()
    assert (personas.viewer.role, personas.viewer.is_active) == (Role.VIEWER, True)
    assert Invitation.objects.filter(revoked_at__isnull=False).count() == 0


def test_an_admin_of_another_organisation_does_not_see_this_organisations_members(client, personas):
    client.force_login(personas.outsider)

    response = client.get(reverse("accounts:member-list"))

    assert personas.outsider.email in response.text
    assert personas.analyst.email not in response.text


@pytest.mark.parametrize(
    ("method", "name", "kind"),
    [
        ("get", "accounts:member-invite", None),
        ("get", "accounts:member-role", "member"),
        ("get", "accounts:member-deactivate", "member"),
        ("get", "accounts:member-reactivate", "member"),
        ("get", "accounts:invitation-revoke", "invitation"),
        ("post", "accounts:member-list", None),
        ("post", "accounts:audit-log", None),
        ("post", "accounts:password-reset-sent", None),
        ("post", "accounts:password-reset-complete", None),
        ("put", "accounts:org-settings", None),
        ("delete", "accounts:profile", None),
        ("put", "accounts:password-change", None),
        ("put", "accounts:login", None),
        ("put", "accounts:signup", None),
        ("put", "accounts:password-reset", None),
    ],
)
def test_views_refuse_the_wrong_method(client, personas, method, name, kind):
    client.force_login(personas.admin)

    response = getattr(client, method)(url_for(name, kind, personas))

    assert response.status_code == 405


def test_the_rate_limit_view_answers_429_with_the_same_look(rf, db):
    request = rf.get("/")
    request.user = AnonymousUser()

    response = rate_limited(request, Exception())

    assert response.status_code == 429
    assert b"Too many requests" in response.content
