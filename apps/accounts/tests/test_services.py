from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import AuditLog, Invitation, Organization, Role, User
from apps.accounts.tests.factories import InvitationFactory, OrganizationFactory, UserFactory


def signup(**overrides) -> User:
    fields = {
        "org_name": "Initech",
        "full_name": "Peter Gibbons",
        "email": "peter@initech.test",
        "password": "correct-horse-battery-staple",
        "timezone_name": "Europe/Paris",
    }
    return services.organization_signup(**(fields | overrides))


# organization_signup ---------------------------------------------------------------------------


def test_signing_up_creates_an_organisation_with_its_first_admin(db):
    user = signup(email=" Peter@Initech.TEST ")

    assert user.email == "peter@initech.test"
    assert user.role == Role.ADMIN
    assert user.check_password("correct-horse-battery-staple")
    assert (user.org.name, user.org.slug, user.org.timezone) == ("Initech", "initech", "Europe/Paris")
    entry = AuditLog.objects.get()
    assert (entry.action, entry.org, entry.actor) == ("org.signup", user.org, user)


def test_two_organisations_with_the_same_name_get_different_slugs(db):
    first = signup(email="a@initech.test")
    second = signup(email="b@initech.test")

    assert (first.org.slug, second.org.slug) == ("initech", "initech-2")


def test_signing_up_with_an_email_that_has_an_account_is_refused(personas):
    with pytest.raises(ValidationError) as error:
        signup(email="ADMIN@acme.test")

    assert "email" in error.value.error_dict
    assert not Organization.objects.filter(name="Initech").exists()


def test_a_refused_password_leaves_no_organisation_behind(db):
    with pytest.raises(ValidationError):
        signup(password="password")

    assert not Organization.objects.exists()
    assert not User.objects.exists()


def test_an_unknown_timezone_is_refused(db):
    with pytest.raises(ValidationError) as error:
        signup(timezone_name="Mars/Olympus")

    assert "timezone" in error.value.error_dict


# user_invite ------------------------------------------------------------------------------------


def invite(personas, email: str = "new@acme.test", role: str = Role.ANALYST) -> Invitation:
    return services.user_invite(
        org=personas.org, invited_by=personas.admin, email=email, role=role, base_url="https://bi.acme.test/"
    )


def test_inviting_someone_emails_them_a_link_once_the_transaction_commits(
    personas, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite(personas, email=" New@Acme.test ", role=Role.VIEWER)
        assert mail.outbox == []

    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "new@acme.test",
        "viewer",
        personas.admin,
    )
    assert invitation.is_pending
    [email] = mail.outbox
    assert email.to == ["new@acme.test"]
    assert email.subject == "You're invited to Acme on DataMind"
    token = services.invitation_token(invitation)
    assert f"https://bi.acme.test/invitations/{token}/" in email.body
    assert f"https://bi.acme.test/invitations/{token}/" in email.alternatives[0][0]
    entry = AuditLog.objects.get(action="user.invite")
    assert entry.metadata == {"email": "new@acme.test", "role": "viewer"}


def test_a_new_invitation_replaces_an_earlier_pending_one_for_the_same_address(personas):
    first = invite(personas)
    second = invite(personas)

    first.refresh_from_db()
    assert first.revoked_at is not None
    assert second.is_pending


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("viewer@acme.test", "already a member of your organisation"),
        ("admin@globex.test", "already has a DataMind account in another organisation"),
    ],
)
def test_someone_who_already_has_an_account_cannot_be_invited(personas, email, message):
    with pytest.raises(ValidationError) as error:
        invite(personas, email=email)

    assert message in error.value.message_dict["email"][0]
    assert not Invitation.objects.exists()


def test_an_invitation_needs_a_known_role(personas):
    with pytest.raises(ValidationError) as error:
        invite(personas, role="owner")

    assert "role" in error.value.error_dict


# invitation_accept --------------------------------------------------------------------------------


def test_accepting_an_invitation_creates_the_member_with_the_invited_role(personas, password):
    invitation = InvitationFactory(org=personas.org, role=Role.VIEWER, email="vic@acme.test")

    user = services.invitation_accept(
        token=services.invitation_token(invitation), full_name=" Vic ", password=password
    )

    assert (user.email, user.full_name, user.org, user.role) == (
        "vic@acme.test",
        "Vic",
        personas.org,
        "viewer",
    )
    assert user.check_password(password)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert AuditLog.objects.get(action="invitation.accept").metadata == {"role": "viewer"}


def test_an_invitation_cannot_be_accepted_twice(personas, password):
    token = services.invitation_token(InvitationFactory(org=personas.org))
    services.invitation_accept(token=token, full_name="Once", password=password)

    with pytest.raises(ValidationError, match="already used"):
        services.invitation_accept(token=token, full_name="Twice", password=password)


def test_a_revoked_invitation_cannot_be_accepted(personas, password):
    invitation = InvitationFactory(org=personas.org)
    services.invitation_revoke(invitation=invitation, actor=personas.admin)

    with pytest.raises(ValidationError, match="withdrawn"):
        services.invitation_accept(
            token=services.invitation_token(invitation), full_name="X", password=password
        )


def test_an_expired_invitation_cannot_be_accepted(personas, password):
    invitation = InvitationFactory(org=personas.org, expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(ValidationError, match="expired"):
        services.invitation_accept(
            token=services.invitation_token(invitation), full_name="X", password=password
        )


def test_accepting_with_a_weak_password_creates_nobody(personas):
    invitation = InvitationFactory(org=personas.org)

    with pytest.raises(ValidationError):
        services.invitation_accept(token=services.invitation_token(invitation), full_name="X", password="123")

    assert not User.objects.filter(email=invitation.email).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


# user_change_role and user_deactivate ---------------------------------------------------------------


def test_changing_a_role_is_audited_with_before_and_after(personas):
    services.user_change_role(actor=personas.admin, user=personas.viewer, role=Role.ANALYST)

    personas.viewer.refresh_from_db()
    assert personas.viewer.role == Role.ANALYST
    entry = AuditLog.objects.get(action="user.role_change")
    assert entry.metadata == {"email": "viewer@acme.test", "from": "viewer", "to": "analyst"}


def test_setting_the_same_role_again_changes_and_records_nothing(personas):
    services.user_change_role(actor=personas.admin, user=personas.analyst, role=Role.ANALYST)

    assert not AuditLog.objects.exists()


def test_the_last_admin_cannot_be_demoted(personas):
    with pytest.raises(ValidationError, match="last admin"):
        services.user_change_role(actor=personas.admin, user=personas.admin, role=Role.VIEWER)

    personas.admin.refresh_from_db()
    assert personas.admin.role == Role.ADMIN


def test_an_admin_can_be_demoted_while_another_admin_remains(personas):
    services.user_change_role(actor=personas.admin, user=personas.analyst, role=Role.ADMIN)

    services.user_change_role(actor=personas.analyst, user=personas.admin, role=Role.VIEWER)

    personas.admin.refresh_from_db()
    assert personas.admin.role == Role.VIEWER


def test_another_organisations_admins_do_not_count_towards_the_last_admin_rule(personas):
    UserFactory(org=personas.other_org, role=Role.ADMIN)

    with pytest.raises(ValidationError):
        services.user_deactivate(actor=personas.admin, user=personas.admin)


def test_deactivating_a_member_is_audited_and_done_once(personas):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    personas.analyst.refresh_from_db()
    assert not personas.analyst.is_active
    assert AuditLog.objects.filter(action="user.deactivate").count() == 1


def test_the_last_admin_cannot_be_deactivated(personas):
    with pytest.raises(ValidationError, match="last admin"):
        services.user_deactivate(actor=personas.admin, user=personas.admin)

    personas.admin.refresh_from_db()
    assert personas.admin.is_active


def test_a_deactivated_admin_does_not_count_as_a_remaining_admin(personas):
    second = UserFactory(org=personas.org, role=Role.ADMIN)
    services.user_deactivate(actor=personas.admin, user=second)

    with pytest.raises(ValidationError):
        services.user_change_role(actor=personas.admin, user=personas.admin, role=Role.ANALYST)


def test_reactivating_a_member_lets_them_back_in(personas):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    services.user_reactivate(actor=personas.admin, user=personas.analyst)

    personas.analyst.refresh_from_db()
    assert personas.analyst.is_active
    assert "user.reactivate" in AuditLog.objects.values_list("action", flat=True)


# Passwords -----------------------------------------------------------------------------------------


def test_setting_a_password_is_audited_as_a_password_change(personas):
    services.user_set_password(user=personas.analyst, password="a-long-fresh-passphrase")

    personas.analyst.refresh_from_db()
    assert personas.analyst.check_password("a-long-fresh-passphrase")
    entry = AuditLog.objects.get()
    assert (entry.action, entry.actor, entry.org) == ("user.password_change", personas.analyst, personas.org)


def test_a_password_too_close_to_the_email_is_refused(personas, password):
    with pytest.raises(ValidationError):
        services.user_set_password(user=personas.analyst, password="analyst@acme.test")

    personas.analyst.refresh_from_db()
    assert personas.analyst.check_password(password)


def test_a_password_reset_link_is_emailed_to_an_active_account(personas, rf: RequestFactory):
    services.password_reset_send(email=" ANALYST@acme.test", request=rf.get("/"))

    [email] = mail.outbox
    assert email.to == ["analyst@acme.test"]
    assert "http://testserver/accounts/password/reset/" in email.body
    assert AuditLog.objects.get().action == "user.password_reset_request"


@pytest.mark.parametrize("email", ["nobody@acme.test", "viewer@acme.test"])
def test_no_reset_link_goes_to_an_unknown_or_deactivated_account(personas, rf: RequestFactory, email):
    services.user_deactivate(actor=personas.admin, user=personas.viewer)
    AuditLog.objects.all().delete()

    services.password_reset_send(email=email, request=rf.get("/"))

    assert mail.outbox == []
    assert not AuditLog.objects.exists()


# audit_log_record ------------------------------------------------------------------------------------


def test_an_audit_entry_records_who_did_what_to_which_object_and_from_where(personas, rf: RequestFactory):
    request = rf.post("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Mozilla/5.0 " + "x" * 500)

    entry = services.audit_log_record(
        action="connection.create",
        org=personas.org,
        actor=personas.admin,
        target=personas.analyst,
        metadata={"name": "Warehouse"},
        request=request,
    )

    entry.refresh_from_db()
    assert (entry.action, entry.org, entry.actor) == ("connection.create", personas.org, personas.admin)
    assert (entry.target_type, entry.target_id) == ("accounts.user", str(personas.analyst.pk))
    assert entry.metadata == {"name": "Warehouse"}
    assert entry.ip == "203.0.113.9"
    assert len(entry.user_agent) == 400


def test_an_audit_entry_may_have_no_actor_target_or_request(db):
    entry = services.audit_log_record(action="system.tick", org=OrganizationFactory())

    assert (entry.actor, entry.target_type, entry.target_id, entry.ip) == (None, "", "", None)


def test_a_failed_log_in_is_recorded_in_the_organisation_of_the_account_tried(personas, rf: RequestFactory):
    services.login_failure_record(email="Viewer@Acme.test ", request=rf.post("/"))

    entry = AuditLog.objects.get()
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, None, str(personas.viewer.pk))
    assert entry.metadata == {"email": "viewer@acme.test", "reason": "bad_credentials"}


# demo_org_ensure ---------------------------------------------------------------------------------------


def test_the_demo_organisation_is_created_once_however_often_it_is_ensured(db, settings):
    settings.DEBUG = True

    first = services.demo_org_ensure()
    services.user_update_profile(user=User.objects.get(email="admin@acme.test"), full_name="Renamed")
    second = services.demo_org_ensure()

    assert first == second
    assert Organization.objects.count() == 1
    assert sorted(User.objects.values_list("email", "role")) == [
        ("admin@acme.test", "admin"),
        ("analyst@acme.test", "analyst"),
    ]
    assert User.objects.get(email="admin@acme.test").full_name == "Renamed"
    assert User.objects.get(email="analyst@acme.test").check_password(services.DEMO_PASSWORD)


def test_the_demo_organisation_is_never_created_in_production(db, settings):
    settings.DEBUG = False

    with pytest.raises(RuntimeError):
        services.demo_org_ensure()

    assert not Organization.objects.exists()
