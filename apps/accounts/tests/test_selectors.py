from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apps.accounts import selectors, services
from apps.accounts.models import Invitation, User
from apps.accounts.tests.factories import AuditLogFactory, InvitationFactory


def test_the_member_list_holds_only_the_organisations_members_active_ones_first(personas):
    services.user_deactivate(actor=personas.admin, user=personas.analyst)

    members = list(selectors.member_list(org=personas.org))

    assert members == [personas.admin, personas.viewer, personas.analyst]


def test_a_member_of_another_organisation_is_not_found(personas):
    assert selectors.member_get(org=personas.org, pk=personas.viewer.pk) == personas.viewer
    with pytest.raises(User.DoesNotExist):
        selectors.member_get(org=personas.org, pk=personas.outsider.pk)


def test_pending_invitations_leave_out_accepted_revoked_expired_and_foreign_ones(personas):
    pending = InvitationFactory(org=personas.org, invited_by=personas.admin)
    InvitationFactory(org=personas.org, accepted_at=timezone.now())
    InvitationFactory(org=personas.org, revoked_at=timezone.now())
    InvitationFactory(org=personas.org, expires_at=timezone.now() - timedelta(minutes=1))
    InvitationFactory(org=personas.other_org)

    assert list(selectors.invitation_pending_list(org=personas.org)) == [pending]


def test_an_invitation_of_another_organisation_is_not_found(personas):
    foreign = InvitationFactory(org=personas.other_org)

    with pytest.raises(Invitation.DoesNotExist):
        selectors.invitation_get(org=personas.org, pk=foreign.pk)


def test_the_audit_log_holds_only_the_organisations_entries_newest_first(personas):
    older = AuditLogFactory(org=personas.org, created_at=timezone.now() - timedelta(hours=1))
    newer = AuditLogFactory(org=personas.org)
    AuditLogFactory(org=personas.other_org)

    assert list(selectors.audit_log_list(org=personas.org)) == [newer, older]


def test_audit_days_are_the_organisations_days(personas):
    personas.org.timezone = "America/New_York"
    personas.org.save()
    utc = ZoneInfo("UTC")
    # 02:00 UTC on 2 June is still 1 June in New York.
    late_evening = AuditLogFactory(org=personas.org, created_at=datetime(2025, 6, 2, 2, tzinfo=utc))
    next_morning = AuditLogFactory(org=personas.org, created_at=datetime(2025, 6, 2, 14, tzinfo=utc))

    june_first = selectors.audit_log_list(org=personas.org, since=date(2025, 6, 1), until=date(2025, 6, 1))
    june_second = selectors.audit_log_list(org=personas.org, since=date(2025, 6, 2))

    assert list(june_first) == [late_evening]
    assert list(june_second) == [next_morning]


def test_audit_search_matches_metadata_the_actors_email_or_the_target_id(personas):
    by_metadata = AuditLogFactory(org=personas.org, metadata={"name": "Sales warehouse"})
    by_actor = AuditLogFactory(org=personas.org, actor=personas.viewer)
    by_target = AuditLogFactory(org=personas.org, target_type="connections.connection", target_id="4242")
    AuditLogFactory(org=personas.org, metadata={"name": "other"})

    assert list(selectors.audit_log_list(org=personas.org, query="warehouse")) == [by_metadata]
    assert list(selectors.audit_log_list(org=personas.org, query="viewer@")) == [by_actor]
    assert list(selectors.audit_log_list(org=personas.org, query="4242")) == [by_target]


def test_audit_action_choices_are_the_organisations_distinct_actions(personas):
    AuditLogFactory.create_batch(2, org=personas.org, action="user.login")
    AuditLogFactory(org=personas.org, action="alert.create")
    AuditLogFactory(org=personas.other_org, action="secret.thing")

    assert selectors.audit_action_choices(org=personas.org) == ["alert.create", "user.login"]


def reset_parts(user: User) -> tuple[str, str]:
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


def test_a_good_reset_link_names_its_user(personas):
    uidb64, token = reset_parts(personas.analyst)

    assert selectors.password_reset_user(uidb64=uidb64, token=token) == personas.analyst


def test_a_reset_link_stops_naming_its_user_once_the_password_changes(personas):
    uidb64, token = reset_parts(personas.analyst)
    services.user_set_password(user=personas.analyst, password="a-long-fresh-passphrase")

    assert selectors.password_reset_user(uidb64=uidb64, token=token) is None


@pytest.mark.parametrize("uidb64", ["", "!!!", urlsafe_base64_encode(b"not-a-number"), "MTIzNDU2Nzg"])
def test_a_reset_link_with_a_bad_user_part_names_nobody(personas, uidb64):
    _, token = reset_parts(personas.analyst)

    assert selectors.password_reset_user(uidb64=uidb64, token=token) is None


def test_a_reset_link_of_a_deactivated_member_names_nobody(personas):
    uidb64, token = reset_parts(personas.analyst)
    personas.analyst.is_active = False
    personas.analyst.save()

    assert selectors.password_reset_user(uidb64=uidb64, token=token) is None
