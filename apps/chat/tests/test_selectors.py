import datetime

from apps.chat.models import ChatMessage, ChatSession, MessageRole
from apps.chat.selectors import messages_before


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
