"""The small interface every language-model provider implements.

A provider streams text for a `Prompt` and reports the tokens it used. The prompt carries both
the rendered text (for real models) and the structured context it was rendered from, so the
built-in offline engine can answer without parsing our own prompt back.
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

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
