"""The small interface every language-model provider implements.

A provider streams text for a `Prompt` and reports the tokens it used. The prompt carries both
the rendered text (for real models) and the structured context it was rendered from, so the
built-in offline engine can answer without parsing our own prompt back.
"""

import asyncio
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from apps.connections.engines.base import TableInfo
from datamind.lib.exceptions import DataMindError

# The SDK retries connection errors, 429 and 5xx (honouring retry-after) this many times before
# an error reaches us; more would keep a user watching an empty answer for too long.
MAX_RETRIES = 1
CONNECT_TIMEOUT = 10.0
MID_WAY = "The model stopped answering mid-way. Try again."
# Provider error messages are quoted to users up to this length, never as raw bodies.
REASON_LIMIT = 300


class ProviderError(DataMindError):
    """The language model could not answer."""

    code = "llm_error"
    status = 502


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Turn:
    """A previous question and what answered it, for follow-ups."""

    question: str
    sql: str = ""
    columns: list[str] = field(default_factory=list)
    row_count: int | None = None
    analysis: str = ""


@dataclass
class QuestionContext:
    """What the prompt was built from."""

    question: str
    dialect: str
    tables: list[TableInfo]
    history: list[Turn] = field(default_factory=list)
    # For the analysis task: the SQL that ran and a preview of its result.
    sql: str = ""
    columns: list[dict[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = 0
    # For a repair: the failed attempts so far, [{sql, error}].
    attempts: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Prompt:
    task: Literal["sql", "analysis"]
    system: str
    messages: list[dict[str, str]]
    context: QuestionContext
    max_tokens: int = 1500


class Provider(ABC):
    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, *, model: str = "", api_key: str = "", base_url: str = "") -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = base_url
        self.usage = Usage()

    @abstractmethod
    def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        """Yield text as the model writes it; set `self.usage` from the provider's own report.
        Closing the iterator (aclose) cancels the request. Raises ProviderError."""

    async def test(self) -> str:
        """A tiny request proving the key and model work; returns a short description."""
        return f"{self.label} is ready."


# SDK clients, kept per event loop ----------------------------------------------------------------


class _Client(Protocol):
    def is_closed(self) -> bool: ...

    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Client)

# Each running loop's clients by their settings. Building an SDK client costs tens of milliseconds
# of CPU on the event loop (its HTTP transport loads the certificate authorities into a new SSL
# context), and a fresh client opens a fresh connection for every answer. But a client belongs to
# the loop it was first used on: its pooled connections are that loop's sockets, and on another
# loop they fail ("Could not reach Anthropic"). The sync doors run the pipeline through
# async_to_sync, which outside an ASGI server runs each call on a new loop and closes it afterwards,
# so clients are keyed by the loop object itself, never by thread or id(), and closed with it.
_LOOP_CLIENTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Any]]" = (
    weakref.WeakKeyDictionary()
)
# The watcher tasks (asyncio keeps only weak references to tasks).
_WATCHERS: set[asyncio.Task[None]] = set()


def loop_client(key: Hashable, build: Callable[[], ClientT]) -> ClientT:
    """The running loop's client for `key` (everything the client is built from), built on first use.

    The caller must not close it: the loop's clients are closed when the loop winds down."""
    loop = asyncio.get_running_loop()
    clients = _LOOP_CLIENTS.get(loop)
    if clients is None:
        _forget_closed_loops()
        clients = _LOOP_CLIENTS[loop] = {}
        watcher = loop.create_task(_close_with_loop(loop, clients), name="datamind-llm-clients")
        _WATCHERS.add(watcher)
        watcher.add_done_callback(_WATCHERS.discard)
    client = clients.get(key)
    if client is None or client.is_closed():
        client = clients[key] = build()
    return client


async def _close_with_loop(loop: asyncio.AbstractEventLoop, clients: dict[Hashable, Any]) -> None:
    """Wait for the loop to wind down, then close its clients: asyncio.run (which async_to_sync
    uses), asyncio.Runner and pytest-asyncio cancel the tasks still pending before they close a
    loop, and this task is one of them."""
    try:
        await loop.create_future()
    finally:
        if _LOOP_CLIENTS.get(loop) is clients:
            del _LOOP_CLIENTS[loop]
        for client in clients.values():
            await client.close()


def _forget_closed_loops() -> None:
    """Drop the clients of loops closed without cancelling their tasks (their sockets are closed
    when the clients are collected): the cache never hands them out, and must not keep them."""
    for loop in [loop for loop in list(_LOOP_CLIENTS.keys()) if loop.is_closed()]:
        _LOOP_CLIENTS.pop(loop, None)
