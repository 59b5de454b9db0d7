"""The built-in offline engine: answers common analytic questions from the schema catalogue alone.

No key, no network, no model: the question is read by a deterministic interpreter (measure,
groupings, time grain, filters, top-N, follow-ups), planned along the catalogue's foreign keys
and rendered with sqlglot in the connection's dialect. Questions beyond it get an honest answer
without SQL and a few examples it can answer on this catalogue. Usage is always zero tokens.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import date

import sqlglot

from apps.chat.providers import register
from apps.chat.providers.base import Prompt, Provider, QuestionContext, Usage
from apps.chat.providers.builtin.catalogue import Catalogue
from apps.chat.providers.builtin.interpreter import Unanswerable, interpret
from apps.chat.providers.builtin.narrator import narrate
from apps.chat.providers.builtin.sqlgen import normalise_dialect, render_sql
from apps.chat.providers.builtin.suggestions import suggested_questions

__all__ = ["BuiltinProvider", "answer", "suggested_questions"]

CAPABILITIES = (
    "Offline I can total, count, average or take the minimum or maximum of one column, grouped by up "
    "to two columns or by day, week, month, quarter or year, filtered by known values and dates, "
    "with top-N lists."
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _examples(catalogue: Catalogue) -> str:
    examples = suggested_questions([t.info for t in catalogue.tables], limit=3)
    if not examples:
        return ""
    quoted = [f"“{q}”" for q in examples]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" I can answer questions like {listed}."


def _same_sql(left: str, right: str, dialect: str) -> bool:
    try:
        return sqlglot.transpile(left, read=dialect)[0] == sqlglot.transpile(right, read=dialect)[0]
    except Exception:  # an unparsable earlier attempt is simply not the same query
        return left.strip() == right.strip()


def answer(context: QuestionContext, *, today: date | None = None) -> list[str]:
    """The reply to a "sql" prompt, in the chunks it is streamed in: the reading of the question,
    then the SQL in a fenced block; or, beyond the engine, an explanation without SQL."""
    catalogue = Catalogue(context.tables)
    try:
        dialect = normalise_dialect(context.dialect)
        plan = interpret(context.question, [], history=context.history, today=today, catalogue=catalogue)
        sql = render_sql(plan, dialect)
    except Unanswerable as reason:
        return [f"{reason} {CAPABILITIES}{_examples(catalogue)}"]
    except ValueError as error:
        return [f"I can't write SQL for this connection: {error}"]
    for attempt in context.attempts:
        if _same_sql(attempt.get("sql", ""), sql, dialect):
            error = attempt.get("error", "").strip() or "an error"
            return [
                f"The query I wrote failed ({error}) and I can't repair SQL offline. "
                "Try naming the table or column you mean, or ask with a language-model provider."
            ]
    chunks = [sentence + " " for sentence in _SENTENCE_END.split(plan.explanation) if sentence]
    chunks.append(f"\n\n```sql\n{sql}\n```\n")
    return chunks


@register
class BuiltinProvider(Provider):
    """Deterministic and offline: the same prompt always gets the same reply, for no tokens."""

    name = "builtin"
    label = "Built-in (offline)"

    def __init__(
        self, *, model: str = "", api_key: str = "", base_url: str = "", today: date | None = None
    ) -> None:
        super().__init__(model=model, api_key=api_key, base_url=base_url)
        # Only tests and replays fix `today`; otherwise relative dates stay CURRENT_DATE in SQL.
        self.today = today

    async def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        self.usage = Usage()
        # Reading a question over a large catalogue takes a moment of CPU: off the event loop.
        if prompt.task == "analysis":
            text = await asyncio.to_thread(narrate, prompt.context)
            chunks = [s + " " for s in _SENTENCE_END.split(text) if s]
            chunks[-1] = chunks[-1].rstrip()
        else:
            chunks = await asyncio.to_thread(answer, prompt.context, today=self.today)
        for chunk in chunks:
            yield chunk

    async def test(self) -> str:
        return f"{self.label} is ready: it needs no key and answers from the schema catalogue."
