"""API keys: made by org admins, shown once, stored hashed, capped at a role, revocable, audited."""

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts import services
from apps.accounts.models import ApiKey, AuditLog, Role, User
from datamind.lib.testing import Personas

KEYS_URL = reverse("accounts-api:api-key-list")
ME_URL = reverse("accounts-api:me")
MEMBERS_URL = reverse("accounts-api:member-list")
PAGE_URL = reverse("accounts:api-key-list")


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def make_key(personas: Personas, role: str = Role.VIEWER) -> tuple[ApiKey, str]:
    return services.api_key_create(org=personas.org, actor=personas.admin, name="Exporter", role=role)


# Services ----------------------------------------------------------------------------------------


def test_a_key_is_stored_only_as_a_hash_and_its_creation_is_audited(personas: Personas):
    api_key, key = make_key(personas)

    assert key.startswith(api_key.prefix + "_")
    assert key not in api_key.key_hash
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    entry = AuditLog.objects.get(action="api_key.created")
    assert (entry.org, entry.actor, entry.target_id) == (personas.org, personas.admin, str(api_key.pk))


def test_a_key_acts_as_its_creator_with_at_most_its_role(personas: Personas):
    _api_key, key = make_key(personas, role=Role.ANALYST)

    user, _ = services.api_key_authenticate(key=key)

    assert user.pk == personas.admin.pk and user.role == Role.ANALYST
    personas.admin.refresh_from_db()
    assert personas.admin.role == Role.ADMIN  # the cap is never written back


def test_the_capped_user_cannot_be_saved(personas: Personas):
    _api_key, key = make_key(personas)
    user, _ = services.api_key_authenticate(key=key)

    with pytest.raises(RuntimeError):
        user.save()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda key: "dm_00000000_" + key.rsplit("_", 1)[1],  # unknown prefix
        lambda key: "",
    ],
)
def test_a_wrong_key_is_refused(personas: Personas, tamper):
    _api_key, key = make_key(personas)

    with pytest.raises(services.ApiKeyInvalid):
        services.api_key_authenticate(key=tamper(key))


def test_a_revoked_key_is_refused_and_the_revocation_audited(personas: Personas):
    api_key, key = make_key(personas)

    services.api_key_revoke(api_key=api_key, actor=personas.admin)

    with pytest.raises(services.ApiKeyInvalid):
        services.api_key_authenticate(key=key)
    assert AuditLog.objects.filter(action="api_key.revoked", target_id=str(api_key.pk)).exists()


def test_a_key_stops_when_its_creator_is_deactivated(personas: Personas):
    _api_key, key = make_key(personas)
    User.objects.filter(pk=personas.admin.pk).update(is_active=False)

    with pytest.raises(services.ApiKeyInvalid):
        services.api_key_authenticate(key=key)


def test_last_use_is_recorded_at_most_once_a_minute(personas: Personas):
    api_key, key = make_key(personas)
    services.api_key_authenticate(key=key)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at

    services.api_key_authenticate(key=key)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first

    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first - timedelta(minutes=2))
    services.api_key_authenticate(key=key)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first


# The API ------------------------------------------------------------------------------------------


def test_the_api_accepts_a_key_alongside_jwt(personas: Personas):
    _api_key, key = make_key(personas)

    response = with_key(key).get(ME_URL)

    assert response.status_code == 200
    assert response.json()["email"] == personas.admin.email
    assert response.json()["role"] == Role.VIEWER


def test_a_viewer_key_of_an_admin_cannot_do_admin_things(personas: Personas):
    _api_key, key = make_key(personas, role=Role.VIEWER)

    assert with_key(key).get(MEMBERS_URL).status_code == 403


def test_an_admin_key_can(personas: Personas):
    _api_key, key = make_key(personas, role=Role.ADMIN)

    assert with_key(key).get(MEMBERS_URL).status_code == 200


def test_a_bad_or_revoked_key_is_401_with_the_error_body(personas: Personas):
    api_key, key = make_key(personas)
    services.api_key_revoke(api_key=api_key, actor=personas.admin)

    for client in (with_key(key), with_key("nonsense")):
        response = client.get(ME_URL)
        assert response.status_code == 401
        assert response.json()["code"] == "authentication_failed"


def test_an_admin_makes_a_key_over_the_api_and_sees_it_once(personas: Personas):
    client = bearer(personas.admin)

    created = client.post(KEYS_URL, {"name": "BI sync", "role": "analyst"}, format="json")
    listed = client.get(KEYS_URL)

    assert created.status_code == 201
    assert created.json()["key"].startswith(created.json()["prefix"])
    assert with_key(created.json()["key"]).get(ME_URL).status_code == 200
    assert [k["name"] for k in listed.json()["results"]] == ["BI sync"]
    assert "key" not in listed.json()["results"][0]


def test_an_admin_revokes_a_key_over_the_api(personas: Personas):
    api_key, key = make_key(personas)

    response = bearer(personas.admin).post(reverse("accounts-api:api-key-revoke", args=[api_key.pk]))

    assert response.status_code == 200 and response.json()["revoked_at"]
    assert with_key(key).get(ME_URL).status_code == 401


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_only_admins_manage_keys(personas: Personas, who: str):
    client = bearer(getattr(personas, who))

    assert client.get(KEYS_URL).status_code == 403
    assert client.post(KEYS_URL, {"name": "x"}, format="json").status_code == 403


def test_a_key_cannot_make_or_revoke_keys(personas: Personas):
    api_key, key = make_key(personas, role=Role.ADMIN)

    assert with_key(key).post(KEYS_URL, {"name": "x"}, format="json").status_code == 403
    assert with_key(key).post(reverse("accounts-api:api-key-revoke", args=[api_key.pk])).status_code == 403


def test_another_orgs_key_is_not_found(personas: Personas):
    other, _key = services.api_key_create(
        org=personas.other_org, actor=personas.outsider, name="Theirs", role=Role.VIEWER
    )

    response = bearer(personas.admin).post(reverse("accounts-api:api-key-revoke", args=[other.pk]))

    assert response.status_code == 404
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None


def test_the_schema_documents_the_api_key_scheme(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()

    assert schema["components"]["securitySchemes"]["apiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schema["components"]["securitySchemes"]["apiKeyAuth"]["description"],
    }
    assert {"apiKeyAuth": []} in schema["paths"]["/api/v1/me/"]["get"]["security"]


# The settings page ---------------------------------------------------------------------------------


def test_an_admin_makes_a_key_on_the_settings_page_and_sees_it_once(client, personas: Personas):
    client.force_login(personas.admin)

    created = client.post(PAGE_URL, {"name": "Nightly export", "role": "viewer"})
    again = client.get(PAGE_URL)

    api_key = ApiKey.objects.get()
    key = created.context["new_key"]
    assert created.status_code == 200 and key.startswith(api_key.prefix)
    assert key in created.content.decode()
    assert key not in again.content.decode() and "Nightly export" in again.content.decode()
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()


def test_the_page_fragment_answers_htmx(client, personas: Personas):
    client.force_login(personas.admin)

    response = client.post(PAGE_URL, {"name": "Sync", "role": "viewer"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="api-keys"')
    assert response["Vary"] == "HX-Request" or "HX-Request" in response["Vary"]


def test_a_key_without_a_name_is_refused_with_a_reason(client, personas: Personas):
    client.force_login(personas.admin)

    response = client.post(PAGE_URL, {"name": "", "role": "viewer"})

    assert response.status_code == 422
    assert not ApiKey.objects.exists()


def test_an_admin_revokes_a_key_on_the_page(client, personas: Personas):
    api_key, _key = make_key(personas)
    client.force_login(personas.admin)

    response = client.post(reverse("accounts:api-key-revoke", args=[api_key.pk]))

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_the_page_is_for_admins_only(client, personas: Personas, who: str):
    client.force_login(getattr(personas, who))

    assert client.get(PAGE_URL).status_code == 403


def test_another_orgs_key_cannot_be_revoked_from_the_page(client, personas: Personas):
    other, _key = services.api_key_create(
        org=personas.other_org, actor=personas.outsider, name="Theirs", role=Role.VIEWER
    )
    client.force_login(personas.admin)

    assert client.post(reverse("accounts:api-key-revoke", args=[other.pk])).status_code == 404
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None


def test_the_list_shows_when_each_key_was_last_used(client, personas: Personas):
    api_key, _key = make_key(personas)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now() - timedelta(hours=3))
    client.force_login(personas.admin)

    assert "3\xa0hours ago" in client.get(PAGE_URL).content.decode()


# The Django admin -----------------------------------------------------------------------------------


def test_an_org_admin_sees_only_their_orgs_keys_in_the_django_admin(client, personas: Personas):
    make_key(personas)
    services.api_key_create(org=personas.other_org, actor=personas.outsider, name="Theirs", role=Role.VIEWER)
    client.force_login(personas.admin)

    page = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()

    assert "Exporter" in page and "Theirs" not in page


def test_an_org_admin_revokes_keys_from_the_django_admin(client, personas: Personas):
    api_key, key = make_key(personas)
    theirs, _ = services.api_key_create(
        org=personas.other_org, actor=personas.outsider, name="Theirs", role=Role.VIEWER
    )
    client.force_login(personas.admin)

    client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke", "_selected_action": [api_key.pk, theirs.pk]},
    )

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None
    with pytest.raises(services.ApiKeyInvalid):
        services.api_key_authenticate(key=key)
