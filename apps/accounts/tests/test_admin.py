import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.accounts.admin import InvitationAdmin
from apps.accounts.models import AuditLog, Invitation, Organization, Role, User
from apps.accounts.tests.factories import AuditLogFactory, InvitationFactory, UserFactory
from datamind.lib.testing import PASSWORD, Personas

NEW_PASSWORD = "a-long-and-unusual-passphrase-42"


@pytest.fixture
def superuser(db) -> User:
    return UserFactory(org=None, is_superuser=True, role=Role.ADMIN, email="root@datamind.test")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def changelist(model: str) -> str:
    return reverse(f"admin:accounts_{model}_changelist")


def change(obj) -> str:
    return reverse(f"admin:accounts_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def rows(personas: Personas) -> dict:
    """One invitation and one audit entry in each org, with values that are easy to look for."""
    return {
        "invitation": InvitationFactory(
            org=personas.org, email="invitee@acme.test", invited_by=personas.admin
        ),
        "other_invitation": InvitationFactory(org=personas.other_org, email="invitee@globex.test"),
        "entry": AuditLogFactory(org=personas.org, action="connection.create", target_id="acme-4711"),
        "other_entry": AuditLogFactory(
            org=personas.other_org,
            actor=personas.outsider,
            action="connection.delete",
            target_id="globex-0815",
        ),
    }


# Who may enter --------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_members_below_admin_are_sent_to_the_admin_login(personas: Personas, persona: str):
    client = logged_in(getattr(personas, persona))

    for url in (reverse("admin:index"), changelist("user")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_an_org_admin_enters_the_admin_and_sees_the_accounts_models(personas: Personas):
    response = logged_in(personas.admin).get(reverse("admin:index"))

    assert response.status_code == 200
    assert "DataMind admin" in response.text
    for model in ("organization", "user", "invitation", "auditlog"):
        assert changelist(model) in response.text


def test_an_org_admin_does_not_see_models_outside_the_org_scoped_admin(personas: Personas):
    response = logged_in(personas.admin).get(reverse("admin:index"))

    assert reverse("admin:auth_group_changelist") not in response.text
    assert logged_in(personas.admin).get(reverse("admin:auth_group_changelist")).status_code == 403


# Lists are scoped -----------------------------------------------------------------------------


def test_an_org_admin_lists_only_their_own_orgs_users(personas: Personas):
    response = logged_in(personas.admin).get(changelist("user"))

    assert response.status_code == 200
    assert "analyst@acme.test" in response.text
    assert "admin@globex.test" not in response.text


def test_an_org_admin_lists_only_their_own_orgs_invitations(personas: Personas, rows: dict):
    response = logged_in(personas.admin).get(changelist("invitation"))

    assert "invitee@acme.test" in response.text
    assert "invitee@globex.test" not in response.text


def test_an_org_admin_lists_only_their_own_orgs_audit_entries(personas: Personas, rows: dict):
    response = logged_in(personas.admin).get(changelist("auditlog"))

    assert "acme-4711" in response.text
    assert "globex-0815" not in response.text
    # Nor do the filters offer another org's actions or people.
    assert "connection.delete" not in response.text
    assert "admin@globex.test" not in response.text


def test_an_org_admin_sees_only_their_own_organization(personas: Personas):
    response = logged_in(personas.admin).get(changelist("organization"))

    assert "Acme" in response.text
    assert "Globex" not in response.text


def test_org_columns_and_filters_are_for_superusers_only(personas: Personas, superuser: User):
    as_admin = logged_in(personas.admin).get(changelist("user"))
    as_superuser = logged_in(superuser).get(changelist("user"))

    assert "column-org" not in as_admin.text
    assert "?org__id__exact=" not in as_admin.text
    assert "column-org" in as_superuser.text
    assert f"?org__id__exact={personas.other_org.pk}" in as_superuser.text


def test_a_superuser_sees_every_org(personas: Personas, superuser: User, rows: dict):
    client = logged_in(superuser)

    assert "admin@globex.test" in client.get(changelist("user")).text
    assert "invitee@globex.test" in client.get(changelist("invitation")).text
    assert "globex-0815" in client.get(changelist("auditlog")).text
    assert client.get(change(personas.other_org)).status_code == 200


# Another org's rows are not found ---------------------------------------------------------------


@pytest.mark.parametrize("row", ["outsider", "other_org", "other_entry", "other_invitation"])
def test_another_orgs_row_is_a_404_for_an_org_admin(personas: Personas, rows: dict, row: str):
    obj = getattr(personas, row, None) or rows[row]
    client = logged_in(personas.admin)

    response = client.get(change(obj))

    assert response.status_code == 404
    assert "globex" not in response.text.lower()
    delete_url = reverse(f"admin:accounts_{obj._meta.model_name}_delete", args=[obj.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 404
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_a_row_that_does_not_exist_is_the_same_404(personas: Personas):
    response = logged_in(personas.admin).get(reverse("admin:accounts_user_change", args=[999_999]))

    assert response.status_code == 404


def test_another_orgs_user_cannot_be_changed_by_post(personas: Personas):
    response = logged_in(personas.admin).post(
        change(personas.outsider), {"email": "taken@acme.test", "full_name": "x", "role": "viewer"}
    )

    assert response.status_code == 404
    personas.outsider.refresh_from_db()
    assert (personas.outsider.email, personas.outsider.role) == ("admin@globex.test", Role.ADMIN)


# Organizations --------------------------------------------------------------------------------


def test_an_org_admin_cannot_add_or_delete_an_organization(personas: Personas):
    client = logged_in(personas.admin)

    assert client.get(reverse("admin:accounts_organization_add")).status_code == 403
    assert (
        client.post(reverse("admin:accounts_organization_add"), {"name": "Evil", "slug": "evil"}).status_code
        == 403
    )
    delete_url = reverse("admin:accounts_organization_delete", args=[personas.org.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert not Organization.objects.filter(slug="evil").exists()
    assert Organization.objects.filter(pk=personas.org.pk).exists()


def test_an_org_admin_renames_their_org_but_cannot_change_its_plan(personas: Personas):
    response = logged_in(personas.admin).post(
        change(personas.org),
        {"name": "Acme Corp", "timezone": "Europe/Paris", "plan": "enterprise", "slug": "stolen"},
    )

    assert response.status_code == 302
    personas.org.refresh_from_db()
    assert (personas.org.name, personas.org.timezone) == ("Acme Corp", "Europe/Paris")
    assert (personas.org.plan, personas.org.slug) == ("free", "acme")
    entry = AuditLog.objects.get(action="org.update")
    assert (entry.actor, entry.metadata["name"]) == (personas.admin, ["Acme", "Acme Corp"])


def test_a_superuser_changes_an_orgs_plan(personas: Personas, superuser: User):
    response = logged_in(superuser).post(
        change(personas.other_org), {"name": "Globex", "slug": "globex", "plan": "pro", "timezone": "UTC"}
    )

    assert response.status_code == 302
    personas.other_org.refresh_from_db()
    assert personas.other_org.plan == "pro"


# Users ----------------------------------------------------------------------------------------


def test_the_user_form_never_shows_the_password(personas: Personas):
    response = logged_in(personas.admin).get(change(personas.analyst))

    assert response.status_code == 200
    assert personas.analyst.password not in response.text
    assert 'name="password' not in response.text


def test_an_org_admin_is_not_offered_the_org_or_superuser_fields(personas: Personas):
    client = logged_in(personas.admin)

    for url in (change(personas.analyst), reverse("admin:accounts_user_add")):
        response = client.get(url)
        assert 'name="org"' not in response.text
        assert 'name="is_superuser"' not in response.text


def test_an_org_admin_adds_a_user_to_their_own_org_with_a_password(personas: Personas):
    response = logged_in(personas.admin).post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Person@Acme.test",
            "full_name": "New Person",
            "role": "viewer",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            # Fields an org admin is not offered are ignored, not obeyed.
            "org": personas.other_org.pk,
            "is_superuser": "on",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="new.person@acme.test")
    assert (user.org, user.role, user.is_superuser) == (personas.org, Role.VIEWER, False)
    assert user.check_password(NEW_PASSWORD)
    entry = AuditLog.objects.get(action="user.create")
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, personas.admin, str(user.pk))


def test_adding_a_user_checks_the_password_twice(personas: Personas):
    response = logged_in(personas.admin).post(
        reverse("admin:accounts_user_add"),
        {"email": "new@acme.test", "role": "viewer", "password1": NEW_PASSWORD, "password2": "different"},
    )

    assert response.status_code == 200
    assert "didn’t match" in response.text
    assert not User.objects.filter(email="new@acme.test").exists()


def test_an_org_admin_cannot_grant_superuser_or_move_a_user_to_another_org(personas: Personas):
    response = logged_in(personas.admin).post(
        change(personas.analyst),
        {
            "email": "analyst@acme.test",
            "full_name": "Renamed",
            "role": "analyst",
            "is_active": "on",
            "org": personas.other_org.pk,
            "is_superuser": "on",
        },
    )

    assert response.status_code == 302
    personas.analyst.refresh_from_db()
    assert personas.analyst.full_name == "Renamed"
    assert (personas.analyst.org, personas.analyst.is_superuser) == (personas.org, False)


def test_a_role_change_in_the_admin_goes_through_the_service_and_is_audited(personas: Personas):
    response = logged_in(personas.admin).post(
        change(personas.analyst),
        {"email": "analyst@acme.test", "full_name": "A", "role": "viewer", "is_active": "on"},
    )

    assert response.status_code == 302
    personas.analyst.refresh_from_db()
    assert personas.analyst.role == Role.VIEWER
    entry = AuditLog.objects.get(action="user.role_change")
    assert entry.metadata == {"email": "analyst@acme.test", "from": "analyst", "to": "viewer"}


def test_deactivating_a_user_in_the_admin_is_audited(personas: Personas):
    logged_in(personas.admin).post(
        change(personas.viewer), {"email": "viewer@acme.test", "full_name": "V", "role": "viewer"}
    )

    personas.viewer.refresh_from_db()
    assert not personas.viewer.is_active
    assert AuditLog.objects.filter(action="user.deactivate", target_id=str(personas.viewer.pk)).exists()


def test_the_last_admin_cannot_demote_themselves_in_the_admin(personas: Personas):
    client = logged_in(personas.admin)

    response = client.post(
        change(personas.admin),
        {"email": "admin@acme.test", "full_name": "Renamed", "role": "viewer", "is_active": "on"},
    )

    assert response.status_code == 302
    assert response["Location"] == change(personas.admin)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "This is the organisation's last admin. Make someone else an admin first."
    ]
    personas.admin.refresh_from_db()
    # Nothing of the refused change was saved, the name included.
    assert (personas.admin.role, personas.admin.full_name) != (Role.VIEWER, "Renamed")
    assert personas.admin.role == Role.ADMIN


def test_an_org_admin_deactivates_people_instead_of_deleting_them(personas: Personas):
    client = logged_in(personas.admin)

    response = client.post(reverse("admin:accounts_user_delete", args=[personas.viewer.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert User.objects.filter(pk=personas.viewer.pk).exists()


def test_a_superuser_moves_a_user_to_another_org(personas: Personas, superuser: User):
    response = logged_in(superuser).post(
        change(personas.viewer),
        {"email": "viewer@acme.test", "role": "viewer", "is_active": "on", "org": personas.other_org.pk},
    )

    assert response.status_code == 302
    personas.viewer.refresh_from_db()
    assert personas.viewer.org == personas.other_org


# Invitations ----------------------------------------------------------------------------------


def test_an_org_admin_invites_someone_through_the_admin(personas: Personas):
    response = logged_in(personas.admin).post(
        reverse("admin:accounts_invitation_add"), {"email": "Friend@Example.test", "role": "analyst"}
    )

    assert response.status_code == 302
    invitation = Invitation.objects.get(email="friend@example.test")
    assert (invitation.org, invitation.invited_by, invitation.is_pending) == (
        personas.org,
        personas.admin,
        True,
    )
    assert AuditLog.objects.filter(action="user.invite", org=personas.org).exists()


def test_inviting_an_existing_member_is_refused_with_the_reason(personas: Personas):
    client = logged_in(personas.admin)

    response = client.post(
        reverse("admin:accounts_invitation_add"), {"email": "viewer@acme.test", "role": "analyst"}
    )

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "This person is already a member of your organisation."
    ]
    assert not Invitation.objects.filter(email="viewer@acme.test").exists()


def test_an_org_admin_revokes_invitations_with_the_admin_action(personas: Personas, rows: dict):
    response = logged_in(personas.admin).post(
        changelist("invitation"),
        {"action": "revoke", "_selected_action": [rows["invitation"].pk, rows["other_invitation"].pk]},
    )

    assert response.status_code == 302
    rows["invitation"].refresh_from_db()
    rows["other_invitation"].refresh_from_db()
    assert rows["invitation"].revoked_at is not None
    # The other org's invitation is not in the admin's queryset, whatever the POST says.
    assert rows["other_invitation"].revoked_at is None


def test_an_invitation_is_not_edited_after_it_is_sent(personas: Personas, rows: dict):
    client = logged_in(personas.admin)

    response = client.get(change(rows["invitation"]))

    assert response.status_code == 200
    assert 'name="_save"' not in response.text
    assert (
        client.post(change(rows["invitation"]), {"email": "x@acme.test", "role": "admin"}).status_code == 403
    )


def test_foreign_key_choices_are_limited_to_the_org(personas: Personas):
    request = RequestFactory().get("/admin/")
    request.user = personas.admin
    model_admin = InvitationAdmin(Invitation, admin.site)

    field = model_admin.formfield_for_foreignkey(Invitation._meta.get_field("invited_by"), request)

    assert set(field.queryset) == {personas.admin, personas.analyst, personas.viewer}


# The audit log --------------------------------------------------------------------------------


def test_audit_entries_are_read_only_for_an_org_admin(personas: Personas, rows: dict):
    client = logged_in(personas.admin)
    entry = rows["entry"]

    response = client.get(change(entry))

    assert response.status_code == 200
    assert "acme-4711" in response.text
    assert 'name="_save"' not in response.text
    assert client.post(change(entry), {"action": "forged"}).status_code == 403
    assert client.get(reverse("admin:accounts_auditlog_add")).status_code == 403
    delete_url = reverse("admin:accounts_auditlog_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.action == "connection.create"


def test_audit_entries_are_read_only_for_a_superuser_too(personas: Personas, superuser: User, rows: dict):
    client = logged_in(superuser)

    assert client.post(change(rows["other_entry"]), {"action": "forged"}).status_code == 403
    assert client.get(reverse("admin:accounts_auditlog_add")).status_code == 403


def test_audit_entries_can_be_searched_and_filtered(personas: Personas, rows: dict):
    AuditLogFactory(org=personas.org, action="user.login", target_id="acme-1234")
    client = logged_in(personas.admin)

    searched = client.get(changelist("auditlog"), {"q": "4711"})
    filtered = client.get(changelist("auditlog"), {"action": "user.login"})

    assert "acme-4711" in searched.text and "acme-1234" not in searched.text
    assert "acme-1234" in filtered.text and "acme-4711" not in filtered.text


def test_the_user_changelist_needs_a_fixed_number_of_queries(
    personas: Personas, django_assert_max_num_queries
):
    client = logged_in(personas.admin)
    for n in range(10):
        UserFactory(org=personas.org, email=f"member{n}@acme.test")

    with django_assert_max_num_queries(8):
        response = client.get(changelist("user"))

    assert response.status_code == 200


def test_the_login_page_of_the_admin_accepts_org_admins(personas: Personas):
    client = Client()

    response = client.post(
        reverse("admin:login"), {"username": "admin@acme.test", "password": PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
