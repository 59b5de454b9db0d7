"""Which language model an organisation uses, and the admins' page that chooses it."""

import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

# The registry imports its provider modules only while it is empty, so a test module that imported
# one provider first would hide the others; importing all three keeps every order working.
import apps.chat.providers.anthropic
import apps.chat.providers.builtin
import apps.chat.providers.openai  # noqa: F401
from apps.accounts.models import AuditLog
from apps.chat.models import LLMSettings
from apps.chat.services.providers import (
    llm_settings_update,
    provider_description,
    provider_for_org,
)
from datamind.lib.crypto import decrypt
from datamind.lib.fake_llm import DEFAULT_API_KEY
from datamind.lib.testing import Personas

SECRET = "sk-ant-api03-very-secret-key"
HTMX = {"HTTP_HX_REQUEST": "true"}
PAGE = "chat:llm-settings"
TEST = "chat:llm-settings-test"


@pytest.fixture(autouse=True)
def no_llm_environment(settings):
    """Whatever the machine running the tests has configured, start from nothing."""
    settings.LLM_PROVIDER = ""
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.ANTHROPIC_MODEL = "claude-default"
    settings.OPENAI_MODEL = "gpt-default"


def save(personas: Personas, **changes) -> LLMSettings:
    values = {"provider": "anthropic", "model": "", "base_url": "", "api_key": SECRET} | changes
    return llm_settings_update(org=personas.org, actor=personas.admin, **values)


def last_audit() -> dict:
    return AuditLog.objects.filter(action="llm.settings_update").order_by("id").last().metadata


def form_data(**changes) -> dict[str, str]:
    return {"provider": "anthropic", "model": "", "api_key": SECRET, "base_url": ""} | changes


# Which provider answers ------------------------------------------------------------------------------


def test_with_nothing_configured_the_built_in_engine_answers(personas):
    provider = provider_for_org(personas.org)

    assert provider.name == "builtin"
    description = provider_description(personas.org)
    assert description["is_builtin"] is True
    assert description["source"] == "built-in"
    assert description["name"] == "builtin"


def test_an_anthropic_key_in_the_environment_makes_anthropic_the_default(personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"

    provider = provider_for_org(personas.org)

    assert (provider.name, provider.model, provider.api_key) == ("anthropic", "claude-default", "env-key")
    assert provider_description(personas.org) == {
        "name": "anthropic",
        "label": "Anthropic",
        "model": "claude-default",
        "is_builtin": False,
        "source": "environment",
    }


def test_an_openai_base_url_in_the_environment_makes_an_openai_compatible_server_the_default(
    personas, settings
):
    settings.OPENAI_BASE_URL = "http://llm.internal.test:8000/v1"

    provider = provider_for_org(personas.org)

    assert (provider.name, provider.model, provider.base_url) == (
        "openai",
        "gpt-default",
        "http://llm.internal.test:8000/v1",
    )


def test_llm_provider_in_the_environment_wins_over_the_keys(personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"
    settings.LLM_PROVIDER = "builtin"

    assert provider_for_org(personas.org).name == "builtin"
    assert provider_description(personas.org)["source"] == "built-in"


def test_the_organisations_choice_wins_over_the_environment(personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"
    save(
        personas,
        provider="openai",
        model="llama3",
        base_url="http://llm.acme.test:8000/v1",
        api_key="org-key",
    )

    provider = provider_for_org(personas.org)

    assert (provider.name, provider.model, provider.api_key, provider.base_url) == (
        "openai",
        "llama3",
        "org-key",
        "http://llm.acme.test:8000/v1",
    )
    assert provider_description(personas.org)["source"] == "organisation"


def test_what_the_organisation_left_empty_comes_from_the_environment(personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"
    settings.ANTHROPIC_BASE_URL = "http://proxy.internal.test"
    save(personas, api_key=None)

    provider = provider_for_org(personas.org)

    assert (provider.model, provider.api_key, provider.base_url) == (
        "claude-default",
        "env-key",
        "http://proxy.internal.test",
    )


def test_an_organisation_may_choose_the_built_in_engine_despite_a_key_in_the_environment(personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"
    save(personas, provider="builtin", api_key=None)

    description = provider_description(personas.org)

    assert provider_for_org(personas.org).name == "builtin"
    assert (description["is_builtin"], description["source"]) == (True, "organisation")


def test_another_organisations_choice_does_not_apply(personas):
    save(personas)

    assert provider_for_org(personas.other_org).name == "builtin"


# Saving the settings ---------------------------------------------------------------------------------


def test_the_key_is_encrypted_at_rest(personas):
    llm = save(personas)

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM chat_llmsettings WHERE id = %s", [llm.pk])
        (stored,) = cursor.fetchone()
    assert SECRET not in stored
    assert decrypt(stored) == SECRET
    assert LLMSettings.objects.get(pk=llm.pk).api_key == SECRET


def test_saving_is_audited_without_the_key(personas):
    llm = save(personas, model="claude-test")

    entry = AuditLog.objects.get(action="llm.settings_update")
    assert entry.org == personas.org
    assert entry.actor == personas.admin
    assert entry.target_id == str(llm.pk)
    assert entry.metadata == {
        "provider": "anthropic",
        "model": "claude-test",
        "base_url": "",
        "api_key": "set",
    }
    assert SECRET not in json.dumps(entry.metadata)


def test_no_key_keeps_the_saved_key(personas):
    save(personas)

    llm = save(personas, model="claude-other", api_key=None)

    assert llm.api_key == SECRET
    assert last_audit()["api_key"] == "unchanged"


def test_an_empty_key_removes_the_saved_key(personas):
    save(personas, provider="openai")

    llm = save(personas, provider="openai", api_key="")

    assert llm.api_key == ""
    assert last_audit()["api_key"] == "removed"


@pytest.mark.parametrize(
    "change",
    [{"base_url": "https://collector.example.test/v1"}, {"provider": "anthropic"}],
    ids=["another-url", "another-provider"],
)
def test_moving_to_another_server_without_a_new_key_removes_the_saved_key(personas, settings, change):
    # The key cannot be read back: following the admin to a server of their choosing, it would leak.
    settings.ANTHROPIC_API_KEY = "env-key"
    save(personas, provider="openai", base_url="http://llm.acme.test:8000/v1")

    llm = save(
        personas,
        **({"provider": "openai", "base_url": "http://llm.acme.test:8000/v1", "api_key": None} | change),
    )

    assert llm.api_key == ""
    assert last_audit()["api_key"] == "removed"


def test_anthropic_without_any_key_is_refused(personas):
    with pytest.raises(ValidationError) as refused:
        save(personas, api_key=None)

    assert "api_key" in refused.value.error_dict
    assert not LLMSettings.objects.exists()


def test_an_unknown_provider_is_refused(personas):
    with pytest.raises(ValidationError) as refused:
        save(personas, provider="gemini")

    assert "provider" in refused.value.error_dict


def test_a_base_url_that_is_not_a_url_is_refused(personas):
    with pytest.raises(ValidationError) as refused:
        save(personas, provider="openai", base_url="llm server")

    assert "base_url" in refused.value.error_dict


@pytest.mark.parametrize("url", ["http://169.254.169.254/v1", "http://[fe80::1]/v1"])
def test_a_link_local_base_url_is_refused(personas, url):
    with pytest.raises(ValidationError) as refused:
        save(personas, provider="openai", base_url=url)

    assert "Link-local" in str(refused.value.error_dict["base_url"])


# The page ------------------------------------------------------------------------------------------------


def test_the_page_says_the_built_in_engine_is_in_use_when_nothing_is_configured(client, personas):
    client.force_login(personas.admin)

    response = client.get(reverse(PAGE))

    assert response.status_code == 200
    assert "built-in offline engine" in response.text
    assert "no key is configured" in response.text


def test_the_page_is_shown_as_part_of_settings_in_the_navigation(client, personas):
    client.force_login(personas.admin)

    response = client.get(reverse(PAGE))

    current = re.findall(r'aria-current="page">([^<]+)</a>', response.text)
    assert "Settings" in current and "Chat" not in current


def test_the_page_says_when_the_servers_configuration_chose_the_provider(client, personas, settings):
    settings.ANTHROPIC_API_KEY = "env-key"
    client.force_login(personas.admin)

    response = client.get(reverse(PAGE))

    assert "the server's configuration" in response.text
    assert "claude-default" in response.text
    assert "env-key" not in response.text


def test_saving_the_form_stores_the_choice_and_comes_back_to_the_page(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse(PAGE), form_data(model="claude-test"))

    assert response.status_code == 302
    assert response.url == reverse(PAGE)
    llm = LLMSettings.objects.get(org=personas.org)
    assert (llm.provider, llm.model, llm.api_key, llm.updated_by) == (
        "anthropic",
        "claude-test",
        SECRET,
        personas.admin,
    )


def test_the_saved_key_is_never_shown_again(client, personas):
    client.force_login(personas.admin)
    client.post(reverse(PAGE), form_data())

    response = client.get(reverse(PAGE))

    assert SECRET not in response.text
    assert "A key is saved" in response.text
    assert 'name="remove_key"' in response.text


def test_an_empty_key_field_keeps_the_saved_key(client, personas):
    client.force_login(personas.admin)
    client.post(reverse(PAGE), form_data())

    client.post(reverse(PAGE), form_data(api_key="", model="claude-other"))

    assert LLMSettings.objects.get(org=personas.org).api_key == SECRET


def test_remove_key_removes_the_saved_key(client, personas):
    client.force_login(personas.admin)
    client.post(reverse(PAGE), form_data(provider="openai"))

    client.post(reverse(PAGE), form_data(provider="openai", api_key="", remove_key="on"))

    assert LLMSettings.objects.get(org=personas.org).api_key == ""


def test_typing_a_key_and_removing_it_at_once_is_refused(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse(PAGE), form_data(remove_key="on"))

    assert response.status_code == 422
    assert "not both" in response.text
    assert SECRET not in response.text


def test_a_refused_save_answers_422_with_the_reason_and_without_the_key(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse(PAGE), form_data(provider="openai", base_url="not a url"))

    assert response.status_code == 422
    assert "Enter a valid URL" in response.text
    assert SECRET not in response.text
    assert not LLMSettings.objects.exists()


def test_the_service_refusal_is_shown_beside_the_key_field(client, personas):
    client.force_login(personas.admin)

    response = client.post(reverse(PAGE), form_data(api_key=""))

    assert response.status_code == 422
    assert "Enter an Anthropic API key" in response.text


def test_the_settings_navigation_links_the_page_for_admins_only(client, personas):
    client.force_login(personas.admin)
    admin_page = client.get(reverse("accounts:org-settings")).text
    client.force_login(personas.analyst)
    analyst_page = client.get(reverse("accounts:org-settings")).text

    assert reverse(PAGE) in admin_page
    assert reverse(PAGE) not in analyst_page


def test_an_admin_of_another_organisation_changes_only_their_own(client, personas):
    save(personas)
    client.force_login(personas.outsider)

    client.post(reverse(PAGE), form_data(provider="openai", api_key="globex-key"))

    assert LLMSettings.objects.get(org=personas.org).provider == "anthropic"
    assert LLMSettings.objects.get(org=personas.other_org).api_key == "globex-key"


# The test button ------------------------------------------------------------------------------------------


def test_the_test_button_shows_success_inline(client, personas, fake_llm, settings):
    save(personas, api_key=None, model="claude-test")
    client.force_login(personas.admin)

    response = client.post(reverse(TEST), **HTMX)

    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="llm-test-result"' in response.text
    assert "It works" in response.text
    assert "Anthropic claude-test answered." in response.text
    (request,) = fake_llm.requests
    assert request.body["max_tokens"] == 1
    assert request.api_key == DEFAULT_API_KEY


def test_the_test_button_shows_the_providers_error_inline(client, personas, fake_llm):
    save(personas, api_key="wrong-key")
    client.force_login(personas.admin)

    response = client.post(reverse(TEST), **HTMX)

    assert response.status_code == 200
    assert "The test failed" in response.text
    assert "The Anthropic API key was refused." in response.text
    assert "wrong-key" not in response.text


def test_the_test_button_without_htmx_shows_the_whole_page_with_the_result(client, personas, fake_llm):
    save(personas, api_key=None)
    client.force_login(personas.admin)

    response = client.post(reverse(TEST))

    assert response.status_code == 200
    assert "<html" in response.text
    assert "It works" in response.text


def test_the_test_button_with_the_built_in_engine_makes_no_request(client, personas, fake_llm):
    save(personas, provider="builtin", api_key=None)
    client.force_login(personas.admin)

    response = client.post(reverse(TEST), **HTMX)

    assert "It works" in response.text
    assert fake_llm.requests == []


# Who may use it ---------------------------------------------------------------------------------------------

ENDPOINTS = [("get", PAGE), ("post", PAGE), ("post", TEST)]


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
@pytest.mark.parametrize("persona", ["analyst", "viewer"])
def test_members_who_are_not_admins_are_refused(client, personas, method, name, persona):
    client.force_login(getattr(personas, persona))

    response = getattr(client, method)(reverse(name), form_data() if method == "post" else None)

    assert response.status_code == 403
    assert not LLMSettings.objects.exists()


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_anonymous_visitors_are_sent_to_log_in(client, db, method, name):
    response = getattr(client, method)(reverse(name))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("method", "name"), [("put", PAGE), ("delete", PAGE), ("get", TEST)])
def test_other_methods_are_not_allowed(client, personas, method, name):
    client.force_login(personas.admin)

    assert getattr(client, method)(reverse(name)).status_code == 405
