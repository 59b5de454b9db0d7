from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from apps.accounts.models import AuditLog, User
from apps.accounts.tests.factories import UserFactory
from datamind.lib.testing import PASSWORD, Personas

TOKEN_URL = reverse("accounts-api:token-obtain")
REFRESH_URL = reverse("accounts-api:token-refresh")
LOGOUT_URL = reverse("accounts-api:logout")
ME_URL = reverse("accounts-api:me")
MEMBERS_URL = reverse("accounts-api:member-list")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def obtain(api: APIClient, email: str, password: str = PASSWORD, **extra: str):
    return api.post(TOKEN_URL, {"email": email, "password": password}, format="json", **extra)


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


# Obtaining a token ------------------------------------------------------------------------------


def test_it_gives_a_token_pair_for_the_right_password(api: APIClient, personas: Personas):
    response = obtain(api, "admin@acme.test")

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert AccessToken(response.json()["access"])["user_id"] == str(personas.admin.pk)


def test_the_access_token_it_gives_authenticates_the_caller(api: APIClient, personas: Personas):
    access = obtain(api, "analyst@acme.test").json()["access"]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = api.get(ME_URL)

    assert response.status_code == 200
    assert response.json()["email"] == "analyst@acme.test"


def test_it_records_the_login_in_the_audit_log_and_updates_last_login(api: APIClient, personas: Personas):
    obtain(api, "admin@acme.test", HTTP_USER_AGENT="curl/8")

    entry = AuditLog.objects.get(action="user.login")
    assert (entry.org, entry.actor, entry.metadata) == (personas.org, personas.admin, {"method": "jwt"})
    assert entry.user_agent == "curl/8"
    personas.admin.refresh_from_db()
    assert personas.admin.last_login is not None


def test_the_email_is_matched_whatever_its_case(api: APIClient, personas: Personas):
    assert obtain(api, "Admin@ACME.test").status_code == 200


def test_a_wrong_password_is_refused_with_the_standard_body(api: APIClient, personas: Personas):
    response = obtain(api, "admin@acme.test", "not-the-password")

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_credentials",
        "detail": "No active account has this email and password.",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_failed_login_is_recorded_for_the_org_of_the_account_tried(api: APIClient, personas: Personas):
    obtain(api, "admin@acme.test", "not-the-password")

    entry = AuditLog.objects.get(action="user.login_failed")
    assert entry.org == personas.org
    assert entry.metadata["email"] == "admin@acme.test"


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(api: APIClient, personas: Personas):
    response = obtain(api, "nobody@acme.test")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_a_deactivated_user_cannot_get_a_token(api: APIClient, personas: Personas):
    User.objects.filter(pk=personas.analyst.pk).update(is_active=False)

    response = obtain(api, "analyst@acme.test")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert not AuditLog.objects.filter(action="user.login").exists()


def test_missing_fields_are_a_validation_error_naming_them(api: APIClient, db):
    response = api.post(TOKEN_URL, {"email": "not-an-email"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"email", "password"}
    assert body["detail"] in body["fields"]["email"] + body["fields"]["password"]


def test_the_sixth_attempt_in_a_minute_for_one_email_is_rate_limited(api: APIClient, personas: Personas):
    for n in range(5):
        # Each attempt from its own address: only the per-email budget is spent.
        response = obtain(api, "admin@acme.test", "wrong", REMOTE_ADDR=f"10.0.0.{n}")
        assert response.status_code == 401

    response = obtain(api, "admin@acme.test", PASSWORD, REMOTE_ADDR="10.0.0.99")

    assert response.status_code == 429
    assert response.json() == {
        "code": "rate_limited",
        "detail": "Too many attempts. Wait a minute and try again.",
    }


def test_the_sixth_attempt_in_a_minute_from_one_address_is_rate_limited(api: APIClient, personas: Personas):
    for n in range(5):
        assert obtain(api, f"someone{n}@acme.test", "wrong").status_code == 401

    response = obtain(api, "admin@acme.test")

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"


def test_another_address_and_email_are_not_slowed_by_someone_elses_attempts(
    api: APIClient, personas: Personas
):
    for _ in range(6):
        obtain(api, "admin@acme.test", "wrong", REMOTE_ADDR="10.0.0.1")

    assert obtain(api, "analyst@acme.test", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_asking_for_a_token_with_get_is_a_405_with_the_standard_body(api: APIClient, db):
    response = api.get(TOKEN_URL)

    assert response.status_code == 405
    assert response.json() == {"code": "method_not_allowed", "detail": 'Method "GET" not allowed.'}


# Refreshing and logging out ---------------------------------------------------------------------


def test_refresh_gives_a_new_pair_and_refuses_the_rotated_out_token(api: APIClient, personas: Personas):
    first = obtain(api, "analyst@acme.test").json()["refresh"]

    response = api.post(REFRESH_URL, {"refresh": first}, format="json")
    assert response.status_code == 200
    second = response.json()["refresh"]
    assert second != first
    assert AccessToken(response.json()["access"])["user_id"] == str(personas.analyst.pk)

    again = api.post(REFRESH_URL, {"refresh": first}, format="json")
    assert again.status_code == 401
    assert again.json() == {"code": "token_not_valid", "detail": "Token is blacklisted"}
    assert api.post(REFRESH_URL, {"refresh": second}, format="json").status_code == 200


def test_a_deactivated_user_cannot_refresh(api: APIClient, personas: Personas):
    refresh = obtain(api, "analyst@acme.test").json()["refresh"]
    User.objects.filter(pk=personas.analyst.pk).update(is_active=False)

    response = api.post(REFRESH_URL, {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert response.json() == {
        "code": "no_active_account",
        "detail": "No active account found for the given token.",
    }


def test_logout_revokes_the_refresh_token(api: APIClient, personas: Personas):
    tokens = obtain(api, "analyst@acme.test").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

    response = api.post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 204
    refused = APIClient().post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")
    assert refused.status_code == 401
    assert refused.json() == {"code": "token_not_valid", "detail": "Token is blacklisted"}
    entry = AuditLog.objects.get(action="user.logout")
    assert (entry.actor, entry.metadata) == (personas.analyst, {"method": "jwt"})


def test_logging_out_twice_with_the_same_token_is_refused(api: APIClient, personas: Personas):
    refresh = str(RefreshToken.for_user(personas.analyst))
    client = bearer(personas.analyst)
    client.post(LOGOUT_URL, {"refresh": refresh}, format="json")

    response = client.post(LOGOUT_URL, {"refresh": refresh}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"refresh": ["Token is blacklisted"]}


def test_logout_refuses_someone_elses_refresh_token(personas: Personas):
    someone_elses = RefreshToken.for_user(personas.admin)

    response = bearer(personas.analyst).post(LOGOUT_URL, {"refresh": str(someone_elses)}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert APIClient().post(REFRESH_URL, {"refresh": str(someone_elses)}, format="json").status_code == 200


def test_logout_needs_the_caller_to_be_authenticated(api: APIClient, personas: Personas):
    refresh = str(RefreshToken.for_user(personas.analyst))

    response = api.post(LOGOUT_URL, {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_garbage_refresh_token_is_a_validation_error_at_logout(personas: Personas):
    response = bearer(personas.analyst).post(LOGOUT_URL, {"refresh": "garbage"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"refresh"}


# Access tokens ----------------------------------------------------------------------------------


def test_an_expired_access_token_is_refused_with_the_standard_body(api: APIClient, personas: Personas):
    token = AccessToken.for_user(personas.analyst)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=5))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.get(ME_URL)

    assert response.status_code == 401
    assert response.json() == {
        "code": "token_not_valid",
        "detail": "Given token not valid for any token type",
    }


def test_an_access_token_stops_working_when_its_user_is_deactivated(personas: Personas):
    client = bearer(personas.analyst)
    User.objects.filter(pk=personas.analyst.pk).update(is_active=False)

    response = client.get(ME_URL)

    assert response.status_code == 401
    assert response.json() == {"code": "user_inactive", "detail": "User is inactive"}


# /me --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin", "analyst", "viewer", "outsider"])
def test_me_describes_the_caller_and_their_org(personas: Personas, persona: str):
    user: User = getattr(personas, persona)

    response = bearer(user).get(ME_URL)

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "org": {
            "id": user.org.pk,
            "name": user.org.name,
            "slug": user.org.slug,
            "plan": user.org.plan,
            "timezone": user.org.timezone,
        },
    }


def test_me_accepts_a_session_too(api: APIClient, personas: Personas):
    api.force_login(personas.viewer)

    assert api.get(ME_URL).json()["email"] == "viewer@acme.test"


def test_me_has_no_org_for_a_superuser_outside_any_org(db):
    root = UserFactory(org=None, is_superuser=True, email="root@datamind.test")

    assert bearer(root).get(ME_URL).json()["org"] is None


def test_me_refuses_anonymous_callers(api: APIClient, db):
    response = api.get(ME_URL)

    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_me_is_read_only(personas: Personas):
    response = bearer(personas.admin).delete(ME_URL)

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# /members ---------------------------------------------------------------------------------------


def test_an_admin_lists_the_members_of_their_own_org_only(personas: Personas):
    response = bearer(personas.admin).get(MEMBERS_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert {m["email"] for m in body["results"]} == {
        "admin@acme.test",
        "analyst@acme.test",
        "viewer@acme.test",
    }
    assert set(body["results"][0]) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "date_joined",
        "last_login",
    }


def test_the_member_list_is_paginated(personas: Personas):
    response = bearer(personas.admin).get(MEMBERS_URL, {"page_size": 2})

    body = response.json()
    assert (body["count"], len(body["results"])) == (3, 2)
    assert body["next"].endswith("page=2&page_size=2")
    assert body["previous"] is None


def test_the_member_list_lists_deactivated_members_last(personas: Personas):
    User.objects.filter(pk=personas.admin.pk).update(is_active=False)
    UserFactory(org=personas.org, role="admin", email="second-admin@acme.test")

    response = bearer(User.objects.get(email="second-admin@acme.test")).get(MEMBERS_URL)

    assert response.json()["results"][-1]["email"] == "admin@acme.test"


def test_an_outsider_admin_lists_only_their_own_org(personas: Personas):
    response = bearer(personas.outsider).get(MEMBERS_URL)

    assert [m["email"] for m in response.json()["results"]] == ["admin@globex.test"]


@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_members_are_for_admins_only(personas: Personas, persona: str):
    response = bearer(getattr(personas, persona)).get(MEMBERS_URL)

    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "detail": "Only admins of your organisation can do this.",
    }


def test_members_refuse_anonymous_callers(api: APIClient, db):
    response = api.get(MEMBERS_URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_members_cannot_be_posted(personas: Personas):
    response = bearer(personas.admin).post(MEMBERS_URL, {}, format="json")

    assert response.status_code == 405
    assert response.json() == {"code": "method_not_allowed", "detail": 'Method "POST" not allowed.'}
