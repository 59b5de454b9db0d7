"""The question pipeline: one function for every door (WebSocket, API, plain HTTP).

`answer_question` takes a question through the steps of DESIGN.md ("The main path") and reports
progress through `emit`, an async callback that receives `Event`s. The doors differ only in what
they do with events: the consumer renders and sends them, the API and the HTTP fallback ignore
them and use the finished message.
"""

import asyncio
import contextvars
import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import structlog
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.billing.models import Purpose, Reservation, UsageRecord
from apps.billing.services import BudgetExhausted, budget_release, budget_reserve, budget_settle
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.chat.providers.base import Prompt, Provider, ProviderError, QuestionContext, Turn, Usage
from apps.chat.selectors import connection_with_model_settings, messages_before
from apps.chat.services.charts import chart_for_result
from apps.chat.services.context import (
    chart_spec_extract,
    estimate_tokens,
    prompt_for_analysis,
    prompt_for_sql,
    schema_index_cached,
    schema_link,
    sql_extract,
)
from apps.chat.services.providers import provider_for_org, provider_for_settings
from apps.chat.services.sessions import question_add
from apps.connections.engines.base import EngineError, TableInfo
from apps.connections.models import Connection
from apps.connections.safety import UnsafeSQLError
from apps.connections.selectors import catalogue_snapshot
from apps.connections.services.execution import ExecutedQuery, query_execute

logger = structlog.get_logger(__name__)

QUESTION_MAX_LENGTH = 2000
MAX_ATTEMPTS = 3  # the first try and at most two repairs
PREVIEW_ROWS = 200
ANALYSIS_ROWS = 30
HISTORY_TURNS = 5
CONTEXT_TOKEN_BUDGET = 6000
# Threads for the pipeline's database and cache work, each with its own database connection.
DB_THREADS = 8

P = ParamSpec("P")
R = TypeVar("R")

# Channels runs database_sync_to_async on one thread shared by every consumer of the process, so
# with many chats at once each question's round trips waited behind every other chat's before its
# first token could even be asked for. Each call below is a transaction of its own and receives
# plain objects, so any thread may run it: they get a small pool of their own (bounded, since every
# worker keeps a database connection), apart from the loop's default executor that runs the
# warehouse queries.
_db_threads = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="chat-db")


def _off_loop(function: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`function` on the pipeline's threads, its database connection recycled as a request's is.

    Connections are checked inside the call, where they were used: channels'
    database_sync_to_async checks them outside it and left this pool's connections open past
    CONN_MAX_AGE (the test database could then not be dropped at the end of the run).

    Each call runs in a copy of the caller's context (its log bindings come along) given to
    sync_to_async, which then does not carry every context variable back onto the event loop
    afterwards: a few dozen of Django's context-local stores re-homed on every trip, on the loop
    every chat shares, for values none of these functions change. Still through sync_to_async, so
    async_to_sync in these threads (a budget warning's notification push) runs on the caller's
    loop."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        in_thread = sync_to_async(
            run, thread_sensitive=False, executor=_db_threads, context=contextvars.copy_context()
        )
        return await in_thread(*args, **kwargs)

    return call


class Phase:
    WRITING = "Writing SQL"
    REPAIRING = "Fixing the SQL"
    RUNNING = "Running query"
    ANALYSING = "Analysing"


@dataclass
class Event:
    """Something the user should see now. `kind` is one of: question, phase, token, sql,
    attempt_failed, result, analysis_token, done."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


Emit = Callable[[Event], Awaitable[None]]


async def emit_nothing(event: Event) -> None:
    """For doors that only want the finished message."""


@dataclass
class _Answer:
    """What the pipeline learnt so far; becomes the assistant's ChatMessage."""

    status: str = MessageStatus.DONE
    content: str = ""
    explanation: str = ""
    sql: str = ""
    attempts: list[dict[str, str]] = field(default_factory=list)
    tables_used: list[str] = field(default_factory=list)
    columns: list[dict[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int | None = None
    truncated: bool = False
    chart: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    usage: Usage = field(default_factory=Usage)
    calls: list[tuple[str, Usage]] = field(default_factory=list)
    usage_record_ids: list[int] = field(default_factory=list)
    timings: dict[str, int] = field(default_factory=dict)


@dataclass
class _FirstCall:
    """The first model call's prompt, its budget already held (or what holding it raised, a spent
    budget, raised again where the call is made, after the question is shown).

    Both are settled on the pipeline's threads in the question's own trip there: a trip fewer
    before the model is asked, and with many chats at once the hold no longer waits in line behind
    every other chat's question."""

    prompt: Prompt
    reservation: Reservation | None = None
    refused: Exception | None = None

    def reservation_take(self) -> Reservation:
        if self.refused is not None:
            raise self.refused
        assert self.reservation is not None
        reservation, self.reservation = self.reservation, None
        return reservation


@dataclass
class _Prepared:
    question: ChatMessage
    org: Organization
    connection: Connection | None
    tables: list[TableInfo]
    history: list[Turn]
    provider: Provider
    # The catalogue's tables the question needs, and how long finding them took.
    linked: list[TableInfo] = field(default_factory=list)
    context_ms: int | None = None
    first_call: _FirstCall | None = None


def question_clean(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError("Type a question first.")
    if len(text) > QUESTION_MAX_LENGTH:
        raise ValidationError(f"Questions can be at most {QUESTION_MAX_LENGTH} characters long.")
    return text


def _history(session: ChatSession, before: ChatMessage) -> list[Turn]:
    """The last few question/answer pairs of the session, oldest first, for follow-ups."""
    messages = messages_before(session=session, before=before, limit=4 * HISTORY_TURNS)
    turns: list[Turn] = []
    answer: dict[str, Any] | None = None
    for message in messages:
        if message["role"] == MessageRole.ASSISTANT:
            answer = message
        elif message["role"] == MessageRole.USER:
            turns.append(
                Turn(
                    question=message["content"],
                    sql=answer["sql"] if answer else "",
                    columns=[c["name"] for c in answer["columns"]] if answer else [],
                    row_count=answer["row_count"] if answer else None,
                    analysis=answer["content"] if answer else "",
                )
            )
            answer = None
    return list(reversed(turns[:HISTORY_TURNS]))


def _catalogue_key(connection: Connection) -> tuple[int, int, tuple[str, ...]]:
    """What identifies the catalogue the model may see: hiding a column changes it without a new
    catalogue version."""
    return connection.pk, connection.catalogue_version, tuple(connection.excluded_columns)


def _prepare_locked(session: ChatSession, text: str, user: User) -> _Prepared | None:
    """Take the chat's answer lock, save the question, and get its first model call ready, in one
    trip to the pipeline's threads; None when another answer is being written. Saving the answer
    frees the chat again."""
    if not _answer_lock_take(session):
        return None
    try:
        prepared = _prepare(session, text)
        _first_call_hold(prepared, user)
        return prepared
    except BaseException:
        _answer_lock_release(session)
        raise


def _first_call_hold(prepared: _Prepared, user: User) -> None:
    """Find the tables the question needs, write the first prompt and hold its budget (see
    _FirstCall); nothing when no model will be asked (no connection, or no catalogue)."""
    if prepared.connection is None or not prepared.tables:
        return
    started = time.perf_counter()
    prepared.linked = schema_link(
        prepared.tables,
        prepared.question.content,
        prepared.history,
        token_budget=CONTEXT_TOKEN_BUDGET,
        cache_key=_catalogue_key(prepared.connection),
    )
    prepared.context_ms = _ms(started)
    first = _FirstCall(prompt=prompt_for_sql(_sql_context(prepared, prepared.linked, attempts=[])))
    try:
        first.reservation = budget_reserve(
            org=prepared.org, user=user, amount=_reserve_amount(prepared.provider, first.prompt)
        )
    except Exception as exc:
        first.refused = exc
    prepared.first_call = first


def _prepare(session: ChatSession, text: str) -> _Prepared:
    # No transaction around it all: the question's save is atomic by itself, and the reads need no
    # snapshot in common (a BEGIN and a COMMIT fewer on every question's way to the model).
    question = question_add(session=session, text=text)
    # Read again, with the org's model settings (see the selector).
    found = connection_with_model_settings(pk=session.connection_id) if session.connection_id else None
    connection: Connection | None
    if found is None:
        connection, org, provider, tables = None, session.org, provider_for_org(session.org), []
    else:
        connection, llm_settings = found
        org = connection.org
        provider = provider_for_settings(llm_settings)
        # The catalogue's index is kept per version; with it, the catalogue need not be loaded.
        index = schema_index_cached(_catalogue_key(connection))
        tables = index.tables if index is not None else catalogue_snapshot(connection=connection)
    return _Prepared(
        question=question,
        org=org,
        connection=connection,
        tables=tables,
        history=_history(session, question),
        provider=provider,
    )


async def _stream(provider: Provider, prompt: Prompt, emit: Emit, kind: str) -> tuple[str, Usage]:
    """Stream one model reply to `emit` token by token; return the whole text and its usage."""
    parts: list[str] = []
    provider.usage = Usage()
    stream: AsyncIterator[str] = provider.stream(prompt)
    try:
        async for text in stream:
            parts.append(text)
            await emit(Event(kind, {"text": text}))
    finally:
        await stream.aclose()
    return "".join(parts), provider.usage


def _reserve_amount(provider: Provider, prompt: Prompt) -> int:
    """The most a call can use: its prompt and its whole output allowance (none offline)."""
    if provider.name == "builtin":
        return 0
    text = prompt.system + "".join(m["content"] for m in prompt.messages)
    return estimate_tokens(text) + prompt.max_tokens


async def _call_model(
    prepared: _Prepared,
    answer: _Answer,
    prompt: Prompt,
    emit: Emit,
    kind: str,
    purpose: str,
    user: User,
    first: _FirstCall | None = None,
) -> str:
    """One model call inside the org's budget: reserve its maximum first (BudgetExhausted if it
    does not fit, before any request is made), settle with the provider's own usage report, and
    give the reservation back if the call fails or is stopped. `first`: the question's first call,
    whose budget is already held."""
    session = prepared.question.session
    if first is not None:
        reservation = first.reservation_take()
    else:
        reservation = await _off_loop(budget_reserve)(
            org=prepared.org, user=user, amount=_reserve_amount(prepared.provider, prompt)
        )
    try:
        reply, usage = await _stream(prepared.provider, prompt, emit, kind)
    except BaseException:
        await asyncio.shield(_off_loop(budget_release)(reservation=reservation))
        raise
    record = await _off_loop(budget_settle)(
        reservation=reservation,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        provider=prepared.provider.name,
        model=prepared.provider.model,
        purpose=purpose,
        user=user,
        session_id=session.pk,
    )
    answer.calls.append((purpose, usage))
    answer.usage_record_ids.append(record.pk)
    return reply


def _without_code_blocks(text: str) -> str:
    text = re.sub(r"```.*?(```|$)", "", text, flags=re.DOTALL)
    text = re.sub(r"<sql>.*?(</sql>|$)", "", text, flags=re.DOTALL | re.IGNORECASE)
    return text.strip()


def _failure_detail(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return getattr(exc, "detail", None) or str(exc)


async def _run_query(connection: Connection, sql: str, user: User) -> ExecutedQuery:
    """Run the SQL in a worker thread; if the answer is cancelled, cancel the query on the server."""
    cancels: list[Callable[[], None]] = []
    run = database_sync_to_async(query_execute, thread_sensitive=False)
    task = asyncio.ensure_future(
        run(connection=connection, sql=sql, user=user, row_cap=None, on_cancel=cancels.append)
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        for cancel in cancels:
            await sync_to_async(cancel, thread_sensitive=False)()
        raise


def _sql_context(
    prepared: _Prepared, tables: list[TableInfo], attempts: list[dict[str, str]]
) -> QuestionContext:
    assert prepared.connection is not None
    return QuestionContext(
        question=prepared.question.content,
        dialect=prepared.connection.dialect,
        tables=tables,
        history=prepared.history,
        attempts=list(attempts),
    )


async def _write_sql(prepared: _Prepared, answer: _Answer, tables: list[TableInfo], emit: Emit, user: User):
    """Ask for SQL, run it, and repair it (at most twice) on a refusal or a database error."""
    connection = prepared.connection
    for attempt in range(MAX_ATTEMPTS):
        started = time.perf_counter()
        if attempt:  # the first attempt's phase was shown with the question
            await emit(Event("phase", {"phase": Phase.REPAIRING, "attempt": attempt + 1}))
        # The first attempt's prompt was written with the question (see _FirstCall).
        first, prepared.first_call = prepared.first_call, None
        prompt = first.prompt if first else prompt_for_sql(_sql_context(prepared, tables, answer.attempts))
        purpose = Purpose.REPAIR if attempt else Purpose.GENERATION
        reply = await _call_model(prepared, answer, prompt, emit, "token", purpose, user, first)
        answer.timings["generation_ms"] = answer.timings.get("generation_ms", 0) + _ms(started)
        sql = sql_extract(reply)
        answer.explanation = _without_code_blocks(reply)
        if sql is None:
            answer.status = MessageStatus.NO_SQL
            answer.content = answer.explanation or "I can't answer that from this database."
            return None
        answer.sql = sql
        await emit(Event("sql", {"sql": sql, "attempt": attempt + 1}))
        await emit(Event("phase", {"phase": Phase.RUNNING}))
        started = time.perf_counter()
        try:
            executed = await _run_query(connection, sql, user)
        except (UnsafeSQLError, EngineError, ValidationError) as exc:
            answer.timings["query_ms"] = answer.timings.get("query_ms", 0) + _ms(started)
            failure = {"sql": sql, "error": _failure_detail(exc)}
            answer.attempts.append(failure)
            await emit(
                Event(
                    "attempt_failed",
                    {**failure, "attempt": attempt + 1, "final": attempt + 1 == MAX_ATTEMPTS},
                )
            )
            continue
        answer.timings["query_ms"] = answer.timings.get("query_ms", 0) + _ms(started)
        answer.attempts.append({"sql": sql, "error": ""})
        return executed
    answer.status = MessageStatus.ERROR
    answer.error = f"The SQL still failed after {MAX_ATTEMPTS} attempts: {answer.attempts[-1]['error']}"
    return None


async def _analyse(
    prepared: _Prepared, answer: _Answer, tables: list[TableInfo], emit: Emit, user: User
) -> None:
    await emit(Event("phase", {"phase": Phase.ANALYSING}))
    started = time.perf_counter()
    context = QuestionContext(
        question=prepared.question.content,
        dialect=prepared.connection.dialect,
        tables=tables,
        history=prepared.history,
        sql=answer.sql,
        columns=answer.columns,
        rows=answer.rows[:ANALYSIS_ROWS],
        row_count=answer.row_count or 0,
    )
    prompt = prompt_for_analysis(context)
    reply = await _call_model(prepared, answer, prompt, emit, "analysis_token", Purpose.ANALYSIS, user)
    answer.content = _without_code_blocks(reply)
    answer.chart = chart_for_result(answer.columns, answer.rows, chart_spec_extract(reply))
    answer.timings["analysis_ms"] = _ms(started)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


ANSWER_LOCK_SECONDS = 10 * 60


@functools.cache
def _lock_cache() -> BaseCache:
    """The answer locks' cache client, one per process. `django.core.cache.cache` is an object per
    async context, so each lock taken through it on the pipeline's threads built a new client and
    opened a new Redis connection: most of what taking the lock cost."""
    return caches.create_connection(DEFAULT_CACHE_ALIAS)


def _lock_key(session: ChatSession) -> str:
    return f"datamind:chat:answering:{session.pk}"


def _answer_lock_take(session: ChatSession) -> bool:
    """One answer at a time per chat, across tabs, doors and processes (the cache is shared).

    The lock expires on its own, so a process killed mid-answer frees the chat after a while.
    A cache outage must not stop people asking: then there is no lock at all.
    """
    try:
        return bool(_lock_cache().add(_lock_key(session), 1, timeout=ANSWER_LOCK_SECONDS))
    except Exception as exc:
        logger.warning("answer_lock_unavailable", error=str(exc))
        return True


def _answer_lock_release(session: ChatSession) -> None:
    try:
        _lock_cache().delete(_lock_key(session))
    except Exception as exc:
        logger.warning("answer_lock_unavailable", error=str(exc))


async def answer_question(
    *, session: ChatSession, user: User, text: str, emit: Emit = emit_nothing
) -> ChatMessage:
    """Answer one question in a session; every door calls this. Raises ValidationError for a
    malformed question (nothing is saved); every other failure becomes part of the answer."""
    text = question_clean(text)
    started = time.perf_counter()
    preparing = asyncio.ensure_future(_off_loop(_prepare_locked)(session, text, user))
    try:
        prepared = await asyncio.shield(preparing)
    except asyncio.CancelledError:
        # Stopped (the socket closed) while the question was being saved: the thread goes on all
        # the same, and what it takes (the chat's lock, the first call's budget) would stay taken
        # until it expires. Once it is done, the question gets a stopped answer, as it would a
        # moment later, which frees the chat.
        preparing.add_done_callback(functools.partial(_abandon, session=session, user=user, started=started))
        raise
    if prepared is None:
        raise ValidationError("An answer is already being written in this chat. Wait for it, or stop it.")
    answered: list[ChatMessage] = []
    try:
        await _answer_question(session, prepared, user=user, emit=emit, started=started, answered=answered)
    finally:
        if prepared.first_call is not None and prepared.first_call.reservation is not None:
            # Stopped before the model was asked: give its hold back.
            await asyncio.shield(_off_loop(budget_release)(reservation=prepared.first_call.reservation))
        if not answered:
            # Saving the answer frees the chat; it was not saved, so free it here.
            await _off_loop(_answer_lock_release)(session)
        else:
            # After the chat is free, so a question sent on seeing this is not refused.
            await emit(Event("done", {"message": answered[0]}))
    return answered[0]


_ABANDONED: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


def _abandon(
    preparing: "asyncio.Future[_Prepared | None]", *, session: ChatSession, user: User, started: float
) -> None:
    if preparing.cancelled() or preparing.exception() is not None or (prepared := preparing.result()) is None:
        return
    task = asyncio.ensure_future(_abandoned_answer_save(session, prepared, user, started))
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)


async def _abandoned_answer_save(
    session: ChatSession, prepared: _Prepared, user: User, started: float
) -> None:
    if prepared.first_call is not None and prepared.first_call.reservation is not None:
        await _off_loop(budget_release)(reservation=prepared.first_call.reservation)
    await _finish(session, prepared, _Answer(status=MessageStatus.CANCELLED, error="Stopped."), user, started)


async def _answer_question(
    session: ChatSession,
    prepared: _Prepared,
    *,
    user: User,
    emit: Emit,
    started: float,
    answered: list[ChatMessage],
) -> None:
    """Answer and save the answer, also when stopped, into `answered`."""
    answer = _Answer()
    tables = _tables_for(prepared, answer)
    # The question appears with the tables it will use and its first phase: one fragment, so one
    # WebSocket frame where there were four, each a cost on the event loop every chat shares.
    await emit(
        Event(
            "question",
            {
                "message": prepared.question,
                "tables": answer.tables_used,
                "phase": Phase.WRITING if tables else "",
            },
        )
    )
    try:
        await _answer(prepared, answer, tables, emit, user)
    except asyncio.CancelledError:
        answer.status = MessageStatus.CANCELLED
        answer.error = "Stopped."
        answered.append(await asyncio.shield(_finish(session, prepared, answer, user, started)))
        raise
    answered.append(await _finish(session, prepared, answer, user, started))


def _tables_for(prepared: _Prepared, answer: _Answer) -> list[TableInfo]:
    """The catalogue's tables the question needs (none without a connection or a catalogue), as
    found with the question (see _first_call_hold)."""
    if prepared.context_ms is None:
        return []
    answer.tables_used = [t.qualified_name for t in prepared.linked]
    answer.timings["context_ms"] = prepared.context_ms
    return prepared.linked


async def _answer(
    prepared: _Prepared, answer: _Answer, tables: list[TableInfo], emit: Emit, user: User
) -> None:
    if prepared.connection is None:
        answer.status = MessageStatus.ERROR
        answer.error = "This chat's connection was deleted. Start a new chat with another connection."
        return
    if not prepared.tables:
        answer.status = MessageStatus.NO_SQL
        answer.content = (
            "I don't know this database's tables yet: its schema catalogue is empty. "
            "Ask an admin to refresh the schema on the connection's page, then ask again."
        )
        return
    try:
        executed = await _write_sql(prepared, answer, tables, emit, user)
        if executed is None:
            return
        result = executed.result
        answer.columns = [{"name": c.name, "type": c.type} for c in result.columns]
        answer.rows = [list(row) for row in result.rows[:PREVIEW_ROWS]]
        answer.row_count = result.row_count
        answer.truncated = result.truncated
        await emit(Event("result", {"columns": answer.columns, "row_count": answer.row_count}))
        await _analyse(prepared, answer, tables, emit, user)
    except BudgetExhausted as exc:
        answer.status = MessageStatus.REFUSED
        answer.content = exc.detail
        await emit(Event("token", {"text": exc.detail}))
    except ProviderError as exc:
        logger.warning("llm_failed", error=exc.detail)
        answer.status = MessageStatus.ERROR
        answer.error = f"The language model failed: {exc.detail}"


async def _finish(
    session: ChatSession, prepared: _Prepared, answer: _Answer, user: User, started: float
) -> ChatMessage:
    answer.timings["total_ms"] = _ms(started)
    return await _off_loop(_save_answer_and_unlock)(session, prepared, answer, user)


def _save_answer_and_unlock(
    session: ChatSession, prepared: _Prepared, answer: _Answer, user: User
) -> ChatMessage:
    message = _save_answer(session, prepared, answer, user)
    _answer_lock_release(session)
    return message


@transaction.atomic
def _save_answer(session: ChatSession, prepared: _Prepared, answer: _Answer, user: User) -> ChatMessage:
    provider = prepared.provider
    message = ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=answer.status,
        content=answer.content,
        explanation=answer.explanation,
        sql=answer.sql,
        attempts=answer.attempts,
        tables_used=answer.tables_used,
        columns=answer.columns,
        rows=answer.rows,
        row_count=answer.row_count,
        truncated=answer.truncated,
        chart=answer.chart,
        provider=provider.name,
        model=provider.model,
        input_tokens=sum(u.input_tokens for _, u in answer.calls),
        output_tokens=sum(u.output_tokens for _, u in answer.calls),
        timings=answer.timings,
        error=answer.error,
    )
    UsageRecord.objects.filter(pk__in=answer.usage_record_ids).update(message=message)
    ChatSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
    return message
