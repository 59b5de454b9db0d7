"""The chat pages: who may do what, the index, a chat and its fragments, and the plain-HTTP door."""

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection as db_connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from apps.accounts.models import User
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.chat.providers.builtin import suggested_questions
from apps.chat.routing import websocket_urlpatterns
from apps.chat.tests.test_apis import ASK_URL, bearer
from apps.chat.tests.test_pipeline import SQL_BY_REGION, sql_reply
from apps.chat.tests.test_pipeline import ask as ask_over_socket
from apps.connections.models import Connection
from apps.connections.selectors import catalogue_snapshot
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.fake_llm import FakeLLMServer
from datamind.lib.testing import Personas
from datamind.lib.vega import vega_bundle_path, vega_bundle_version

HTMX = {"HX-Request": "true"}
INDEX_URL = reverse("chat:index")
SEARCH_URL = reverse("chat:session-search")
CREATE_URL = reverse("chat:session-create")
ANALYSIS = "Each region sold about 1,300."
ROWS_COLUMNS = [{"name": "n", "type": "INTEGER"}, {"name": "label", "type": "VARCHAR"}]

# Every chat URL: the least role that may use it, its method, and the object it is about.
URLS: dict[str, tuple[str, str, str | None]] = {
    "chat:index": ("viewer", "get", None),
    "chat:session-search": ("viewer", "get", None),
    "chat:session-create": ("analyst", "post", None),
    "chat:session-detail": ("viewer", "get", "session"),
    "chat:session-rename": ("viewer", "post", "session"),
    "chat:session-delete": ("viewer", "post", "session"),
    "chat:ask": ("analyst", "post", "session"),
    "chat:message-rows": ("viewer", "get", "answer"),
    "chat:message-feedback": ("viewer", "post", "answer"),
}
OBJECT_URLS = [name for name, (_, _, about) in URLS.items() if about]
# What a POST carries in the negative tests, so that only the check under test can refuse it.
VALID_DATA = {
    "chat:session-rename": {"title": "Taken over"},
    "chat:ask": {"question": "total sales by region"},
    "chat:message-feedback": {"helpful": "yes"},
}


def answer_in(session: ChatSession, *, question: str = "total sales by region", **fields: Any) -> ChatMessage:
    """A question and its finished answer, saved as the pipeline would have saved them."""
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content=question)
    values: dict[str, Any] = {
        "status": MessageStatus.DONE,
        "content": ANALYSIS,
        "sql": SQL_BY_REGION,
        "columns": [{"name": "region", "type": "VARCHAR"}, {"name": "total", "type": "DECIMAL(38,2)"}],
        "rows": [["Americas", 1301], ["Asia", 1299], ["Europe", 1303]],
        "row_count": 3,
        "chart": {"kind": "table"},
        "provider": "anthropic",
        "model": "claude-sonnet-5-5",
        "tables_used": ["main.regions", "main.sales"],
        **fields,
    }
    return ChatMessage.objects.create(session=session, role=MessageRole.ASSISTANT, **values)


def sixty_rows(session: ChatSession) -> ChatMessage:
    return answer_in(
        session,
        question="list the items",
        columns=ROWS_COLUMNS,
        rows=[[n, f"item {n}"] for n in range(1, 61)],
        row_count=60,
    )


def items_shown(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"<td>item (\d+)</td>", html)]


def url_for(name: str, session: ChatSession, answer: ChatMessage) -> str:
    about = URLS[name][2]
    if about is None:
        return reverse(name)
    return reverse(name, args=[(session if about == "session" else answer).pk])


def call(client: Client, method: str, url: str, data: dict | None = None, **headers: str):
    return getattr(client, method)(url, data or {}, headers=headers)


def is_fragment(response) -> bool:
    return "<html" not in response.text and "HX-Request" in response.headers.get("Vary", "")


def script_answer(fake_llm: FakeLLMServer, analysis: str = ANALYSIS) -> None:
    """The model's two replies for one question: the SQL, then the analysis of its result."""
    fake_llm.script(sql_reply(SQL_BY_REGION), input_tokens=400, output_tokens=60)
    fake_llm.script(analysis, input_tokens=150, output_tokens=12)


def answer_article(html: str) -> str:
    """The answer's <article>, made comparable between two answers: without its message's id, its
    timing, its CSRF token and the attribute that swaps it over the pending answer."""
    article = re.search(r'<article class="message message-answer.*?</article>', html, re.DOTALL)
    assert article, html
    text = article.group(0).replace(' hx-swap-oob="outerHTML:#answer-pending"', "")
    text = re.sub(r"(message-|rows-|sql-|feedback-|chart-spec-|answers/)\d+", r"\1N", text)
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken"', text)
    return re.sub(r"[\d,]+ ms<", "N ms<", text)


async def socket_answer(session: ChatSession, question: str, cookies: dict[str, str] | None = None) -> str:
    """Ask through the WebSocket door as test_pipeline does; the frame with the finished answer."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/chat/{session.pk}/")
    communicator.scope["user"] = await database_sync_to_async(lambda: session.user)()
    communicator.scope["cookies"] = cookies or {}
    connected, _ = await communicator.connect()
    assert connected
    frames = await ask_over_socket(communicator, question)
    await communicator.disconnect()
    return frames[-1][1]


def over_the_socket(session: ChatSession, question: str, cookies: dict[str, str] | None = None) -> str:
    return async_to_sync(socket_answer)(session, question, cookies)


@contextlib.contextmanager
def server_loop() -> Iterator[Callable[[Coroutine[Any, Any, str]], str]]:
    """An event loop in a thread of its own for the whole test, as daphne's lives for the whole
    process; yields a function that runs a coroutine on it."""
    started, stop = threading.Event(), threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        started.set()
        await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert started.wait(5)
    try:
        yield lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loops[0]).result(30)
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def analyst_client(client: Client, personas: Personas) -> Client:
    client.force_login(personas.analyst)
    return client


@pytest.fixture
def answer(chat_session: ChatSession) -> ChatMessage:
    return answer_in(chat_session)


@pytest.fixture
def viewer_session(personas: Personas, shop_connection: Connection) -> ChatSession:
    return ChatSession.objects.create(org=personas.org, user=personas.viewer, connection=shop_connection)


@pytest.fixture
def no_language_model(settings) -> None:
    settings.LLM_PROVIDER = ""
    settings.ANTHROPIC_API_KEY = ""
    settings.OPENAI_BASE_URL = ""


@pytest.fixture(scope="session")
def vega_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart library bundle takes seconds to build: once per run, outside the project's var/."""
    var_dir = tmp_path_factory.mktemp("var")
    with override_settings(VAR_DIR=var_dir):
        vega_bundle_path()
    return var_dir


@pytest.fixture
def vega_bundle_built(vega_var_dir: Path, settings) -> None:
    settings.VAR_DIR = vega_var_dir


# Who may do what ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", URLS)
def test_anonymous_visitors_are_sent_to_log_in(client, chat_session, answer, name):
    _, method, _ = URLS[name]

    response = call(client, method, url_for(name, chat_session, answer), VALID_DATA.get(name))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize("name", ["chat:session-create", "chat:ask"])
def test_viewers_cannot_start_a_chat_or_ask_even_in_their_own_chat(
    client, personas, shop_connection, viewer_session, name
):
    client.force_login(personas.viewer)
    url = reverse(name, args=[viewer_session.pk]) if name == "chat:ask" else reverse(name)

    response = client.post(url, {"connection": shop_connection.pk, "question": "total sales by region"})

    assert response.status_code == 403
    assert ChatSession.objects.count() == 1
    assert not ChatMessage.objects.exists()


@pytest.mark.parametrize("name", OBJECT_URLS)
@pytest.mark.parametrize("who", ["outsider", "admin"])
def test_another_persons_chat_or_answer_is_not_found(client, personas, chat_session, answer, name, who):
    _, method, _ = URLS[name]
    client.force_login(getattr(personas, who))

    response = call(client, method, url_for(name, chat_session, answer), VALID_DATA.get(name))

    assert response.status_code == 404
    chat_session.refresh_from_db()
    assert chat_session.title == ""
    assert chat_session.messages.count() == 2


@pytest.mark.parametrize("name", URLS)
def test_the_wrong_method_is_not_allowed(analyst_client, chat_session, answer, name):
    _, method, _ = URLS[name]
    url = url_for(name, chat_session, answer)

    for wrong in ("post", "put", "delete") if method == "get" else ("get", "put", "delete"):
        assert call(analyst_client, wrong, url).status_code == 405, wrong


def test_the_chart_library_cannot_be_posted_to(client, db):
    response = client.post(reverse("chat:vega-bundle", args=[vega_bundle_version()]))

    assert response.status_code == 405


# The index ---------------------------------------------------------------------------------------


def test_an_admin_without_connections_is_invited_to_add_one(client, personas):
    client.force_login(personas.admin)

    response = client.get(INDEX_URL)

    assert response.status_code == 200
    assert "Connect a database first" in response.text
    assert f'href="{reverse("connections:connection-create")}"' in response.text
    assert f'action="{CREATE_URL}"' not in response.text


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_members_without_connections_are_told_that_an_admin_adds_them(client, personas, who):
    client.force_login(getattr(personas, who))

    response = client.get(INDEX_URL)

    assert "No database connected yet" in response.text
    assert "Ask an admin of your organisation to add a connection" in response.text
    assert reverse("connections:connection-create") not in response.text


def test_a_viewer_is_told_that_asking_needs_the_analyst_role(client, personas, shop_connection):
    client.force_login(personas.viewer)

    response = client.get(INDEX_URL)

    assert "Viewers read, analysts ask" in response.text
    assert f'action="{CREATE_URL}"' not in response.text


def test_the_new_chat_form_lists_only_the_organisations_connections(analyst_client, personas):
    warehouse = ConnectionFactory(org=personas.org, name="Warehouse")
    ConnectionFactory(org=personas.other_org, name="Globex warehouse")

    response = analyst_client.get(INDEX_URL)

    assert f'<option value="{warehouse.pk}">Warehouse</option>' in response.text
    assert "Globex warehouse" not in response.text


def test_suggested_questions_come_from_the_first_connection_with_a_catalogue(
    analyst_client, personas, shop_connection
):
    ConnectionFactory(org=personas.org, name="Archive")  # first by name, never catalogued
    expected = suggested_questions(catalogue_snapshot(connection=shop_connection), limit=4)

    response = analyst_client.get(INDEX_URL)

    assert expected
    assert "Try asking about Shop" in response.text
    for question in expected:
        assert f'name="question" value="{escape(question)}"' in response.text
    assert response.text.count(f'name="connection" value="{shop_connection.pk}"') == len(expected)


def test_no_questions_are_suggested_before_a_catalogue_exists(analyst_client, personas):
    ConnectionFactory(org=personas.org, name="Warehouse")

    response = analyst_client.get(INDEX_URL)

    assert "Try asking about" not in response.text


def test_the_index_says_when_the_built_in_engine_answers(analyst_client, no_language_model, shop_connection):
    response = analyst_client.get(INDEX_URL)

    assert "Built-in engine (offline)." in response.text
    assert "An admin can choose a language model" in response.text


def test_the_sidebar_lists_only_my_own_chats_newest_first(analyst_client, personas, shop_connection):
    ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection, title="Old"
    )
    ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection, title="New"
    )
    ChatSession.objects.create(
        org=personas.org, user=personas.admin, connection=shop_connection, title="Admin's"
    )

    response = analyst_client.get(INDEX_URL)

    titles = re.findall(r'<span class="chat-session-title">(.*?)</span>', response.text)
    assert titles == ["New", "Old"]


# Starting a chat ---------------------------------------------------------------------------------


def test_starting_a_chat_without_a_question_opens_its_empty_page(analyst_client, personas, shop_connection):
    response = analyst_client.post(CREATE_URL, {"connection": shop_connection.pk})

    session = ChatSession.objects.get()
    assert (session.org, session.user, session.connection) == (
        personas.org,
        personas.analyst,
        shop_connection,
    )
    assert response.status_code == 302
    assert response.url == reverse("chat:session-detail", args=[session.pk])
    assert not session.messages.exists()


@pytest.mark.django_db(transaction=True)
def test_a_first_question_is_answered_before_the_chat_page_opens(
    analyst_client, personas, shop_connection, fake_llm
):
    script_answer(fake_llm)

    response = analyst_client.post(
        CREATE_URL, {"connection": shop_connection.pk, "question": "total sales by region"}
    )

    session = ChatSession.objects.get()
    assert response.url == reverse("chat:session-detail", args=[session.pk])
    assert session.title == "total sales by region"
    page = analyst_client.get(response.url).text
    assert '<article class="message message-question"' in page and "total sales by region" in page
    assert "<td>Europe</td><td>1303</td>" in page and ANALYSIS in page
    assert len(fake_llm.requests) == 2


def test_a_chat_cannot_be_started_on_another_organisations_connection(analyst_client, personas):
    foreign = ConnectionFactory(org=personas.other_org)

    response = analyst_client.post(
        CREATE_URL, {"connection": foreign.pk, "question": "anything"}, follow=True
    )

    assert response.redirect_chain == [(INDEX_URL, 302)]
    assert "Select a valid choice" in response.text
    assert not ChatSession.objects.exists()


# A chat's page -----------------------------------------------------------------------------------


def test_the_chat_page_connects_its_socket_and_shows_the_questions_and_answers(
    analyst_client, chat_session, answer
):
    response = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk]))

    assert response.status_code == 200
    html = response.text
    assert f'ws-connect="/ws/chat/{chat_session.pk}/"' in html
    assert '<article class="message message-question"' in html and "total sales by region" in html
    assert f'id="message-{answer.pk}"' in html and "<td>Europe</td><td>1303</td>" in html
    assert ANALYSIS in html and escape(SQL_BY_REGION) in html
    assert f'action="{reverse("chat:ask", args=[chat_session.pk])}"' in html
    assert f'src="{reverse("chat:vega-bundle", args=[vega_bundle_version()])}"' in html
    assert 'aria-current="page"' in html


def test_what_the_model_wrote_is_escaped_on_the_page(analyst_client, chat_session):
    answer_in(chat_session, content="<script>alert('analysis')</script>", explanation="<b>why</b>")

    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    assert "<script>alert(" not in html and "&lt;script&gt;alert(" in html
    assert "<b>why</b>" not in html and "&lt;b&gt;why&lt;/b&gt;" in html


def test_an_empty_chat_suggests_questions_about_its_connection(analyst_client, chat_session, shop_connection):
    expected = suggested_questions(catalogue_snapshot(connection=shop_connection), limit=4)

    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    assert expected
    assert all(f">{escape(question)}</button>" in html for question in expected)


def test_a_viewer_reads_their_chat_without_a_question_box(client, personas, viewer_session):
    answer_in(viewer_session)
    client.force_login(personas.viewer)

    html = client.get(reverse("chat:session-detail", args=[viewer_session.pk])).text

    assert "<td>Europe</td><td>1303</td>" in html
    assert 'id="ask-form"' not in html
    assert "Export CSV" not in html


def test_a_chat_whose_connection_was_deleted_can_be_read_but_not_continued(
    analyst_client, chat_session, answer, shop_connection
):
    shop_connection.delete()

    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    assert "Its connection was deleted" in html
    assert "<td>Europe</td><td>1303</td>" in html
    assert 'id="ask-form"' not in html


def test_the_chat_list_on_the_page_is_not_the_flash_message_region(analyst_client, chat_session, answer):
    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    # Fragments from the socket append to #chat-messages; a second id="messages" would catch them.
    assert html.count('id="messages"') == 1
    assert html.count('id="chat-messages"') == 1


# Renaming and deleting ---------------------------------------------------------------------------


def test_renaming_with_htmx_answers_with_the_title_fragment(analyst_client, chat_session):
    response = analyst_client.post(
        reverse("chat:session-rename", args=[chat_session.pk]),
        {"title": "  Sales   by region "},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert is_fragment(response)
    assert response.text.strip().startswith('<div id="chat-title"')
    assert "<h1>Sales by region</h1>" in response.text
    chat_session.refresh_from_db()
    assert chat_session.title == "Sales by region"


def test_renaming_without_javascript_goes_back_to_the_chat(analyst_client, chat_session):
    url = reverse("chat:session-rename", args=[chat_session.pk])

    response = analyst_client.post(url, {"title": "Sales by region"})

    assert response.status_code == 302
    assert response.url == reverse("chat:session-detail", args=[chat_session.pk])
    assert "HX-Request" in response.headers["Vary"]
    chat_session.refresh_from_db()
    assert chat_session.title == "Sales by region"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_a_chat_needs_a_name_of_at_most_200_characters(analyst_client, chat_session, title):
    chat_session.title = "Kept"
    chat_session.save()

    response = analyst_client.post(
        reverse("chat:session-rename", args=[chat_session.pk]), {"title": title}, headers=HTMX
    )

    assert response.status_code == 422
    assert is_fragment(response)
    assert "A chat needs a name of at most 200 characters." in response.text
    assert "<h1>Kept</h1>" in response.text
    chat_session.refresh_from_db()
    assert chat_session.title == "Kept"


def test_an_empty_name_without_javascript_is_refused_with_a_message(analyst_client, chat_session):
    url = reverse("chat:session-rename", args=[chat_session.pk])

    response = analyst_client.post(url, {"title": ""}, follow=True)

    assert response.redirect_chain == [(reverse("chat:session-detail", args=[chat_session.pk]), 302)]
    assert "A chat needs a name of at most 200 characters." in response.text


def test_deleting_a_chat_removes_it_and_its_answers(analyst_client, chat_session, answer):
    response = analyst_client.post(reverse("chat:session-delete", args=[chat_session.pk]), follow=True)

    assert response.redirect_chain == [(INDEX_URL, 302)]
    assert "Chat deleted." in response.text
    assert not ChatSession.objects.exists()
    assert not ChatMessage.objects.exists()


# Asking over plain HTTP --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_asking_with_htmx_answers_with_the_question_and_the_answer(analyst_client, chat_session, fake_llm):
    script_answer(fake_llm)

    response = analyst_client.post(
        reverse("chat:ask", args=[chat_session.pk]), {"question": "total sales by region"}, headers=HTMX
    )

    assert response.status_code == 200
    assert is_fragment(response)
    question, answer = chat_session.messages.order_by("created_at", "id")
    html = response.text
    assert html.index(f'id="message-{question.pk}"') < html.index(f'id="message-{answer.pk}"')
    assert "<td>Europe</td><td>1303</td>" in html and ANALYSIS in html
    assert '<div id="chat-notice" hx-swap-oob="true"></div>' in html
    assert answer.status == MessageStatus.DONE
    assert (answer.input_tokens, answer.output_tokens) == (550, 72)


@pytest.mark.django_db(transaction=True)
def test_the_http_door_renders_the_same_answer_as_the_websocket(
    personas, analyst_client, shop_connection, fake_llm
):
    over_socket = ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection
    )
    over_http = ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection
    )
    script_answer(fake_llm)
    script_answer(fake_llm)
    analyst_client.get(reverse("chat:session-detail", args=[over_socket.pk]))  # sets the CSRF cookie

    frame = over_the_socket(
        over_socket, "total sales by region", {"csrftoken": analyst_client.cookies["csrftoken"].value}
    )
    response = analyst_client.post(
        reverse("chat:ask", args=[over_http.pk]), {"question": "total sales by region"}, headers=HTMX
    )

    assert "<td>Europe</td><td>1303</td>" in frame and ANALYSIS in frame
    assert answer_article(response.text) == answer_article(frame)
    by_socket, by_http = (s.messages.get(role=MessageRole.ASSISTANT) for s in (over_socket, over_http))
    for field in ("status", "content", "sql", "columns", "rows", "row_count", "chart", "tables_used"):
        assert getattr(by_http, field) == getattr(by_socket, field), field


@pytest.mark.django_db(transaction=True)
def test_the_http_and_api_doors_answer_twice_in_a_row_after_the_socket_used_its_loops_client(
    personas, analyst_client, chat_session, fake_llm
):
    # The WebSocket door answers on the server's long-lived loop, whose SDK client is kept; the
    # sync doors run the pipeline on loops of their own (async_to_sync), which must never get it.
    for _ in range(6):
        script_answer(fake_llm)
    api = bearer(personas.analyst)
    ask_url = reverse("chat:ask", args=[chat_session.pk])

    with server_loop() as on_server:
        frames = [on_server(socket_answer(chat_session, "total sales by region"))]
        pages = [analyst_client.post(ask_url, {"question": "and again"}, headers=HTMX) for _ in range(2)]
        bodies = [
            api.post(ASK_URL, {"session": chat_session.pk, "question": "once more"}, format="json")
            for _ in range(2)
        ]
        frames.append(on_server(socket_answer(chat_session, "and on the socket")))

    assert all("<td>Europe</td><td>1303</td>" in frame for frame in frames)
    assert all(page.status_code == 200 and "<td>Europe</td><td>1303</td>" in page.text for page in pages)
    assert [body.status_code for body in bodies] == [200, 200]
    assert [body.json()["status"] for body in bodies] == ["done", "done"]
    answers = chat_session.messages.filter(role=MessageRole.ASSISTANT).order_by("created_at")
    assert [answer.status for answer in answers] == [MessageStatus.DONE] * 6
    # Both socket answers (two model calls each) came over the server loop's one kept connection.
    ports = [request.client_port for request in fake_llm.requests]
    assert len({*ports[:2], *ports[-2:]}) == 1


@pytest.mark.django_db(transaction=True)
def test_an_answer_from_the_socket_can_be_exported_without_reloading_the_page(
    personas, chat_session, shop_connection, fake_llm
):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(personas.analyst)
    browser.get(reverse("chat:session-detail", args=[chat_session.pk]))  # sets the CSRF cookie
    script_answer(fake_llm)

    frame = over_the_socket(
        chat_session, "total sales by region", {"csrftoken": browser.cookies["csrftoken"].value}
    )

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', frame)
    assert token, "the export form of the streamed answer has no CSRF token"
    response = browser.post(
        reverse("connections:export-download", args=[shop_connection.pk]),
        {"csrfmiddlewaretoken": token.group(1), "sql": SQL_BY_REGION, "format": "csv"},
    )
    assert response.status_code == 200
    assert b"Europe" in b"".join(response.streaming_content)


@pytest.mark.django_db(transaction=True)
def test_asking_without_javascript_goes_back_to_the_chat_with_the_answer(
    analyst_client, chat_session, fake_llm
):
    script_answer(fake_llm)

    response = analyst_client.post(
        reverse("chat:ask", args=[chat_session.pk]), {"question": "total sales by region"}, follow=True
    )

    assert response.redirect_chain == [(reverse("chat:session-detail", args=[chat_session.pk]), 302)]
    assert "<td>Europe</td><td>1303</td>" in response.text and ANALYSIS in response.text


@pytest.mark.parametrize(
    ("question", "error"),
    [("   ", "This field is required."), ("x" * 2001, "at most 2000 characters")],
)
def test_an_empty_or_too_long_question_is_a_422_notice_and_nothing_is_asked(
    analyst_client, chat_session, fake_llm, question, error
):
    response = analyst_client.post(
        reverse("chat:ask", args=[chat_session.pk]), {"question": question}, headers=HTMX
    )

    assert response.status_code == 422
    assert "HX-Request" in response.headers["Vary"]
    assert '<div id="chat-notice" hx-swap-oob="true" class="alert alert-error" role="alert">' in response.text
    assert error in response.text
    assert not chat_session.messages.exists()
    assert fake_llm.requests == []


def test_an_empty_question_without_javascript_is_refused_with_a_message(analyst_client, chat_session):
    response = analyst_client.post(reverse("chat:ask", args=[chat_session.pk]), {"question": ""}, follow=True)

    assert response.redirect_chain == [(reverse("chat:session-detail", args=[chat_session.pk]), 302)]
    assert "This field is required." in response.text
    assert not chat_session.messages.exists()


@pytest.mark.django_db(transaction=True)
def test_a_question_in_a_chat_whose_connection_was_deleted_is_answered_with_why(
    analyst_client, chat_session, shop_connection, fake_llm
):
    shop_connection.delete()

    response = analyst_client.post(
        reverse("chat:ask", args=[chat_session.pk]), {"question": "total sales"}, headers=HTMX
    )

    assert response.status_code == 200
    assert "This chat&#x27;s connection was deleted." in response.text
    assert fake_llm.requests == []


# An answer's rows and feedback -------------------------------------------------------------------


def test_the_chat_page_shows_the_first_25_rows_of_an_answer(analyst_client, chat_session):
    sixty_rows(chat_session)

    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    assert items_shown(html) == list(range(1, 26))
    assert "60 rows · page 1 of 3" in html


def test_the_second_page_of_rows_is_rows_26_to_50(analyst_client, chat_session):
    message = sixty_rows(chat_session)
    url = reverse("chat:message-rows", args=[message.pk])

    response = analyst_client.get(url, {"page": 2}, headers=HTMX)

    assert response.status_code == 200
    assert is_fragment(response)
    assert items_shown(response.text) == list(range(26, 51))
    assert "page 2 of 3" in response.text
    assert f'hx-get="{url}?page=1"' in response.text and f'href="{url}?page=3"' in response.text


@pytest.mark.parametrize(
    ("page", "expected"), [("99", range(51, 61)), ("0", range(1, 26)), ("two", range(1, 26))]
)
def test_a_page_out_of_range_shows_the_nearest_page(analyst_client, chat_session, page, expected):
    message = sixty_rows(chat_session)

    response = analyst_client.get(
        reverse("chat:message-rows", args=[message.pk]), {"page": page}, headers=HTMX
    )

    assert response.status_code == 200
    assert items_shown(response.text) == list(expected)


def test_the_last_page_has_no_next_link(analyst_client, chat_session):
    message = sixty_rows(chat_session)
    url = reverse("chat:message-rows", args=[message.pk])

    html = analyst_client.get(url, {"page": 3}, headers=HTMX).text

    assert "page 3 of 3" in html
    assert ">Next</a>" not in html and f'href="{url}?page=2"' in html


def test_turning_pages_without_javascript_gives_a_page_around_the_rows(analyst_client, chat_session):
    message = sixty_rows(chat_session)

    response = analyst_client.get(reverse("chat:message-rows", args=[message.pk]), {"page": 2})

    assert response.status_code == 200
    assert "<html" in response.text
    assert items_shown(response.text) == list(range(26, 51))
    assert f'href="{reverse("chat:session-detail", args=[chat_session.pk])}"' in response.text


@pytest.mark.parametrize(("helpful", "feedback"), [("yes", 1), ("no", -1)])
def test_feedback_with_htmx_is_saved_and_answers_with_its_fragment(analyst_client, answer, helpful, feedback):
    response = analyst_client.post(
        reverse("chat:message-feedback", args=[answer.pk]),
        {"helpful": helpful, "comment": " Close enough. "},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert is_fragment(response)
    assert response.text.startswith(f'<form class="inline-form feedback" id="feedback-{answer.pk}"')
    assert "Thanks for the feedback." in response.text
    pressed = re.search(rf'value="{helpful}"[^>]*aria-pressed="(\w+)"', response.text)
    assert pressed and pressed.group(1) == "true"
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (feedback, "Close enough.")


def test_feedback_without_javascript_goes_back_to_the_chat(analyst_client, chat_session, answer):
    response = analyst_client.post(reverse("chat:message-feedback", args=[answer.pk]), {"helpful": "no"})

    assert response.status_code == 302
    assert response.url == reverse("chat:session-detail", args=[chat_session.pk])
    answer.refresh_from_db()
    assert answer.feedback == -1


def test_a_question_cannot_be_rated(analyst_client, chat_session, answer):
    question = chat_session.messages.get(role=MessageRole.USER)

    response = analyst_client.post(
        reverse("chat:message-feedback", args=[question.pk]), {"helpful": "yes"}, headers=HTMX
    )

    assert response.status_code == 422
    assert "Only answers can be rated." in response.text
    question.refresh_from_db()
    assert question.feedback is None


def test_feedback_must_say_helpful_or_not(analyst_client, answer):
    response = analyst_client.post(
        reverse("chat:message-feedback", args=[answer.pk]), {"helpful": "maybe"}, headers=HTMX
    )

    assert response.status_code == 422
    assert "Say whether the answer was helpful." in response.text
    answer.refresh_from_db()
    assert answer.feedback is None


# Searching my chats ------------------------------------------------------------------------------


@pytest.fixture
def three_chats(personas: Personas, shop_connection: Connection) -> dict[str, ChatSession]:
    def chat(user: User, title: str, question: str) -> ChatSession:
        session = ChatSession.objects.create(
            org=personas.org, user=user, connection=shop_connection, title=title
        )
        ChatMessage.objects.create(session=session, role=MessageRole.USER, content=question)
        return session

    return {
        "revenue": chat(personas.analyst, "Revenue by month", "monthly revenue in 2026"),
        "churn": chat(personas.analyst, "Churn", "which customers left in Europe?"),
        "colleague": chat(personas.admin, "Revenue of the admin", "revenue by customer"),
    }


@pytest.mark.parametrize(
    ("search", "expected"), [("REVENUE", ["Revenue by month"]), ("customers", ["Churn"])]
)
def test_the_sidebar_search_matches_titles_and_questions_of_my_chats_only(
    analyst_client, three_chats, search, expected
):
    response = analyst_client.get(SEARCH_URL, {"search": search}, headers=HTMX)

    assert response.status_code == 200
    assert is_fragment(response)
    assert response.text.startswith('<nav id="chat-session-list"')
    assert re.findall(r'<span class="chat-session-title">(.*?)</span>', response.text) == expected


def test_a_search_that_matches_nothing_says_so(analyst_client, three_chats):
    response = analyst_client.get(SEARCH_URL, {"search": "<weather>"}, headers=HTMX)

    assert "No chat matches “&lt;weather&gt;”." in response.text


def test_searching_without_javascript_filters_the_sidebar_of_the_index(analyst_client, three_chats):
    response = analyst_client.get(INDEX_URL, {"search": "churn"})

    assert "<html" in response.text
    assert re.findall(r'<span class="chat-session-title">(.*?)</span>', response.text) == ["Churn"]
    assert 'name="search" value="churn"' in response.text


# The chart library -------------------------------------------------------------------------------


def test_the_chart_library_is_served_to_anyone_and_cached_for_good(client, db, vega_bundle_built):
    response = client.get(reverse("chat:vega-bundle", args=[vega_bundle_version()]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    cache = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"public", "immutable", "max-age=31536000"} <= cache
    assert b"vegaEmbed" in b"".join(response.streaming_content)


# Query counts ------------------------------------------------------------------------------------


def chats_for(personas: Personas, connection: Connection, count: int) -> None:
    for n in range(count):
        answer_in(
            ChatSession.objects.create(
                org=personas.org, user=personas.analyst, connection=connection, title=f"Chat {n}"
            )
        )


def test_the_index_costs_the_same_queries_however_many_chats(
    analyst_client, personas, shop_connection, django_assert_num_queries
):
    chats_for(personas, shop_connection, 3)
    analyst_client.get(INDEX_URL)  # suggested questions are worked out once, then cached
    with CaptureQueriesContext(db_connection) as few:
        analyst_client.get(INDEX_URL)
    chats_for(personas, shop_connection, 27)

    with django_assert_num_queries(len(few)):
        response = analyst_client.get(INDEX_URL)

    assert response.text.count('class="chat-session-title"') == 30


def test_a_chat_page_costs_the_same_queries_however_many_answers_and_chats(
    analyst_client, personas, chat_session, shop_connection, django_assert_num_queries
):
    from apps.billing.services import budget_period_current

    url = reverse("chat:session-detail", args=[chat_session.pk])
    budget_period_current(org=personas.org)  # the month's budget period opens on first use
    for _ in range(3):
        answer_in(chat_session, chart={"kind": "kpi", "value": 3900, "label": "total"})
    chats_for(personas, shop_connection, 3)
    analyst_client.get(url)  # the session and the bell's count now cached
    with CaptureQueriesContext(db_connection) as few:
        analyst_client.get(url)
    for _ in range(27):
        answer_in(chat_session, chart={"kind": "kpi", "value": 3900, "label": "total"})
    chats_for(personas, shop_connection, 27)

    with django_assert_num_queries(len(few)):
        response = analyst_client.get(url)

    assert response.text.count('class="message message-answer') == 30
    assert response.text.count('class="chat-session-title"') == 31


def test_a_chart_spec_reaches_the_page_as_json_data_not_markup(analyst_client, chat_session):
    spec = {"mark": "bar", "data": {"values": [{"region": "</script><script>alert(1)</script>"}]}}
    answer = answer_in(chat_session, chart={"kind": "vega-lite", "spec": spec})

    html = analyst_client.get(reverse("chat:session-detail", args=[chat_session.pk])).text

    embedded = re.search(rf'<script id="chart-spec-{answer.pk}" type="application/json">(.*?)</script>', html)
    assert embedded and json.loads(embedded.group(1)) == spec
    assert f'data-vega-spec="chart-spec-{answer.pk}"' in html


def test_the_chat_says_how_much_budget_is_left_when_less_than_a_fifth_remains(client, personas, chat_session):
    from apps.billing.models import BudgetSettings
    from apps.billing.services import budget_period_current

    BudgetSettings.objects.create(org=personas.org, monthly_override=10_000)
    period = budget_period_current(org=personas.org)
    type(period).objects.filter(pk=period.pk).update(used=8_500)
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:session-detail", args=[chat_session.pk]))

    assert "1,500 tokens left this month" in response.text


def test_the_chat_counts_tokens_held_by_questions_in_flight_as_spent(client, personas, chat_session):
    from apps.billing.models import BudgetSettings
    from apps.billing.services import budget_period_current

    BudgetSettings.objects.create(org=personas.org, monthly_override=10_000)
    period = budget_period_current(org=personas.org)
    type(period).objects.filter(pk=period.pk).update(used=5_000, reserved=4_000)
    client.force_login(personas.analyst)

    response = client.get(reverse("chat:session-detail", args=[chat_session.pk]))

    assert "1,000 tokens left this month" in response.text
