import asyncio

import pytest
from channels.testing import HttpCommunicator
from django.conf import settings
from django.test import Client
from django.urls import reverse

from datamind.handlers import SyncChainASGIHandler
from datamind.lib.testing import Personas


def _get(path: str, cookies: str = "", method: str = "GET", body: bytes = b"") -> dict:
    headers = [(b"host", b"testserver")] + ([(b"cookie", cookies.encode())] if cookies else [])
    communicator = HttpCommunicator(SyncChainASGIHandler(), method, path, body=body, headers=headers)
    return asyncio.run(communicator.get_response(timeout=10))


def _headers(response: dict) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in response["headers"]}


def test_a_page_through_asgi_gets_every_middlewares_work(transactional_db):
    response = _get(reverse("accounts:login"))

    headers = _headers(response)
    assert response["status"] == 200 and b"Log in" in response["body"]
    assert headers["x-request-id"] and "content-security-policy" in headers
    assert headers["x-frame-options"] == "DENY" and "csrftoken" in headers["set-cookie"]


def test_a_signed_in_user_reaches_their_pages_through_asgi(transactional_db, personas: Personas):
    client = Client()
    client.force_login(personas.analyst)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    response = _get(reverse("dashboards:index"), cookies=cookie)

    assert response["status"] == 200 and personas.analyst.email.encode() in response["body"]


def test_a_post_without_its_csrf_token_is_refused_through_asgi(transactional_db, personas: Personas):
    client = Client()
    client.force_login(personas.analyst)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    response = _get(reverse("dashboards:dashboard-create"), cookies=cookie, method="POST", body=b"title=x")

    assert response["status"] == 403


@pytest.mark.urls("datamind.tests.barrier_urls")
def test_requests_at_once_run_side_by_side_and_their_threads_serve_later_requests(transactional_db):
    handler = SyncChainASGIHandler()

    async def ask(path: str) -> dict:
        communicator = HttpCommunicator(handler, "GET", path, headers=[(b"host", b"testserver")])
        response = await communicator.get_response(timeout=10)
        await communicator.wait(timeout=10)  # the request's end (request_finished) has run too
        return response

    async def scenario() -> tuple[list[dict], dict]:
        together = await asyncio.gather(ask("/meet/"), ask("/meet/"))
        return together, await ask("/thread/")

    together, later = asyncio.run(scenario())

    assert [response["status"] for response in together] == [200, 200]
    threads = {response["body"] for response in together}
    assert len(threads) == 2 and later["body"] in threads
