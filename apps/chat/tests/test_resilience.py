"""Redis restarting while people chat: a web process whose cache and channel layer reach Redis
through a `TcpProxy`. While Redis is away a question still gets its answer, over the WebSocket and
over plain HTTP (the answer lock, the results cache and the suggestions cache are optional: without
them a chat has no lock and nothing cached); once Redis is back the same process carries on."""

import json

import pytest
import requests
from django.test import Client
from websockets.sync.client import connect

from apps.chat.models import ChatMessage, MessageRole, MessageStatus

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "total amount by region"
DONE_MARK = 'hx-swap-oob="outerHTML:#answer-pending"'


def _ask_over_websocket(url: str, session_id: int, cookies: dict[str, str]) -> str:
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    with connect(
        f"{url.replace('http', 'ws', 1)}/ws/chat/{session_id}/",
        origin=url,
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"question": QUESTION}))
        frames = []
        while DONE_MARK not in (frame := str(ws.recv(timeout=20))):
            frames.append(frame)
        return frame


def _answers(session_id: int) -> list[ChatMessage]:
    return list(ChatMessage.objects.filter(session_id=session_id, role=MessageRole.ASSISTANT).order_by("pk"))


def test_chat_answers_while_redis_is_down_and_carries_on_after(
    asgi_servers, redis_proxy, personas, chat_session, shop_root
):
    proxy, redis_url = redis_proxy
    url = asgi_servers.start(REDIS_URL=redis_url, CONNECTIONS_FILE_ROOT=str(shop_root))
    http = requests.Session()
    client = Client()
    client.force_login(personas.analyst)
    http.cookies.update({"sessionid": client.cookies["sessionid"].value})
    page = http.get(f"{url}/chat/{chat_session.pk}/", timeout=10)
    assert page.status_code == 200
    csrf = http.cookies["csrftoken"]

    proxy.cut()
    page = http.get(f"{url}/chat/{chat_session.pk}/", timeout=10)
    assert page.status_code == 200, page.text[:300]
    done = _ask_over_websocket(url, chat_session.pk, dict(http.cookies))
    assert "status-done" in done, done[:500]
    response = http.post(
        f"{url}/chat/{chat_session.pk}/ask/",
        {"question": QUESTION},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
        timeout=20,
    )
    assert response.status_code == 200, response.text[:500]
    assert len(_answers(chat_session.pk)) == 2

    proxy.restore()
    done = _ask_over_websocket(url, chat_session.pk, dict(http.cookies))
    assert "status-done" in done
    assert [a.status for a in _answers(chat_session.pk)] == [MessageStatus.DONE] * 3
