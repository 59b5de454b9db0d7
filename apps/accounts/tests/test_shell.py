"""The web shell (base.html) and the section pages it frames, whichever app they belong to."""

import re

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

SECTIONS = [
    ("chat:index", "Chat"),
    ("dashboards:index", "Dashboards"),
    ("alerts:index", "Alerts"),
    ("connections:index", "Connections"),
    ("billing:index", "Usage"),
]


@pytest.mark.parametrize(("name", "label"), SECTIONS)
def test_each_section_asks_anonymous_visitors_to_log_in(client, db, name, label):
    url = reverse(name)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize(("name", "label"), SECTIONS)
def test_each_section_opens_inside_the_shell_with_its_nav_item_current(client, personas, name, label):
    client.force_login(personas.viewer)

    response = client.get(reverse(name))

    assert response.status_code == 200
    assert f"<h1>{label}</h1>" in response.text
    assert f'<a href="{reverse(name)}" aria-current="page">{label}</a>' in response.text
    assert response.text.count('aria-current="page"') == 1


@pytest.mark.parametrize(("name", "label"), SECTIONS)
def test_each_section_with_nothing_in_it_shows_an_empty_state(client, personas, name, label):
    client.force_login(personas.analyst)

    response = client.get(reverse(name))

    assert 'class="empty-state"' in response.text


def test_the_empty_state_shows_its_title_text_and_optional_action():
    html = render_to_string(
        "partials/empty_state.html",
        {
            "title": "No alerts yet",
            "text": "Watch a <metric>.",
            "action_url": "/alerts/new/",
            "action_label": "New",
        },
    )

    assert "<h2>No alerts yet</h2>" in html
    assert "Watch a &lt;metric&gt;." in html
    assert '<a class="button" href="/alerts/new/">New</a>' in html


def test_the_home_page_is_the_chat(client, personas):
    client.force_login(personas.analyst)

    response = client.get("/")

    assert response.status_code == 302
    assert response.url == reverse("chat:index")


def test_the_shell_loads_the_vendored_htmx_2_and_its_websocket_extension(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:index"))

    scripts = re.findall(r'<script src="([^"]+)"', response.text)
    assert "/static/django_htmx/htmx-2.min.js" in scripts
    assert "/static/django_htmx/ext/hx-ws-2.min.js" in scripts
    assert all(src.startswith("/static/") for src in scripts)


def test_the_shell_sends_the_csrf_token_with_every_htmx_request(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:index"))

    token = re.search(r"""<body [^>]*hx-headers='\{"X-CSRFToken": "(\w+)"\}'""", response.text)
    assert token is not None
    assert len(token.group(1)) == 64


def test_the_shell_lets_keyboard_users_skip_to_the_main_content(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:index"))

    assert '<a class="skip-link" href="#main">Skip to content</a>' in response.text
    assert '<main id="main"' in response.text


def test_the_user_menu_shows_who_is_logged_in_and_logs_out_with_a_post(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:index"))

    menu = response.text.split('<details class="usermenu" data-menu>')[1].split("</details>")[0]
    assert personas.analyst.display_name in menu
    assert "Acme" in menu
    assert "Analyst" in menu
    assert reverse("accounts:profile") in menu
    assert reverse("accounts:password-change") in menu
    assert f'<form method="post" action="{reverse("accounts:logout")}">' in menu


def test_only_admins_see_the_audit_and_admin_links(client, personas):
    client.force_login(personas.analyst)
    analyst_page = client.get(reverse("chat:index")).text
    client.force_login(personas.admin)
    admin_page = client.get(reverse("chat:index")).text

    for link in (reverse("accounts:audit-log"), reverse("admin:index")):
        assert link not in analyst_page
        assert link in admin_page


def test_flash_messages_appear_on_the_next_page(client, personas):
    client.force_login(personas.analyst)

    response = client.post(reverse("accounts:profile"), {"full_name": "Alan"}, follow=True)

    assert '<p class="flash flash-success">Your profile was saved.</p>' in response.text


def test_an_unknown_address_is_a_404_page_with_the_same_look(client, personas):
    client.force_login(personas.analyst)

    response = client.get("/no/such/page/")

    assert response.status_code == 404
    assert "We couldn't find that page" in response.text
    assert 'class="topbar"' in response.text


def test_a_refusal_is_a_403_page_that_says_why(client, personas):
    client.force_login(personas.viewer)

    response = client.get(reverse("accounts:audit-log"))

    assert response.status_code == 403
    assert "Only admins of your organisation can do this." in response.text
    assert 'class="topbar"' in response.text


def test_pages_for_visitors_use_the_centered_layout(client, db):
    response = client.get(reverse("accounts:login"))

    assert '<body class="layout-centered"' in response.text
    assert 'class="topbar"' not in response.text
    assert '<main id="main" class="auth"' in response.text
