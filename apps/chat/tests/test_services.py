import datetime

import pytest

from apps.chat.models import ChatMessage, ChatSession, MessageRole
from apps.chat.services import sessions
from apps.chat.services.sessions import question_add, session_rename


@pytest.fixture(params=["one statement", "transaction"])
def ways(request, monkeypatch) -> None:
    """Every test using it runs twice: with the one statement Postgres uses, and with the ORM
    transaction other databases (SQLite) use."""
    if request.param == "transaction":
        monkeypatch.setattr(sessions, "_one_statement", lambda: False)


def test_a_question_is_saved_in_its_chat_which_it_names_and_moves_to_the_top(ways, chat_session):
    older = ChatSession.objects.create(
        org=chat_session.org, user=chat_session.user, connection=chat_session.connection, title="Older"
    )
    ChatSession.objects.filter(pk=chat_session.pk).update(
        updated_at=older.updated_at - datetime.timedelta(days=1)
    )

    question = question_add(session=chat_session, text="total sales by region")

    saved = ChatMessage.objects.get()
    assert (saved.pk, saved.role, saved.content) == (question.pk, MessageRole.USER, "total sales by region")
    assert saved.status == "" and saved.attempts == [] and saved.chart == {} and saved.row_count is None
    assert saved.created_at == question.created_at
    chat_session.refresh_from_db()
    assert chat_session.title == "total sales by region"
    assert list(ChatSession.objects.order_by("-updated_at")) == [chat_session, older]


def test_a_chat_is_named_after_its_first_question_only(ways, chat_session):
    question_add(session=chat_session, text="total sales by region")
    question_add(session=chat_session, text="and by month?")

    chat_session.refresh_from_db()
    assert chat_session.title == "total sales by region"


def test_a_name_given_in_another_tab_stays_when_a_question_is_asked(ways, chat_session):
    ChatSession.objects.filter(pk=chat_session.pk).update(title="Regions")  # chat_session is stale

    question_add(session=chat_session, text="total sales by region")

    chat_session.refresh_from_db()
    assert chat_session.title == "Regions"


def test_a_long_first_question_names_the_chat_with_its_beginning(ways, chat_session):
    text = "total sales " * 20

    question_add(session=chat_session, text=text)

    chat_session.refresh_from_db()
    assert chat_session.title == text[: sessions.TITLE_FROM_QUESTION_LENGTH]
    assert ChatMessage.objects.get().content == text


def test_the_question_and_its_chat_are_saved_in_one_statement_on_postgres(
    chat_session, django_assert_num_queries
):
    # One round trip on every question's way to the model: no BEGIN and COMMIT around two writes.
    session_rename(session=chat_session, title="Regions")
    with django_assert_num_queries(1):
        question_add(session=chat_session, text="total sales by region")
