import re

import pytest

ASSETS = [
    "/static/css/app.css",
    "/static/django_htmx/htmx-2.min.js",
    "/static/django_htmx/ext/hx-ws-2.min.js",
]


@pytest.mark.parametrize("path", ASSETS)
def test_the_app_serves_its_own_css_and_htmx_without_a_separate_web_server(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_pages_load_scripts_and_styles_only_from_the_app_itself(client, personas):
    client.force_login(personas.analyst)

    html = client.get("/chat/").text

    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == []
