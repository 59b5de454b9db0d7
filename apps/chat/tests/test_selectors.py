import datetime

from apps.chat.models import ChatMessage, ChatSession, LLMSettings, MessageRole
from apps.chat.selectors import connection_with_model_settings, messages_before
from apps.connections.models import Connection


def message(session: ChatSession, minutes: int, role: str, **fields) -> ChatMessage:
    at = datetime.datetime(2026, 11, 1, 12, tzinfo=datetime.UTC) + datetime.timedelta(minutes=minutes)
    return ChatMessage.objects.create(session=session, role=role, created_at=at, **fields)


def test_the_messages_before_a_question_come_newest_first_as_values(chat_session):
    message(chat_session, 1, MessageRole.USER, content="total sales by region")
    message(
        chat_session,
        2,
        MessageRole.ASSISTANT,
        content="Europe leads.",
        sql="SELECT 1",
        columns=[{"name": "region", "type": "VARCHAR"}],
        row_count=3,
        rows=[["Europe"]],
    )
    question = message(chat_session, 3, MessageRole.USER, content="and by month?")
    message(chat_session, 4, MessageRole.ASSISTANT, content="later")

    assert messages_before(session=chat_session, before=question, limit=20) == [
        {
            "role": "assistant",
            "content": "Europe leads.",
            "sql": "SELECT 1",
            "columns": [{"name": "region", "type": "VARCHAR"}],
            "row_count": 3,
        },
        {"role": "user", "content": "total sales by region", "sql": "", "columns": [], "row_count": None},
    ]


def test_only_the_latest_messages_of_that_chat_are_read(chat_session):
    other = ChatSession.objects.create(org=chat_session.org, user=chat_session.user)
    message(other, 0, MessageRole.USER, content="elsewhere")
    for minute in range(1, 6):
        message(chat_session, minute, MessageRole.USER, content=f"question {minute}")
    question = message(chat_session, 10, MessageRole.USER, content="now")

    latest = messages_before(session=chat_session, before=question, limit=2)

    assert [m["content"] for m in latest] == ["question 5", "question 4"]


def test_a_questions_connection_comes_with_its_org_and_the_orgs_model_settings(shop_connection):
    saved = LLMSettings.objects.create(
        org=shop_connection.org, provider="anthropic", model="claude-test", api_key="sk-secret"
    )
    Connection.objects.filter(pk=shop_connection.pk).update(
        password="hunter2", excluded_columns=["main.sales.amount"]
    )

    found, llm = connection_with_model_settings(pk=shop_connection.pk)

    expected = Connection.objects.select_related("org").get(pk=shop_connection.pk)
    assert field_values(found) == field_values(expected) and found.password == "hunter2"
    assert found.excluded_columns == ["main.sales.amount"] and found.options == {}
    assert field_values(found.org) == field_values(expected.org)
    assert field_values(llm) == field_values(saved) and llm.api_key == "sk-secret"


def test_an_org_without_model_settings_has_none(shop_connection):
    found, llm = connection_with_model_settings(pk=shop_connection.pk)

    assert found == shop_connection and llm is None


def test_a_deleted_connection_is_not_found(shop_connection):
    pk = shop_connection.pk
    shop_connection.delete()

    assert connection_with_model_settings(pk=pk) is None


def test_the_connection_and_its_settings_are_one_query(shop_connection, django_assert_num_queries):
    with django_assert_num_queries(1):
        connection_with_model_settings(pk=shop_connection.pk)


def field_values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
