"""The chat API: asking (a new chat or a follow-up), listing my chats and their messages."""

import json
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.models import Role, User
from apps.billing.models import UsageRecord
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.chat.tests.test_pipeline import EXPECTED_TOTALS, SQL_BY_REGION, sql_reply
from apps.connections.models import Connection
from apps.connections.tests.factories import ConnectionFactory
from datamind.lib.fake_llm import FakeLLMServer
from datamind.lib.permissions import ROLE_DENIED_MESSAGE
from datamind.lib.testing import PASSWORD, Personas

ASK_URL = reverse("chat-api:ask")
SESSIONS_URL = reverse("chat-api:session-list")
TOKEN_URL = reverse("accounts-api:token-obtain")
ANALYSIS = "Each region sold about 1,300."
NOT_FOUND = {"code": "not_found", "detail": "Not found."}
ANALYSTS_ONLY = {"code": "permission_denied", "detail": ROLE_DENIED_MESSAGE[Role.ANALYST]}
NOT_AUTHENTICATED = {"code": "not_authenticated", "detail": "Authentication credentials were not provided."}
# What the web door and the API must agree on, by the API's name and the model's.
SAME_CONTENT = {
    "status": "status",
    "analysis": "content",
    "explanation": "explanation",
    "sql": "sql",
    "columns": "columns",
    "rows": "rows",
    "row_count": "row_count",
    "truncated": "truncated",
    "chart": "chart",
    "tables_used": "tables_used",
    "provider": "provider",
    "model": "model",
}


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def messages_url(session: ChatSession) -> str:
    return reverse("chat-api:session-messages", args=[session.pk])


def script_answer(fake_llm: FakeLLMServer, sql: str = SQL_BY_REGION, analysis: str = ANALYSIS) -> None:
    """The model's two replies for one question: the SQL, then the analysis of its result."""
    fake_llm.script(sql_reply(sql), input_tokens=400, output_tokens=60)
    fake_llm.script(analysis, input_tokens=150, output_tokens=12)


def chat_with_answer(session: ChatSession, question: str = "total sales by region") -> ChatMessage:
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content=question)
    return ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        content=ANALYSIS,
        sql=SQL_BY_REGION,
        columns=[{"name": "region", "type": "VARCHAR"}, {"name": "total", "type": "DECIMAL(38,2)"}],
        rows=[[region, total] for region, total in sorted(EXPECTED_TOTALS.items())],
        row_count=3,
        input_tokens=550,
        output_tokens=72,
    )


@pytest.fixture
def foreign_connection(personas: Personas) -> Connection:
    return ConnectionFactory(org=personas.other_org, name="Globex warehouse")


@pytest.fixture
def foreign_session(personas: Personas, foreign_connection: Connection) -> ChatSession:
    return ChatSession.objects.create(
        org=personas.other_org, user=personas.outsider, connection=foreign_connection
    )


@pytest.fixture
def colleague_session(personas: Personas, shop_connection: Connection) -> ChatSession:
    return ChatSession.objects.create(org=personas.org, user=personas.admin, connection=shop_connection)


# Asking ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_asking_on_a_connection_starts_a_chat_and_answers_when_the_answer_is_whole(
    personas, shop_connection, fake_llm
):
    script_answer(fake_llm)

    response = bearer(personas.analyst).post(
        ASK_URL, {"connection": shop_connection.pk, "question": "total sales by region"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    session = ChatSession.objects.get()
    assert (session.user, session.connection, session.title) == (
        personas.analyst,
        shop_connection,
        "total sales by region",
    )
    answer = session.messages.get(role=MessageRole.ASSISTANT)
    assert (body["session"], body["id"], body["role"], body["status"]) == (
        session.pk,
        answer.pk,
        "assistant",
        "done",
    )
    assert body["sql"] == SQL_BY_REGION
    assert [c["name"] for c in body["columns"]] == ["region", "total"]
    assert dict(body["rows"]) == EXPECTED_TOTALS
    assert body["row_count"] == 3
    assert body["chart"]["kind"] == "vega-lite" and body["chart"]["spec"]["mark"] == "bar"
    assert body["analysis"] == ANALYSIS
    assert body["usage"] == {"input_tokens": 550, "output_tokens": 72}
    assert list(UsageRecord.objects.order_by("id").values_list("purpose", flat=True)) == [
        "generation",
        "analysis",
    ]


@pytest.mark.django_db(transaction=True)
def test_asking_in_a_chat_is_a_follow_up_that_the_model_sees_as_one(personas, chat_session, fake_llm):
    script_answer(fake_llm)
    script_answer(fake_llm, sql=f"{SQL_BY_REGION} LIMIT 1", analysis="Only the Americas.")
    client = bearer(personas.analyst)

    first = client.post(
        ASK_URL, {"session": chat_session.pk, "question": "total sales by region"}, format="json"
    )
    second = client.post(
        ASK_URL, {"session": chat_session.pk, "question": "only the first one"}, format="json"
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["session"] == second.json()["session"] == chat_session.pk
    assert second.json()["row_count"] == 1 and second.json()["analysis"] == "Only the Americas."
    assert ChatSession.objects.count() == 1
    assert chat_session.messages.count() == 4
    follow_up = json.dumps(fake_llm.requests[2].body["messages"])
    assert "total sales by region" in follow_up and "GROUP BY r.name" in follow_up


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_with_the_same_content_as_the_web_door(personas, shop_connection, fake_llm):
    web_session = ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection
    )
    script_answer(fake_llm)
    script_answer(fake_llm)
    web = Client()
    web.force_login(personas.analyst)

    web.post(
        reverse("chat:ask", args=[web_session.pk]),
        {"question": "total sales by region"},
        headers={"HX-Request": "true"},
    )
    response = bearer(personas.analyst).post(
        ASK_URL, {"connection": shop_connection.pk, "question": "total sales by region"}, format="json"
    )

    by_web = web_session.messages.get(role=MessageRole.ASSISTANT)
    body = response.json()
    assert body["status"] == "done"
    assert {api: body[api] for api in SAME_CONTENT} == {
        api: getattr(by_web, field) for api, field in SAME_CONTENT.items()
    }
    assert body["usage"] == {"input_tokens": by_web.input_tokens, "output_tokens": by_web.output_tokens}


@pytest.mark.django_db(transaction=True)
def test_a_reply_without_sql_is_answered_as_such(personas, chat_session, fake_llm):
    fake_llm.script("I can't answer that from this database: it has no data about weather.")

    response = bearer(personas.analyst).post(
        ASK_URL, {"session": chat_session.pk, "question": "will it rain tomorrow?"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "no_sql"
    assert "no data about weather" in body["analysis"]
    assert (body["sql"], body["rows"], body["row_count"]) == ("", [], None)


# Asking: who may, and what is refused ------------------------------------------------------------


def test_viewers_cannot_ask(personas, shop_connection, fake_llm):
    response = bearer(personas.viewer).post(
        ASK_URL, {"connection": shop_connection.pk, "question": "total sales"}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == ANALYSTS_ONLY
    assert not ChatSession.objects.exists()
    assert fake_llm.requests == []


def test_anonymous_callers_cannot_ask(personas, shop_connection):
    response = APIClient().post(
        ASK_URL, {"connection": shop_connection.pk, "question": "total"}, format="json"
    )

    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "about",
    ["foreign_connection", "foreign_session", "colleague_session"],
)
def test_another_orgs_connection_or_someone_elses_chat_is_not_found(request, personas, fake_llm, about):
    target = request.getfixturevalue(about)
    key = "connection" if about == "foreign_connection" else "session"

    response = bearer(personas.analyst).post(ASK_URL, {key: target.pk, "question": "total"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert not ChatMessage.objects.exists()
    assert ChatSession.objects.filter(user=personas.analyst).count() == 0
    assert fake_llm.requests == []


def test_a_question_needs_a_connection_or_a_chat(personas, fake_llm):
    response = bearer(personas.analyst).post(ASK_URL, {"question": "total sales"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Give a connection, or a session to continue.",
        "fields": {"connection": ["Give a connection, or a session to continue."]},
    }
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("question", "problem"),
    [(None, "This field is required."), ("   ", "This field may not be blank.")],
)
def test_a_question_needs_its_text(personas, shop_connection, question, problem):
    body: dict[str, Any] = {"connection": shop_connection.pk}
    if question is not None:
        body["question"] = question

    response = bearer(personas.analyst).post(ASK_URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"question": [problem]}
    assert not ChatSession.objects.exists()


def test_a_question_of_more_than_2000_characters_is_refused(personas, shop_connection):
    response = bearer(personas.analyst).post(
        ASK_URL, {"connection": shop_connection.pk, "question": "x" * 2001}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["question"]


# Listing my chats and their messages -------------------------------------------------------------


def test_the_chat_list_holds_only_my_own_chats_newest_first(
    personas, shop_connection, colleague_session, foreign_session
):
    older = ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection, title="Older"
    )
    newer = ChatSession.objects.create(
        org=personas.org, user=personas.analyst, connection=shop_connection, title="Newer"
    )

    response = bearer(personas.analyst).get(SESSIONS_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [s["id"] for s in body["results"]] == [newer.pk, older.pk]
    assert set(body["results"][0]) == {"id", "title", "connection", "created_at", "updated_at"}
    assert body["results"][0]["connection"] == shop_connection.pk


def test_the_chat_list_is_paginated(personas, shop_connection):
    for n in range(3):
        ChatSession.objects.create(
            org=personas.org, user=personas.analyst, connection=shop_connection, title=f"{n}"
        )

    body = bearer(personas.analyst).get(SESSIONS_URL, {"page_size": 2}).json()

    assert (body["count"], len(body["results"])) == (3, 2)
    assert body["next"] and body["previous"] is None


def test_the_chat_list_needs_a_fixed_number_of_queries(personas, shop_connection, django_assert_num_queries):
    client = bearer(personas.viewer)
    for _ in range(3):
        ChatSession.objects.create(org=personas.org, user=personas.viewer, connection=shop_connection)
    with CaptureQueriesContext(db_connection) as few:
        client.get(SESSIONS_URL)
    for _ in range(27):
        ChatSession.objects.create(org=personas.org, user=personas.viewer, connection=shop_connection)

    with django_assert_num_queries(len(few)):
        response = client.get(SESSIONS_URL)

    assert response.json()["count"] == 30


def test_a_chats_messages_are_listed_oldest_first(personas, chat_session):
    answer = chat_with_answer(chat_session)

    response = bearer(personas.analyst).get(messages_url(chat_session))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    question, listed = body["results"]
    assert (question["role"], question["analysis"]) == ("user", "total sales by region")
    assert (listed["id"], listed["role"], listed["session"]) == (answer.pk, "assistant", chat_session.pk)
    assert listed["sql"] == SQL_BY_REGION and listed["analysis"] == ANALYSIS
    assert listed["usage"] == {"input_tokens": 550, "output_tokens": 72}


def test_the_messages_are_paginated_with_a_fixed_number_of_queries(
    personas, chat_session, django_assert_num_queries
):
    client = bearer(personas.analyst)
    chat_with_answer(chat_session)
    with CaptureQueriesContext(db_connection) as few:
        client.get(messages_url(chat_session))
    for _ in range(14):
        chat_with_answer(chat_session)

    with django_assert_num_queries(len(few)):
        body = client.get(messages_url(chat_session), {"page_size": 20}).json()

    assert (body["count"], len(body["results"])) == (30, 20)


@pytest.mark.parametrize("about", ["foreign_session", "colleague_session"])
def test_someone_elses_chat_has_no_messages_to_list(request, personas, about):
    session = request.getfixturevalue(about)
    chat_with_answer(session)

    response = bearer(personas.analyst).get(messages_url(session))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_chat_that_does_not_exist_is_the_same_404(personas):
    response = bearer(personas.analyst).get(reverse("chat-api:session-messages", args=[999_999]))

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize("path", ["sessions", "messages"])
def test_anonymous_callers_cannot_list(chat_session, path):
    url = SESSIONS_URL if path == "sessions" else messages_url(chat_session)

    response = APIClient().get(url)

    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "ask"), ("put", "ask"), ("post", "sessions"), ("delete", "sessions"), ("post", "messages")],
)
def test_a_wrong_method_is_a_405_with_the_standard_body(personas, chat_session, method, path):
    url = {"ask": ASK_URL, "sessions": SESSIONS_URL, "messages": messages_url(chat_session)}[path]

    response = getattr(bearer(personas.analyst), method)(url)

    assert response.status_code == 405
    assert response.json() == {
        "code": "method_not_allowed",
        "detail": f'Method "{method.upper()}" not allowed.',
    }


# Authentication ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_token_from_the_token_endpoint_asks_and_lists(personas, shop_connection, fake_llm):
    script_answer(fake_llm)
    api = APIClient()
    token = api.post(TOKEN_URL, {"email": "analyst@acme.test", "password": PASSWORD}, format="json")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")

    asked = api.post(
        ASK_URL, {"connection": shop_connection.pk, "question": "total sales by region"}, format="json"
    )
    listed = api.get(SESSIONS_URL)

    assert asked.status_code == 200 and asked.json()["status"] == "done"
    assert [s["id"] for s in listed.json()["results"]] == [asked.json()["session"]]
    assert ChatSession.objects.get().user == personas.analyst


def test_a_malformed_token_is_refused(personas):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = api.get(SESSIONS_URL)

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
