"""The question pipeline through its WebSocket door, with the real anthropic SDK talking to a
local server that speaks the Messages API (datamind/lib/fake_llm.py)."""

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.billing.models import UsageRecord
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.chat.routing import websocket_urlpatterns
from apps.chat.services.pipeline import (
    Event,
    _answer_lock_release,
    _off_loop,
    _prepare,
    _prepare_locked,
    answer_question,
)

pytestmark = pytest.mark.django_db(transaction=True)

SQL_BY_REGION = (
    "SELECT r.name AS region, sum(s.amount) AS total FROM sales s JOIN regions r USING (region_id) "
    "GROUP BY r.name ORDER BY r.name"
)
EXPECTED_TOTALS = {"Americas": 1301, "Asia": 1299, "Europe": 1303}


def sql_reply(sql: str, intro: str = "I'll total the sales by region.") -> str:
    return f"{intro}\n```sql\n{sql}\n```"


async def connect(session: ChatSession, user=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/chat/{session.pk}/")
    communicator.scope["user"] = user or await database_sync_to_async(lambda: session.user)()
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask(communicator: WebsocketCommunicator, question: str) -> list[tuple[float, str]]:
    """Send a question; collect every frame (with its arrival time) until the finished answer."""
    await communicator.send_to(text_data=json.dumps({"question": question, "HEADERS": {}}))
    frames = []
    while True:
        frame = await communicator.receive_from(timeout=20)
        frames.append((time.monotonic(), frame))
        if 'hx-swap-oob="outerHTML:#answer-pending"' in frame:
            return frames


async def latest_answer(session: ChatSession) -> ChatMessage:
    return await database_sync_to_async(
        lambda: session.messages.filter(role=MessageRole.ASSISTANT).latest("created_at")
    )()


async def test_tokens_reach_the_socket_one_by_one_then_the_rows_chart_and_analysis(fake_llm, chat_session):
    reply = sql_reply(SQL_BY_REGION)
    chunks = [reply[i : i + 12] for i in range(0, len(reply), 12)]
    fake_llm.script(reply, chunks=chunks, chunk_delay=0.04, input_tokens=400, output_tokens=60)
    fake_llm.script("Each region sold 1,300.", input_tokens=150, output_tokens=12)
    communicator = await connect(chat_session)

    frames = await ask(communicator, "total sales by region")
    await communicator.disconnect()

    token_times = [t for t, frame in frames if "beforeend:#answer-text" in frame]
    assert len(token_times) == len(chunks)
    assert token_times[-1] - token_times[0] >= 0.04 * (len(chunks) - 2)  # streamed, not batched
    phases = [frame for _, frame in frames if 'id="answer-phase"' in frame]
    assert any("Writing SQL" in p for p in phases) and any("Running query" in p for p in phases)
    assert any("Analysing" in p for p in phases)
    final = frames[-1][1]
    assert "<td>Europe</td><td>1303</td>" in final and "Each region sold 1,300." in final
    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.DONE
    assert {row[0]: row[1] for row in message.rows} == EXPECTED_TOTALS
    assert message.chart["kind"] == "vega-lite" and message.chart["spec"]["mark"] == "bar"
    assert (message.input_tokens, message.output_tokens) == (550, 72)
    assert message.tables_used == ["main.regions", "main.sales"]
    usage = await database_sync_to_async(
        lambda: list(UsageRecord.objects.order_by("id").values_list("purpose", "input_tokens"))
    )()
    assert usage == [("generation", 400), ("analysis", 150)]


async def test_a_failing_query_goes_back_to_the_model_and_the_repair_is_shown(fake_llm, chat_session):
    fake_llm.script(sql_reply("SELECT region_name, sum(amount) FROM sales GROUP BY 1"))
    fake_llm.script(sql_reply(SQL_BY_REGION, intro="The region name lives in regions."))
    fake_llm.script("Fixed.")
    communicator = await connect(chat_session)

    frames = await ask(communicator, "total sales by region")
    await communicator.disconnect()

    assert any("Attempt 1 failed" in frame and "region_name" in frame for _, frame in frames)
    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.DONE and len(message.attempts) == 2
    assert message.attempts[0]["error"] and not message.attempts[1]["error"]
    repair_prompt = json.dumps(fake_llm.requests[1].body["messages"])
    assert "region_name" in repair_prompt  # the failed SQL and its error went back to the model


async def test_unsafe_sql_from_the_model_is_refused_never_run_and_repaired(fake_llm, chat_session):
    fake_llm.script(sql_reply("DELETE FROM sales"))
    fake_llm.script(sql_reply(SQL_BY_REGION))
    fake_llm.script("Done.")
    communicator = await connect(chat_session)

    await ask(communicator, "remove the sales, then total them by region")
    await communicator.disconnect()

    message = await latest_answer(chat_session)
    assert "read-only" in message.attempts[0]["error"].lower() or "DELETE" in message.attempts[0]["error"]
    assert message.status == MessageStatus.DONE
    assert await database_sync_to_async(lambda: chat_session.connection.runs.count())() == 0


async def test_three_failures_end_with_an_error_that_names_the_last_problem(fake_llm, chat_session):
    for _ in range(3):
        fake_llm.script(sql_reply("SELECT no_such_column FROM sales"))
    communicator = await connect(chat_session)

    await ask(communicator, "something impossible")
    await communicator.disconnect()

    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.ERROR and len(message.attempts) == 3
    assert "after 3 attempts" in message.error and "no_such_column" in message.error
    assert len(fake_llm.requests) == 3  # no analysis of a result that never came


async def test_a_reply_without_sql_is_answered_honestly_and_nothing_runs(fake_llm, chat_session):
    fake_llm.script("I can't answer that from this database: it has no data about weather.")
    communicator = await connect(chat_session)

    frames = await ask(communicator, "what will the weather be tomorrow?")
    await communicator.disconnect()

    assert "no data about weather" in frames[-1][1]
    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.NO_SQL and message.sql == "" and message.rows == []
    assert len(fake_llm.requests) == 1


async def test_the_model_failing_mid_stream_gives_a_clear_error_and_keeps_the_question(
    fake_llm, chat_session
):
    fake_llm.script(
        sql_reply(SQL_BY_REGION), chunks=["I'll ", "total ", "the ", "sales"], fail_after_chunks=2
    )
    fake_llm.script(
        sql_reply(SQL_BY_REGION), chunks=["I'll ", "total ", "the ", "sales"], fail_after_chunks=2
    )
    communicator = await connect(chat_session)

    frames = await ask(communicator, "total sales by region")
    await communicator.disconnect()

    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.ERROR and "language model failed" in message.error
    assert "language model failed" in frames[-1][1]
    assert await database_sync_to_async(
        lambda: chat_session.messages.filter(role=MessageRole.USER, content="total sales by region").exists()
    )()


async def test_stop_closes_the_model_stream_and_saves_a_stopped_answer(fake_llm, chat_session):
    fake_llm.script(sql_reply(SQL_BY_REGION), chunks=[f"word{i} " for i in range(100)], chunk_delay=0.05)
    communicator = await connect(chat_session)
    await communicator.send_to(text_data=json.dumps({"question": "total sales by region", "HEADERS": {}}))
    while "beforeend:#answer-text" not in await communicator.receive_from(timeout=10):
        pass

    await communicator.send_to(text_data=json.dumps({"action": "stop", "HEADERS": {}}))
    while 'hx-swap-oob="outerHTML:#answer-pending"' not in (
        frame := await communicator.receive_from(timeout=10)
    ):
        pass
    await communicator.disconnect()

    assert "You stopped this answer." in frame
    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.CANCELLED
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect, 5)


async def test_an_answer_stopped_before_the_model_was_asked_gives_its_budget_back(fake_llm, chat_session):
    from apps.billing.models import BudgetPeriod

    async def stopped_on_seeing_the_question(event: Event) -> None:
        if event.kind == "question":
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await answer_question(
            session=chat_session,
            user=chat_session.user,
            text="total sales by region",
            emit=stopped_on_seeing_the_question,
        )

    period = await database_sync_to_async(BudgetPeriod.objects.get)(org=chat_session.org)
    assert (period.used, period.reserved) == (0, 0)
    assert fake_llm.requests == []


async def test_a_chat_closed_while_its_question_is_saved_is_freed_with_a_stopped_answer(
    fake_llm, chat_session
):
    from apps.billing.models import BudgetPeriod

    answering = asyncio.ensure_future(
        answer_question(session=chat_session, user=chat_session.user, text="total sales by region")
    )
    await asyncio.sleep(0)  # the question is on its way to the database
    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering

    for _ in range(100):
        answers = await database_sync_to_async(
            lambda: list(chat_session.messages.filter(role=MessageRole.ASSISTANT))
        )()
        if answers:
            break
        await asyncio.sleep(0.05)
    assert [a.status for a in answers] == [MessageStatus.CANCELLED]
    period = await database_sync_to_async(BudgetPeriod.objects.get)(org=chat_session.org)
    assert (period.used, period.reserved) == (0, 0)
    assert fake_llm.requests == []
    fake_llm.script(sql_reply(SQL_BY_REGION))
    fake_llm.script("Totals by region.")
    answer = await answer_question(session=chat_session, user=chat_session.user, text="total sales by region")
    assert answer.status == MessageStatus.DONE


async def test_async_work_started_on_the_database_threads_runs_on_the_chats_event_loop():
    # A budget warning's notification is pushed with async_to_sync from inside a settlement; with
    # the in-memory channel layer (the embedded default) it must run on the loop of the sockets.
    async def running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def loop_seen_from_the_thread() -> asyncio.AbstractEventLoop:
        return async_to_sync(running_loop)()

    assert await _off_loop(loop_seen_from_the_thread)() is asyncio.get_running_loop()


async def _frames_of_an_answer(fake_llm, chat_session) -> list[str]:
    fake_llm.script(sql_reply(SQL_BY_REGION))
    fake_llm.script("Totals by region.")
    communicator = await connect(chat_session)
    frames = [frame for _, frame in await ask(communicator, "total sales by region")]
    await communicator.disconnect()
    return frames


async def test_the_question_its_tables_and_its_first_phase_arrive_in_one_frame(fake_llm, chat_session):
    frames = await _frames_of_an_answer(fake_llm, chat_session)

    assert "total sales by region" in frames[0] and "Writing SQL…" in frames[0]
    assert "Using 2 tables: main.regions, main.sales" in frames[0]
    assert "beforeend:#answer-text" in frames[1]


async def test_screen_readers_hear_the_phases_and_the_finished_answer_not_each_token(fake_llm, chat_session):
    frames = await _frames_of_an_answer(fake_llm, chat_session)

    assert '<span role="status"><span id="answer-phase"' in frames[0]
    assert '<div id="answer-text" class="stream-text" aria-hidden="true">' in frames[0]
    assert '<div id="answer-analysis" class="stream-text" aria-hidden="true">' in frames[0]
    assert "Totals by region." in frames[-1] and 'stream-text" aria-hidden' not in frames[-1]


async def test_a_follow_up_sends_the_previous_question_and_sql_to_the_model(fake_llm, chat_session):
    fake_llm.script(sql_reply(SQL_BY_REGION))
    fake_llm.script("Totals by region.")
    fake_llm.script(sql_reply(SQL_BY_REGION + " LIMIT 1"))
    fake_llm.script("Only one.")
    communicator = await connect(chat_session)

    await ask(communicator, "total sales by region")
    await ask(communicator, "only the first one")
    await communicator.disconnect()

    follow_up = json.dumps(fake_llm.requests[2].body["messages"])
    assert "total sales by region" in follow_up and "GROUP BY r.name" in follow_up
    assert (await latest_answer(chat_session)).row_count == 1


async def test_another_orgs_session_is_refused_with_a_not_found_close_code(personas, chat_session):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/chat/{chat_session.pk}/")
    communicator.scope["user"] = personas.outsider
    connected, code = await communicator.connect()
    assert not connected and code == 4404


async def test_a_colleagues_session_is_not_found_either(personas, chat_session):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/chat/{chat_session.pk}/")
    communicator.scope["user"] = personas.admin
    connected, code = await communicator.connect()
    assert not connected and code == 4404


async def test_viewers_cannot_ask(personas, shop_connection):
    session = await database_sync_to_async(ChatSession.objects.create)(
        org=personas.org, user=personas.viewer, connection=shop_connection
    )
    communicator = await connect(session, personas.viewer)
    await communicator.send_to(text_data=json.dumps({"question": "total sales", "HEADERS": {}}))
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    assert "Viewers can read answers but not ask questions." in frame


async def test_an_empty_question_is_refused_and_nothing_is_saved(fake_llm, chat_session):
    communicator = await connect(chat_session)
    await communicator.send_to(text_data=json.dumps({"question": "   ", "HEADERS": {}}))
    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    assert 'id="chat-notice"' in frame
    assert await database_sync_to_async(chat_session.messages.count)() == 0
    assert fake_llm.requests == []


async def test_only_one_answer_is_written_at_a_time_in_a_chat_even_from_two_tabs(fake_llm, chat_session):
    fake_llm.script(sql_reply(SQL_BY_REGION), chunks=[f"word{i} " for i in range(40)], chunk_delay=0.05)
    fake_llm.script("Totals.")
    first_tab, second_tab = await connect(chat_session), await connect(chat_session)
    await first_tab.send_to(text_data=json.dumps({"question": "total sales by region", "HEADERS": {}}))
    while "beforeend:#answer-text" not in await first_tab.receive_from(timeout=10):
        pass

    await second_tab.send_to(text_data=json.dumps({"question": "and by day", "HEADERS": {}}))
    refusal = await second_tab.receive_from(timeout=10)
    while 'hx-swap-oob="outerHTML:#answer-pending"' not in await first_tab.receive_from(timeout=20):
        pass
    await first_tab.disconnect()
    await second_tab.disconnect()

    assert "An answer is already being written in this chat" in refusal
    assert await database_sync_to_async(chat_session.messages.filter(role=MessageRole.USER).count)() == 1


async def test_a_question_sent_the_moment_the_answer_shows_done_is_answered(fake_llm, chat_session):
    for _ in range(2):
        fake_llm.script(sql_reply(SQL_BY_REGION))
        fake_llm.script("Totals.")
    communicator = await connect(chat_session)

    first = await ask(communicator, "total sales by region")
    second = await ask(communicator, "and again")
    await communicator.disconnect()

    frames = [frame for _, frame in first + second]
    assert not any("Wait for this answer" in frame or "already being written" in frame for frame in frames)
    assert sum("status-done" in frame for frame in frames) == 2


async def test_a_column_hidden_while_the_chat_is_open_is_not_shown_to_the_model_again(
    personas, fake_llm, chat_session
):
    from apps.connections.services.catalogue import catalogue_column_exclude

    for _ in range(2):
        fake_llm.script(sql_reply(SQL_BY_REGION))
        fake_llm.script("Totals.")
    communicator = await connect(chat_session)

    await ask(communicator, "total sales by region")
    await database_sync_to_async(catalogue_column_exclude)(
        connection=chat_session.connection, actor=personas.admin, column="main.sales.day", excluded=True
    )
    await ask(communicator, "total sales by region again")
    await communicator.disconnect()

    before, after = (json.dumps(fake_llm.requests[n].body["system"]) for n in (0, 2))
    assert "day DATE" in before
    assert "day DATE" not in after and "amount DECIMAL" in after


async def test_a_spent_budget_refuses_the_question_clearly_without_calling_the_model(fake_llm, chat_session):
    from apps.billing.models import BudgetSettings

    await database_sync_to_async(BudgetSettings.objects.create)(org=chat_session.org, monthly_override=100)
    communicator = await connect(chat_session)

    frames = await ask(communicator, "total sales by region")
    await communicator.disconnect()

    assert any("beforeend:#answer-text" in frame and "resets on" in frame for _, frame in frames)
    assert "token budget is spent" in frames[-1][1]
    message = await latest_answer(chat_session)
    assert message.status == MessageStatus.REFUSED and "resets on" in message.content
    assert fake_llm.requests == []


async def test_every_model_call_is_settled_in_the_ledger_and_nothing_stays_reserved(fake_llm, chat_session):
    from apps.billing.models import BudgetPeriod

    fake_llm.script(sql_reply(SQL_BY_REGION), input_tokens=400, output_tokens=60)
    fake_llm.script("Totals.", input_tokens=150, output_tokens=12)
    communicator = await connect(chat_session)

    await ask(communicator, "total sales by region")
    await communicator.disconnect()

    period = await database_sync_to_async(BudgetPeriod.objects.get)(org=chat_session.org)
    assert (period.used, period.reserved) == (622, 0)
    message = await latest_answer(chat_session)
    linked = await database_sync_to_async(
        lambda: sorted(message.usage_records.values_list("input_tokens", flat=True))
    )()
    assert linked == [150, 400]


def test_preparing_a_question_takes_as_many_queries_in_a_long_chat_as_in_a_short_one(chat_session):
    def turns_add(count: int) -> None:
        for n in range(count):
            ChatMessage.objects.create(session=chat_session, role=MessageRole.USER, content=f"question {n}")
            ChatMessage.objects.create(
                session=chat_session, role=MessageRole.ASSISTANT, sql="SELECT 1", columns=[{"name": "x"}]
            )

    def queries_to_prepare(text: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            prepared = _prepare(chat_session, text)
        assert any(turn.sql == "SELECT 1" for turn in prepared.history)
        return len(queries)

    turns_add(1)
    queries_to_prepare("the first question loads the catalogue's index")
    short = queries_to_prepare("a follow-up")
    turns_add(8)

    assert queries_to_prepare("a follow-up in a long chat") == short


def test_a_question_is_ready_for_the_model_in_four_queries_once_its_catalogue_is_indexed(chat_session):
    def prepare(text: str) -> list[dict]:
        with CaptureQueriesContext(connection) as queries:
            prepared = _prepare_locked(chat_session, text, chat_session.user)
        _answer_lock_release(chat_session)
        assert prepared is not None and prepared.first_call is not None
        assert prepared.first_call.reservation is not None
        return queries.captured_queries

    prepare("total sales by region")  # indexes the catalogue

    queries = prepare("and by month?")

    # The question's save (with its chat's), the connection with the model settings, the history,
    # and the first call's budget held.
    assert len(queries) == 4, [q["sql"][:60] for q in queries]
