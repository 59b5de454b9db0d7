"""The chat path, measured: schema-linking recall on Spider, the time to build a prompt's context,
and the latency DataMind adds to a streamed answer.

    .venv/bin/python bench/chat.py            # about two minutes
    .venv/bin/python bench/chat.py --quick    # fewer timed questions, for a smoke run
    .venv/bin/python bench/chat.py --pool 0   # a new Postgres connection per database trip

Sections 1 and 2 need no database and no Django setup: the context functions are pure. Section 3
sets up (and always removes) its own scratch Postgres database, Redis db 5 and warehouse folder.

1. Schema-linking recall. The 166 schemas of Spider's `tables.json` (read from
   ../shared/data/spider beside the project) become ONE catalogue of ~900 tables, each Spider
   database a schema. For every dev question not in `dev_exclusions.json`, `schema_link` picks
   at most 25 tables without being told the question's database, and the question counts as
   recalled when every table of its gold SQL (sqlglot, sqlite dialect) is among them. The same
   run scores two baselines: the same index without expansion (plain BM25 on the question's
   words: no synonyms, abbreviations, history, foreign keys, schema or bridges), and plain
   table-name matching. An extra line gives the recall when the dev databases' tables carry the
   sample values the SQLite connector records (the other 146 databases have no data, so this
   favours the right tables and is not the headline).
2. Context-building time. A generated catalogue of 2,000 tables (~10 columns each, foreign keys,
   comments, sample values) in 20 schemas; per question, `schema_link` (the index cached under a
   key such as (connection id, catalogue version)) plus `schema_render`; p50 and p95 over
   generated questions.
3. Streaming latency. One real daphne process serves DataMind, with a scratch Postgres database
   (migrated here) reached through a pool of 8 connections as deploy/ gives a web process (`--pool`),
   Redis db 5 for the channel layer and cache, an org whose DuckDB connection
   has a fresh catalogue, and one analyst per chat logged in through a real session cookie. The
   language model is the FakeLLMServer in this process (datamind/lib/fake_llm.py), found by the
   SDK through ANTHROPIC_BASE_URL, streaming a fixed SQL reply in 20 chunks 20 ms apart and a
   short analysis. A WebSocket client sends questions as htmx's ws-send does and times, per
   question, the send to the first token fragment on the socket. DataMind's added latency is that
   time minus the fake's own time to first chunk for the same request (from the moment it has
   read the request to the moment it has written the first chunk, both on this process's clock),
   so it covers everything of ours: the consumer, the database work, building the provider, the
   SDK and its HTTP request, rendering and sending the fragment. Measured for questions one
   after another on one chat, then for 50 chats asking at the same moment (a few rounds), then
   for 50 chats in use as people use them (each asks, reads the answer for READING_SECONDS at
   random, asks again; their first questions spread over one such pause), with the questions a
   second this makes and how busy the machine was; the first question after daphne starts is
   shown apart. The anthropic SDK alone against the fake
   gives the part of the overhead that any client of the API pays.

Every figure is printed with its goal and PASS or MISS; the verdicts are information: the exit
status never depends on them.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlglot  # noqa: E402
from _machine import busy_share, machine_ticks  # noqa: E402
from sqlglot import exp  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.typing import Origin  # noqa: E402

from apps.chat.services.context import SchemaIndex, schema_link, schema_render  # noqa: E402
from apps.connections.engines.base import ColumnInfo, TableInfo  # noqa: E402
from datamind.lib.fake_llm import Reply  # noqa: E402

SPIDER = ROOT.parent / "shared" / "data" / "spider"
MAX_TABLES = 25
RECALL_GOAL = 0.95
CONTEXT_GOAL_MS = 100.0


@dataclass
class Line:
    measure: str
    ours: str = ""
    reference: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""


@dataclass
class Sizes:
    timed_questions: int
    catalogue_tables: int
    streamed_questions: int
    concurrent_rounds: int
    conversing_seconds: float


FULL = Sizes(
    timed_questions=500,
    catalogue_tables=2_000,
    streamed_questions=30,
    concurrent_rounds=3,
    conversing_seconds=60,
)
QUICK = replace(FULL, timed_questions=100, streamed_questions=10, concurrent_rounds=1, conversing_seconds=15)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table_print(lines: list[Line]) -> None:
    headers = Line("measure", "ours", "reference", "ratio", "goal", "")
    columns = ("measure", "ours", "reference", "ratio", "goal", "verdict")
    widths = [max(len(getattr(line, c)) for line in [headers, *lines]) for c in columns]
    for i, line in enumerate([headers, *lines]):
        print("  ".join(getattr(line, c).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# 1. Schema-linking recall on Spider ------------------------------------------------------------


def spider_catalogue(path: Path) -> list[TableInfo]:
    """Every database of tables.json as a schema of one shared catalogue, in catalogue order."""
    tables: list[TableInfo] = []
    for database in json.loads(path.read_text()):
        db = database["db_id"]
        names = database["table_names_original"]
        infos = [TableInfo(schema=db, name=name) for name in names]
        keys: set[int] = set()
        for key in database["primary_keys"]:
            keys.update(key if isinstance(key, list) else [key])
        references: dict[int, str] = {}
        columns = database["column_names_original"]
        for source, target in database["foreign_keys"]:
            table_index, column = columns[target]
            references[source] = f"{db}.{names[table_index]}.{column}"
        for n, ((table_index, column), data_type) in enumerate(
            zip(columns, database["column_types"], strict=True)
        ):
            if table_index < 0:
                continue
            info = infos[table_index]
            info.columns.append(
                ColumnInfo(
                    name=column,
                    position=len(info.columns) + 1,
                    data_type=data_type,
                    nullable=n not in keys,
                    is_primary_key=n in keys,
                    references=references.get(n, ""),
                )
            )
        tables += infos
    return sorted(tables, key=lambda t: (t.schema, t.name))


def gold_tables(sql: str, db: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read="sqlite")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {f"{db}.{t.name.lower()}" for t in tree.find_all(exp.Table) if t.name.lower() not in ctes}


def spider_questions(folder: Path) -> list[tuple[str, set[str]]]:
    excluded: set[int] = set()
    for indices in json.loads((folder / "dev_exclusions.json").read_text()).values():
        excluded.update(indices)
    questions = []
    for n, item in enumerate(json.loads((folder / "dev.json").read_text())):
        if n not in excluded:
            questions.append((item["question"], gold_tables(item["query"], item["db_id"])))
    return questions


def with_connector_samples(catalogue: list[TableInfo], folder: Path) -> list[TableInfo]:
    """The catalogue with the sample values the SQLite connector records for the dev databases
    (the only ones with data): text columns of few distinct values, as in a real catalogue."""
    from apps.connections.engines.base import ConnectionSpec
    from apps.connections.engines.sqlite import SQLiteEngine

    samples: dict[tuple[str, str, str], list[str]] = {}
    for path in sorted(folder.glob("*/*.sqlite")):
        spec = ConnectionSpec(engine="sqlite", file_path=path)
        for info in SQLiteEngine().introspect(spec, excluded_columns=frozenset()):
            for column in info.columns:
                samples[(path.stem, info.name.lower(), column.name.lower())] = column.samples
    return [
        replace(
            table,
            columns=[
                replace(c, samples=samples.get((table.schema, table.name.lower(), c.name.lower()), []))
                for c in table.columns
            ],
        )
        for table in catalogue
    ]


def name_matching(tables: list[TableInfo], question: str) -> list[TableInfo]:
    """The naive linker: tables whose name's words all appear in the question (plural 's' ignored)."""
    words = {w.lower().rstrip("s") for w in question.replace("?", " ").replace(",", " ").split()}
    scored = []
    for n, table in enumerate(tables):
        parts = [p.rstrip("s") for p in table.name.lower().replace("_", " ").split()]
        hits = sum(p in words for p in parts)
        if hits:
            scored.append((-hits / len(parts), n, table))
    return [table for _, _, table in sorted(scored)[:MAX_TABLES]]


def bench_spider_recall() -> list[Line]:
    if not (SPIDER / "tables.json").exists():
        return [Line("Spider schema linking", f"skipped: no data set in {SPIDER}")]
    catalogue = spider_catalogue(SPIDER / "tables.json")
    questions = spider_questions(SPIDER)
    index = SchemaIndex.from_tables(catalogue)

    def recall(link: Callable[[str], list[TableInfo]]) -> tuple[float, float]:
        hits = 0
        chosen = 0
        for question, gold in questions:
            picked = {f"{t.schema}.{t.name.lower()}" for t in link(question)}
            hits += gold <= picked
            chosen += len(picked)
        return hits / len(questions), chosen / len(questions)

    started = time.perf_counter()
    ours, ours_tables = recall(lambda q: index.link(q, max_tables=MAX_TABLES))
    per_question_ms = (time.perf_counter() - started) * 1000 / len(questions)
    plain, plain_tables = recall(lambda q: index.link(q, max_tables=MAX_TABLES, expand=False))
    ours_10, _ = recall(lambda q: index.link(q, max_tables=10))
    plain_10, _ = recall(lambda q: index.link(q, max_tables=10, expand=False))
    names, names_tables = recall(lambda q: name_matching(catalogue, q))
    sampled = SchemaIndex.from_tables(with_connector_samples(catalogue, SPIDER / "database"))
    with_samples, _ = recall(lambda q: sampled.link(q, max_tables=MAX_TABLES))
    schemas = len({t.schema for t in catalogue})
    title = f"Spider dev: {len(questions)} questions, {len(catalogue)} tables in {schemas} schemas"
    return [
        Line(
            f"{title}: recall (all gold tables in context)",
            f"{ours:.3f}",
            f"{plain:.3f} (BM25 only)",
            f"{ours / plain:.2f}x" if plain else "",
            f">= {RECALL_GOAL}",
            verdict(ours >= RECALL_GOAL),
        ),
        Line(
            "  same, against plain table-name matching", f"{ours:.3f}", f"{names:.3f}", f"{ours / names:.2f}x"
        ),
        Line(
            "  recall with at most 10 tables",
            f"{ours_10:.3f}",
            f"{plain_10:.3f} (BM25 only)",
            f"{ours_10 / plain_10:.2f}x" if plain_10 else "",
        ),
        Line(
            "  tables chosen per question (average)",
            f"{ours_tables:.1f}",
            f"{plain_tables:.1f} / {names_tables:.1f}",
            goal=f"<= {MAX_TABLES}",
            verdict=verdict(ours_tables <= MAX_TABLES),
        ),
        Line("  link time per question on this catalogue", f"{per_question_ms:.2f} ms"),
        Line(
            "  with the SQLite connector's sample values (dev databases only, so favoured)",
            f"{with_samples:.3f}",
        ),
    ]


# 2. Context-building time on a 2,000-table catalogue -------------------------------------------

SCHEMAS = (
    "sales", "crm", "hr", "finance", "inventory", "marketing", "support", "logistics", "web", "billing",
    "procurement", "manufacturing", "analytics", "payments", "catalog", "shipping", "legal", "it",
    "fleet", "events",
)  # fmt: skip
ENTITIES = (
    "customer", "order", "order_line", "invoice", "payment", "product", "supplier", "shipment",
    "employee", "department", "store", "region", "campaign", "lead", "opportunity", "ticket",
    "warehouse", "stock_level", "contract", "subscription", "refund", "vehicle", "driver", "route",
    "account", "budget", "expense", "asset", "vendor", "purchase_order", "price_list", "promotion",
    "session", "page_view", "device", "event", "survey", "response", "claim", "policy",
)  # fmt: skip
QUALIFIERS = (
    "",
    "daily",
    "monthly",
    "history",
    "archive",
    "staging",
    "snapshot",
    "summary",
    "detail",
    "audit",
)
MEASURES = ("amount", "quantity", "total_price", "discount", "tax", "cost", "revenue", "margin", "duration_s")
ATTRIBUTES = ("status", "channel", "country", "city", "segment", "category", "currency", "priority", "source")
SAMPLES = {
    "status": ["open", "closed", "pending"],
    "channel": ["web", "store", "partner"],
    "country": ["France", "Germany", "Japan"],
    "city": ["Lyon", "Osaka", "Denver"],
    "segment": ["Enterprise", "SMB", "Consumer"],
    "category": ["Hardware", "Software", "Services"],
    "currency": ["EUR", "USD", "JPY"],
    "priority": ["high", "low", "medium"],
    "source": ["organic", "paid", "referral"],
}


def generated_catalogue(count: int, rng: random.Random) -> list[TableInfo]:
    """Realistic-looking tables: `<entity>[_<qualifier>]` in 20 schemas, ~10 columns each,
    one or two foreign keys to tables defined earlier, comments and sample values."""
    names: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(names) < count:
        schema = rng.choice(SCHEMAS)
        entity = rng.choice(ENTITIES)
        qualifier = rng.choice(QUALIFIERS)
        name = f"{entity}_{qualifier}" if qualifier else entity
        if (schema, name) in seen:
            name = f"{name}_{len(names)}"
        seen.add((schema, name))
        names.append((schema, name))
    tables = []
    for n, (schema, name) in enumerate(names):
        columns = [ColumnInfo("id", 1, "bigint", nullable=False, is_primary_key=True)]
        for target in rng.sample(range(n), k=min(n, rng.choice((1, 2)))):
            t_schema, t_name = names[target]
            columns.append(
                ColumnInfo(f"{t_name}_id", len(columns) + 1, "bigint", references=f"{t_schema}.{t_name}.id")
            )
        columns.append(ColumnInfo("name", len(columns) + 1, "text", nullable=False))
        for measure in rng.sample(MEASURES, k=3):
            columns.append(
                ColumnInfo(measure, len(columns) + 1, "numeric(12,2)", comment=f"{measure} in EUR")
            )
        for attribute in rng.sample(ATTRIBUTES, k=2):
            columns.append(ColumnInfo(attribute, len(columns) + 1, "text", samples=SAMPLES[attribute]))
        columns.append(ColumnInfo("created_at", len(columns) + 1, "timestamp with time zone", nullable=False))
        tables.append(
            TableInfo(
                schema=schema,
                name=name,
                comment=f"{name.replace('_', ' ').capitalize()} records of {schema}",
                row_estimate=rng.randint(0, 5_000_000),
                columns=columns,
            )
        )
    return tables


def generated_questions(count: int, rng: random.Random) -> list[str]:
    templates = (
        "What was the total {measure} by {attribute} last month?",
        "Top 10 {entity}s by {measure} in {sample}",
        "How many {entity}s per {attribute} were created in 2023?",
        "Average {measure} of {entity}s for each {other}",
        "Show the {measure} trend of {entity} {qualifier} by week",
        "Which {other} has the most {entity}s with status {sample}?",
    )
    questions = []
    for _ in range(count):
        attribute = rng.choice(ATTRIBUTES)
        questions.append(
            rng.choice(templates).format(
                measure=rng.choice(MEASURES).replace("_", " "),
                attribute=attribute,
                entity=rng.choice(ENTITIES).replace("_", " "),
                other=rng.choice(ENTITIES).replace("_", " "),
                qualifier=rng.choice(QUALIFIERS),
                sample=rng.choice(SAMPLES[attribute]),
            )
        )
    return questions


def bench_context_time(sizes: Sizes) -> list[Line]:
    rng = random.Random(20240601)
    catalogue = generated_catalogue(sizes.catalogue_tables, rng)
    questions = generated_questions(sizes.timed_questions, rng)
    columns = sum(len(t.columns) for t in catalogue)
    key = ("bench", len(catalogue))

    started = time.perf_counter()
    schema_link(catalogue, "warm up", cache_key=key)
    build_ms = (time.perf_counter() - started) * 1000

    timings: list[float] = []
    sizes_chosen: list[int] = []
    for question in questions:
        started = time.perf_counter()
        tables = schema_link(catalogue, question, cache_key=key)
        schema_render(tables, "postgres")
        timings.append((time.perf_counter() - started) * 1000)
        sizes_chosen.append(len(tables))
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    title = f"Context for {len(catalogue):,} tables / {columns:,} columns, {len(questions)} questions"
    goal = f"<= {CONTEXT_GOAL_MS:.0f} ms"
    return [
        Line(
            f"{title}: link + render p50", f"{p50:.1f} ms", goal=goal, verdict=verdict(p50 <= CONTEXT_GOAL_MS)
        ),
        Line("  link + render p95", f"{p95:.1f} ms", goal=goal, verdict=verdict(p95 <= CONTEXT_GOAL_MS)),
        Line("  tables chosen per question (average)", f"{statistics.mean(sizes_chosen):.1f}"),
        Line("  index build, once per catalogue version (cached)", f"{build_ms:.0f} ms"),
    ]


# 3. Streaming latency through one real daphne process ------------------------------------------

FIRST_TOKEN_GOAL_MS = 50.0
CONCURRENT_GOAL_MS = 250.0
CONCURRENT_CHATS = 50
PRODUCTION_WORKERS = 4  # uvicorn worker processes per web replica, as deploy/ runs them
# Production settings, as deploy/ runs them, but plain HTTP on loopback (nginx does TLS there).
PRODUCTION_MODE = {"DEBUG": "false", "SECURE_SSL_REDIRECT": "false", "SESSION_COOKIE_SECURE": "false"}
READING_SECONDS = (2.0, 8.0)
SQL_CHUNKS = 20
ANALYSIS_CHUNKS = 10
CHUNK_DELAY_S = 0.02
ANSWER_TIMEOUT_S = 60.0
BENCH_REDIS_URL = "redis://127.0.0.1:6379/5"
# redis-py 8 reads with a 5 s socket timeout by default, the very time channels_redis blocks on an
# idle channel, so with datamind.settings as they are every idle chat socket is closed (1011) after
# about 5 s. daphne runs with these settings on top, which give the channel layer a longer timeout
# (and change nothing once the settings give the hosts as dicts); Celery's URL takes no such option.
DAPHNE_SETTINGS = """
from datamind.settings import *  # noqa: F403

CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [  # noqa: F405
    {"address": host, "socket_timeout": 30} if isinstance(host, str) else host
    for host in CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]  # noqa: F405
]
"""
SHOP_FILE = "shop.duckdb"
SQL_REPLY = (
    "I'll total the sales by region.\n```sql\nSELECT r.name AS region, sum(s.amount) AS total "
    "FROM sales s JOIN regions r USING (region_id) GROUP BY r.name ORDER BY r.name\n```"
)
ANALYSIS_REPLY = "Europe sold 1,303, the Americas 1,301 and Asia 1,299: the three regions are level."
ANSWER_TEXT_MARK = "beforeend:#answer-text"
DONE_MARK = 'hx-swap-oob="outerHTML:#answer-pending"'


def chunked(text: str, count: int) -> list[str]:
    size = -(-len(text) // count)
    return [text[i : i + size] for i in range(0, len(text), size)]


class _WatchedChunks(list[str]):
    """A reply's chunks that report when the fake has written the first one: the fake's stream
    asks for the second chunk only after it has written and flushed the first."""

    def __init__(self, chunks: list[str], written: Callable[[], None]) -> None:
        super().__init__(chunks)
        self.written = written

    def __iter__(self) -> Iterator[str]:
        for n, chunk in enumerate(super().__iter__()):
            yield chunk
            if n == 0:
                self.written()


@dataclass
class _TimedReply(Reply):
    first_chunk_written: Callable[[], None] = lambda: None

    def pieces(self) -> list[str]:
        return _WatchedChunks(super().pieces(), self.first_chunk_written)


class FakeClock:
    """When the fake LLM received each request and wrote its first text chunk, on the bench's own
    clock (the fake runs in this process), keyed by the request's last user message: every
    question the bench asks is unique, so each socket's question finds its own request."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.first_chunk: dict[str, float] = {}

    def responder(self, body: dict[str, Any]) -> Reply:
        key = str((body.get("messages") or [{}])[-1].get("content"))
        self.arrived[key] = time.perf_counter()
        asks_for_sql = "writes SQL" in json.dumps(body.get("system", ""))
        text, count = (SQL_REPLY, SQL_CHUNKS) if asks_for_sql else (ANALYSIS_REPLY, ANALYSIS_CHUNKS)
        return _TimedReply(
            chunks=chunked(text, count),
            chunk_delay=CHUNK_DELAY_S,
            first_chunk_written=lambda: self.first_chunk.setdefault(key, time.perf_counter()),
        )

    def own_ms(self, key: str) -> float:
        """The fake's own time to first chunk for one request: request read to first chunk written."""
        return (self.first_chunk[key] - self.arrived[key]) * 1000


@dataclass
class Chat:
    session_id: int
    cookie: str


@dataclass
class Asked:
    question: str
    sent: float
    first_token: float | None
    finished: float
    complete: bool


@dataclass
class Latencies:
    """Per question, in ms: what the user waits for the first token (`raw`), the part of it that is
    DataMind's own (`added`: raw minus the fake's own time to first chunk), and where it goes."""

    raw: list[float] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    to_request: list[float] = field(default_factory=list)
    to_socket: list[float] = field(default_factory=list)
    fake: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    incomplete: int = 0

    @classmethod
    def of(cls, asked: list[Asked], clock: FakeClock) -> "Latencies":
        latencies = cls()
        for one in asked:
            if one.first_token is None or not one.complete or one.question not in clock.first_chunk:
                latencies.incomplete += 1
                continue
            raw = (one.first_token - one.sent) * 1000
            fake = clock.own_ms(one.question)
            latencies.raw.append(raw)
            latencies.added.append(raw - fake)
            latencies.fake.append(fake)
            latencies.to_request.append((clock.arrived[one.question] - one.sent) * 1000)
            latencies.to_socket.append((one.first_token - clock.first_chunk[one.question]) * 1000)
            latencies.total.append((one.finished - one.sent) * 1000)
        return latencies


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far, from Linux's /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def warehouse_write(root: Path) -> None:
    """The tests' small DuckDB warehouse (regions and their sales), as apps/chat/tests/conftest.py."""
    import duckdb

    with duckdb.connect(str(root / SHOP_FILE)) as db:
        db.execute("CREATE TABLE regions (region_id INTEGER PRIMARY KEY, name VARCHAR)")
        db.execute("COMMENT ON TABLE regions IS 'Sales regions'")
        db.execute("INSERT INTO regions VALUES (1, 'Europe'), (2, 'Asia'), (3, 'Americas')")
        db.execute(
            "CREATE TABLE sales (sale_id INTEGER PRIMARY KEY, region_id INTEGER REFERENCES regions, "
            "day DATE, amount DECIMAL(10, 2))"
        )
        db.execute(
            "INSERT INTO sales SELECT i, 1 + i % 3, DATE '2026-01-01' + INTERVAL (i % 90) DAY, 10 + i % 7 "
            "FROM range(1, 301) t(i)"
        )


def world_create(chats: int) -> list[Chat]:
    """Migrate the scratch database, then an org, its DuckDB connection with a fresh catalogue,
    and `chats` analysts with a chat each, logged in through a real session row."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core.management import call_command

    from apps.accounts.models import Organization, Plan, Role, User
    from apps.chat.models import ChatSession
    from apps.connections.models import Connection, Engine
    from apps.connections.services.catalogue import catalogue_refresh

    call_command("migrate", interactive=False, verbosity=0)
    # The largest plan: the free plan's monthly tokens run out within one full run, after which
    # every answer is the budget's refusal.
    org = Organization.objects.create(name="Bench", slug="bench", plan=Plan.ENTERPRISE)
    admin = User.objects.create_user("admin@bench.test", org=org, role=Role.ADMIN)
    warehouse_write(settings.CONNECTIONS_FILE_ROOT)
    connection = Connection.objects.create(
        org=org, name="Shop", engine=Engine.DUCKDB, database=SHOP_FILE, created_by=admin
    )
    connection = catalogue_refresh(connection_id=connection.pk)
    store = import_module(settings.SESSION_ENGINE).SessionStore
    made = []
    for n in range(chats):
        user = User.objects.create_user(f"analyst{n}@bench.test", org=org, role=Role.ANALYST)
        chat = ChatSession.objects.create(org=org, user=user, connection=connection)
        login = store()
        login[SESSION_KEY] = str(user.pk)
        login[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        login[HASH_SESSION_KEY] = user.get_session_auth_hash()
        login.create()
        made.append(Chat(session_id=chat.pk, cookie=f"{settings.SESSION_COOKIE_NAME}={login.session_key}"))
    return made


@contextlib.contextmanager
def scratch_world(tmp: Path, chats: int, pool: int) -> Iterator[tuple[dict[str, str], list[Chat]]]:
    """A scratch Postgres database, Redis db and warehouse folder for DataMind, set up in this
    process (Django configured on them) and always removed; yields daphne's environment."""
    import environ
    import psycopg
    import redis

    server = environ.Env.db_url_config(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    admin_dsn = {
        "host": server.get("HOST") or "127.0.0.1",
        "port": int(server.get("PORT") or 5432),
        "user": server.get("USER") or "postgres",
        "password": server.get("PASSWORD") or "",
        "dbname": "postgres",
        "autocommit": True,
    }
    name = f"datamind_bench_chat_{uuid.uuid4().hex[:8]}"
    warehouses = tmp / "warehouses"
    warehouses.mkdir()
    environment = {
        "DJANGO_SETTINGS_MODULE": "datamind.settings",
        "DEBUG": "true",
        "DATABASE_URL": (
            f"postgres://{admin_dsn['user']}:{admin_dsn['password']}@{admin_dsn['host']}:{admin_dsn['port']}/{name}"
        ),
        "REDIS_URL": BENCH_REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The settings force CONN_MAX_AGE=0, so without a pool every trip of the pipeline to its
        # database threads opens a new Postgres connection; web processes take theirs from a pool,
        # 8 as deploy/docker-compose.yml gives them (--pool 0: a new connection per trip, as
        # `make run` without the variable).
        "DATABASE_POOL_MAX_SIZE": str(pool),
        "CONNECTIONS_FILE_ROOT": str(warehouses),
        "DATAMIND_VAR_DIR": str(tmp / "var"),
    }
    from django.conf import settings

    if settings.configured:
        raise RuntimeError(
            "Django was configured before the streaming section could point it at its database."
        )
    # This process only sets up and measures: its own log lines would just interleave with the table.
    os.environ.update({**environment, "LOG_LEVEL": "WARNING"})
    with psycopg.connect(**admin_dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        import django

        django.setup()
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        yield environment, world_create(chats)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**admin_dsn) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


@contextlib.contextmanager
def server_running(environment: dict[str, str], log: Path, workers: int = 0) -> Iterator[tuple[int, int]]:
    """DataMind on a free port, healthy: one daphne process (`workers=0`, as `make run` serves it)
    or uvicorn with `workers` worker processes (as deploy/ serves it); stopped on the way out.
    Yields its port and the (main) process id."""
    port = free_port()
    (log.parent / "bench_chat_settings.py").write_text(DAPHNE_SETTINGS)
    # The fake must be the only model reachable: no key or provider choice of the caller's leaks in.
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "LLM_PROVIDER"))
    }
    if workers:
        command = [sys.executable, "-m", "uvicorn", "datamind.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--no-access-log"]  # fmt: skip
    else:
        command = [str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                   "datamind.asgi:application"]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={
                **inherited,
                **environment,
                "DJANGO_SETTINGS_MODULE": "bench_chat_settings",
                "PYTHONPATH": str(log.parent),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{Path(command[0]).name} did not become healthy: {tail[0][:120]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def chat_connect(port: int, chat: Chat) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}/ws/chat/{chat.session_id}/",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": chat.cookie},
        max_size=None,
    )


async def ask(ws: ClientConnection, question: str, start: asyncio.Event | None = None) -> Asked:
    """Send one question as htmx's ws-send does; time its first token and its finished answer."""
    payload = json.dumps({"question": question, "HEADERS": {"HX-Request": "true", "HX-Trigger": "ask"}})
    if start is not None:
        await start.wait()
    sent = time.perf_counter()
    await ws.send(payload)
    first_token = None
    async with asyncio.timeout(ANSWER_TIMEOUT_S):
        while True:
            frame = str(await ws.recv())
            now = time.perf_counter()
            if first_token is None and ANSWER_TEXT_MARK in frame:
                first_token = now
            if DONE_MARK in frame:
                return Asked(question, sent, first_token, now, complete="status-done" in frame)


async def sdk_first_chunk(url: str, clock: FakeClock, count: int, *, reuse: bool) -> list[float]:
    """The anthropic SDK alone against the fake: its time to the first text chunk minus the fake's
    own, with a new client per request (as the provider does) or one client reused."""
    import anthropic

    from datamind.lib.fake_llm import DEFAULT_API_KEY

    def client() -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=DEFAULT_API_KEY, base_url=url, max_retries=1)

    shared = client()
    overheads = []
    for n in range(count + 1):
        key = f"SDK baseline, reuse={reuse}, {n}"
        started = time.perf_counter()
        sdk = shared if reuse else client()
        first = None
        async with sdk.messages.stream(
            model="claude-sonnet-5-5", max_tokens=100, messages=[{"role": "user", "content": key}]
        ) as stream:
            async for event in stream:
                if first is None and event.type == "content_block_delta":
                    first = time.perf_counter()
        if sdk is not shared:
            await sdk.close()
        if n and first is not None:  # the first request pays for the connection pool warming up
            overheads.append((first - started) * 1000 - clock.own_ms(key))
    await shared.close()
    return overheads


@dataclass
class Conversing:
    """Chats in use: what they asked, the questions a second that made, the machine's busy share."""

    asked: list[Asked]
    per_second: float
    machine_busy: float | None


@dataclass
class StreamingRun:
    sdk_new: list[float]
    sdk_reused: list[float]
    cold: Asked
    sequential: list[Asked]
    concurrent: list[Asked]
    connect_ms: float
    cpu_ms: tuple[float | None, float | None]
    conversing: Conversing


def cpu_per_answer_ms(pid: int, before: float | None, answers: int) -> float | None:
    after = cpu_seconds(pid)
    return None if before is None or after is None else (after - before) * 1000 / answers


async def streaming_run(
    port: int, pid: int, url: str, clock: FakeClock, chats: list[Chat], sizes: Sizes
) -> StreamingRun:
    sdk_new = await sdk_first_chunk(url, clock, sizes.streamed_questions, reuse=False)
    sdk_reused = await sdk_first_chunk(url, clock, sizes.streamed_questions, reuse=True)
    first, others = chats[0], chats[1:]
    ws = await chat_connect(port, first)
    try:
        cold = await ask(ws, "total sales by region (first question after start)")
        cpu = cpu_seconds(pid)
        sequential = [
            await ask(ws, f"total sales by region (question {n})") for n in range(sizes.streamed_questions)
        ]
        sequential_cpu = cpu_per_answer_ms(pid, cpu, len(sequential))
    finally:
        await ws.close()
    started = time.perf_counter()
    sockets = await asyncio.gather(*(chat_connect(port, chat) for chat in others))
    connect_ms = (time.perf_counter() - started) * 1000
    cpu = cpu_seconds(pid)
    try:
        concurrent = await at_once_run(sockets, sizes.concurrent_rounds)
        cpu_ms = (sequential_cpu, cpu_per_answer_ms(pid, cpu, len(concurrent)))
        conversing, elapsed, busy = await conversing_run(sockets, sizes.conversing_seconds)
    finally:
        await asyncio.gather(*(s.close() for s in sockets))
    return StreamingRun(
        sdk_new, sdk_reused, cold, sequential, concurrent, connect_ms, cpu_ms,
        Conversing(conversing, len(conversing) / elapsed, busy),
    )  # fmt: skip


async def production_run(port: int, chats: list[Chat], sizes: Sizes) -> tuple[list[Asked], Conversing]:
    """The chats at once, then in use, against the production layout: their sockets spread over
    uvicorn's worker processes as the kernel hands out the connections."""
    sockets = await asyncio.gather(*(chat_connect(port, chat) for chat in chats))
    try:
        # Each worker's first question builds its model client: not what a warm process adds.
        await asyncio.gather(*(ask(ws, f"sales by region (warm-up {n})") for n, ws in enumerate(sockets)))
        label = "production, "
        concurrent = await at_once_run(sockets, sizes.concurrent_rounds, label)
        conversing, elapsed, busy = await conversing_run(sockets, sizes.conversing_seconds, label)
    finally:
        await asyncio.gather(*(s.close() for s in sockets))
    return concurrent, Conversing(conversing, len(conversing) / elapsed, busy)


async def at_once_run(sockets: list[ClientConnection], rounds: int, label: str = "") -> list[Asked]:
    """Every chat sends its question at the same moment, `rounds` times, half a second apart."""
    asked: list[Asked] = []
    for round_ in range(rounds):
        start = asyncio.Event()
        asking = [
            asyncio.create_task(ask(s, f"total sales by region ({label}chat {n}, round {round_})", start))
            for n, s in enumerate(sockets)
        ]
        await asyncio.sleep(0.1)
        start.set()
        asked += await asyncio.gather(*asking)
        await asyncio.sleep(0.5)
    return asked


async def conversing_run(
    sockets: list[ClientConnection], seconds: float, label: str = ""
) -> tuple[list[Asked], float, float | None]:
    """The chats in use as people use them: each asks, reads the answer for READING_SECONDS (at
    random), and asks again until `seconds` have passed; the first questions are spread over one
    pause. The questions asked, the seconds it took and the share of the machine's cores in use."""
    rng = random.Random(0)
    asked: list[Asked] = []
    deadline = time.perf_counter() + seconds

    async def converse(n: int, ws: ClientConnection) -> None:
        await asyncio.sleep(rng.uniform(0, READING_SECONDS[1]))
        turn = 0
        while time.perf_counter() < deadline:
            asked.append(await ask(ws, f"total sales by region ({label}chat {n}, turn {turn})"))
            turn += 1
            await asyncio.sleep(rng.uniform(*READING_SECONDS))

    busy_before = machine_ticks()
    started = time.perf_counter()
    await asyncio.gather(*(converse(n, ws) for n, ws in enumerate(sockets)))
    elapsed = time.perf_counter() - started
    return asked, elapsed, busy_share(busy_before, machine_ticks())


def bench_streaming(sizes: Sizes, pool: int) -> list[Line]:
    from datamind.lib import fake_llm
    from datamind.lib.fake_llm import DEFAULT_API_KEY, FakeLLMServer

    # The fake writes every SSE event as a small packet of its own; without TCP_NODELAY, on a
    # kept-alive connection they wait for the client's delayed ACK (about 25 ms here), a stall the
    # real API does not have and that would be charged to any client that reuses its connections.
    fake_llm._Handler.disable_nagle_algorithm = True
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory(prefix="datamind_bench_chat_") as folder,
        FakeLLMServer(default=clock.responder) as fake,
    ):
        tmp = Path(folder)
        with scratch_world(tmp, CONCURRENT_CHATS + 1, pool) as (environment, chats):
            environment = {
                **environment,
                "ANTHROPIC_BASE_URL": fake.url,
                "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
            }
            with server_running(environment, tmp / "daphne.log") as (port, pid):
                run = asyncio.run(streaming_run(port, pid, fake.url, clock, chats, sizes))
            with server_running(
                {**environment, **PRODUCTION_MODE}, tmp / "uvicorn.log", PRODUCTION_WORKERS
            ) as (port, _):
                production = asyncio.run(production_run(port, chats[1:], sizes))
    return streaming_lines(run, clock) + production_lines(production, clock)


def streaming_lines(run: StreamingRun, clock: FakeClock) -> list[Line]:
    sequential = Latencies.of(run.sequential, clock)
    concurrent = Latencies.of(run.concurrent, clock)
    cold = Latencies.of([run.cold], clock)
    if not sequential.added or not concurrent.added:
        raise RuntimeError(f"no complete answers ({sequential.incomplete} + {concurrent.incomplete} failed)")
    fake = f"fake's own {ms(statistics.median(sequential.fake))}"
    goal = f"<= {FIRST_TOKEN_GOAL_MS:.0f} ms"
    stream_ms = (SQL_CHUNKS + ANALYSIS_CHUNKS) * CHUNK_DELAY_S * 1000
    added_p50 = statistics.median(sequential.added)
    title = f"Streaming via one daphne, {len(run.sequential)} questions in turn"
    reading = f"{READING_SECONDS[0]:.0f}-{READING_SECONDS[1]:.0f} s"
    count = len(run.concurrent) // CONCURRENT_CHATS
    rounds = f"{count} round{'s' * (count != 1)}"
    lines = [
        Line(
            f"{title}: added latency to first token p50",
            ms(added_p50),
            fake,
            "",
            goal,
            verdict(added_p50 <= FIRST_TOKEN_GOAL_MS),
        ),
        Line("  added latency to first token p95", ms(percentile(sequential.added, 0.95))),
        Line("  send to first token on the socket p50", ms(statistics.median(sequential.raw)), fake),
        Line("    of which send to request at the model p50", ms(statistics.median(sequential.to_request))),
        Line(
            "    of which first chunk written to token on the socket p50",
            ms(statistics.median(sequential.to_socket)),
        ),
        Line(
            "  send to finished answer p50 (two model streams, query, save)",
            ms(statistics.median(sequential.total)),
            f"streams alone {stream_ms:.0f} ms",
        ),
        Line(
            "  the fake model's streams: SQL reply, analysis",
            f"{SQL_CHUNKS} and {ANALYSIS_CHUNKS} chunks, {CHUNK_DELAY_S * 1000:.0f} ms apart",
        ),
        Line(
            "  anthropic SDK alone, overhead to first chunk p50: new / reused client",
            f"{ms(statistics.median(run.sdk_new))} / {ms(statistics.median(run.sdk_reused))}",
        ),
        Line(
            "  first question after daphne started: added latency",
            ms(cold.added[0]) if cold.added else "incomplete",
        ),
        *first_token_lines(f"{CONCURRENT_CHATS} chats asking at once, {rounds}", concurrent),
        Line("    of which send to request at the model p95", ms(percentile(concurrent.to_request, 0.95))),
        Line(
            "    of which first chunk written to token on the socket p95",
            ms(percentile(concurrent.to_socket, 0.95)),
        ),
        Line(
            "  send to finished answer p50 / p95",
            f"{ms(statistics.median(concurrent.total))} / {ms(percentile(concurrent.total, 0.95))}",
            f"streams alone {stream_ms:.0f} ms",
        ),
        Line(f"  {CONCURRENT_CHATS} sockets connected and authenticated (all)", ms(run.connect_ms)),
        *conversing_lines(f"{CONCURRENT_CHATS} chats in use (answers read {reading})", run.conversing, clock),
        Line(
            "daphne's CPU time per answer: in turn / at once",
            " / ".join("n/a" if cpu is None else ms(cpu) for cpu in run.cpu_ms),
        ),
    ]
    if sequential.incomplete or concurrent.incomplete:
        lines.append(
            Line(
                "  answers that did not finish as expected",
                f"{sequential.incomplete + concurrent.incomplete}",
            )
        )
    return lines


def first_token_lines(title: str, latencies: Latencies) -> list[Line]:
    """Added latency to the first token of many chats: p50 (beside the fake's own), p95 against
    the goal for 50 concurrent chats, p99."""
    p95 = percentile(latencies.added, 0.95)
    return [
        Line(
            f"{title}: added latency to first token p50",
            ms(statistics.median(latencies.added)),
            f"fake's own {ms(statistics.median(latencies.fake))}",
        ),
        Line(
            "  added latency to first token p95",
            ms(p95),
            goal=f"<= {CONCURRENT_GOAL_MS:.0f} ms",
            verdict=verdict(p95 <= CONCURRENT_GOAL_MS),
        ),
        Line("  added latency to first token p99", ms(percentile(latencies.added, 0.99))),
    ]


def conversing_lines(title: str, run: Conversing, clock: FakeClock) -> list[Line]:
    conversing = Latencies.of(run.asked, clock)
    if not conversing.added:
        return [Line(f"{title}: no complete answers", f"{conversing.incomplete} failed")]
    busy = "n/a" if run.machine_busy is None else f"{run.machine_busy:.0%}"
    return [
        *first_token_lines(title, conversing),
        Line(
            "  questions, questions/s, machine busy (all cores)",
            f"{len(run.asked)}, {run.per_second:.1f}, {busy}",
        ),
    ]


def production_lines(production: tuple[list[Asked], Conversing], clock: FakeClock) -> list[Line]:
    """The same chats against the production layout (information: the goals name one daphne)."""
    concurrent, conversing = Latencies.of(production[0], clock), production[1]
    layout = f"uvicorn, {PRODUCTION_WORKERS} workers"
    if not concurrent.added:
        return [Line(f"{layout}: no complete answers", f"{concurrent.incomplete} failed")]
    lines = [
        *first_token_lines(f"{CONCURRENT_CHATS} chats asking at once, {layout}", concurrent),
        Line("    of which send to request at the model p95", ms(percentile(concurrent.to_request, 0.95))),
        *conversing_lines(f"{CONCURRENT_CHATS} chats in use, {layout}", conversing, clock),
    ]
    if concurrent.incomplete:
        lines.append(Line("  answers that did not finish as expected", f"{concurrent.incomplete}"))
    return lines


def main(sizes: Sizes, pool: int) -> None:
    started = time.perf_counter()
    print(
        f"DataMind chat path: Python {platform.python_version()}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f}, pool of {pool} Postgres connections"
    )
    # More sections are added here as functions returning Lines.
    benches: list[tuple[str, Callable[[], list[Line]]]] = [
        ("Spider schema linking", bench_spider_recall),
        ("context time", lambda: bench_context_time(sizes)),
        ("streaming latency", lambda: bench_streaming(sizes, pool)),
    ]
    lines: list[Line] = []
    for title, bench in benches:
        try:
            lines += bench()
        except Exception as exc:  # one broken measure must not hide the others
            lines.append(Line(title, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"))
    print()
    table_print(lines)
    print(f"\nTotal {time.perf_counter() - started:.0f} s. Goals are informational.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed questions, for a smoke run")
    parser.add_argument(
        "--pool", type=int, default=8, help="daphne's Postgres pool size (0: a new connection per trip)"
    )
    args = parser.parse_args()
    main(QUICK if args.quick else FULL, args.pool)
