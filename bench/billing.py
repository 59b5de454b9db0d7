"""The token budget's cost per question: reserve + settle, against a plain ledger insert.

    .venv/bin/python bench/billing.py            # about half a minute
    .venv/bin/python bench/billing.py --quick    # fewer questions, for a smoke run

Before the budget, a question wrote one UsageRecord (`usage_record`). With it, a question calls
`budget_reserve` before the LLM and `budget_settle` after (which writes that same UsageRecord).
Both paths are timed in the same run (interleaved question by question sequentially; alternating
whole runs with 50 worker threads, each with its own Postgres connection, all asking for the same
org, which is the worst case: every reservation and settlement updates the same period row, so
they queue on its row lock). The table gives both paths' p50/p95, what the budget adds at p95,
the ratio of the p95s, and each path's throughput. Goal: the budget adds under 5 ms at p95 per
question. The verdicts are information: the exit status never depends on a timing.

Database: a scratch database on the test settings' Postgres server (DATABASE_URL if set, else
postgres@127.0.0.1:5432), created, migrated and always dropped by this script, so a bench run
never collides with a test run or leaves rows anywhere.
"""

import argparse
import contextlib
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamind.test_settings")

import environ  # noqa: E402
import psycopg  # noqa: E402

_SERVER = environ.Env.db_url_config(
    os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datamind")
)
SERVER = {
    "host": _SERVER.get("HOST") or "127.0.0.1",
    "port": int(_SERVER.get("PORT") or 5432),
    "user": _SERVER.get("USER") or "postgres",
    "password": _SERVER.get("PASSWORD") or "",
}
WORKERS = 50
GOAL_MS = 5.0


def _admin() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True, **SERVER)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run_sequential(actions: list[Callable[[], object]], questions: int) -> tuple[list[list[float]], float]:
    """Time each action `questions` times, interleaved (a, b, a, b...) so that a noisy neighbour on
    a shared machine slows both alike. Returns the samples per action and the wall time."""
    for _ in range(20):
        for action in actions:
            action()  # warm up: connection, plans
    samples: list[list[float]] = [[] for _ in actions]
    started = time.perf_counter()
    for _ in range(questions):
        for own, action in zip(samples, actions, strict=True):
            own.append(timed(action))
    return samples, time.perf_counter() - started


def run_concurrent(action: Callable[[], object], per_worker: int) -> tuple[list[float], float]:
    """WORKERS threads, each with its own connection, asking `per_worker` questions at once.
    Returns the samples and the wall time from the common start to the last answer."""
    from django.db import connection

    start = threading.Barrier(WORKERS + 1, timeout=300)  # a stuck run fails instead of hanging

    def worker(_: int) -> list[float]:
        try:
            action()
            start.wait()
            return [timed(action) for _ in range(per_worker)]
        except BaseException:
            start.abort()  # the others stop waiting, and future.result() below raises this
            raise
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(worker, i) for i in range(WORKERS)]
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait()
        started = time.perf_counter()
        failures = [f.exception() for f in futures]
        # The worker that failed, not the others it woke up with a broken barrier.
        for failure in sorted(
            filter(None, failures), key=lambda e: isinstance(e, threading.BrokenBarrierError)
        ):
            raise failure
        samples = [t for future in futures for t in future.result()]
    return samples, time.perf_counter() - started


def main(questions: int, per_worker: int) -> None:
    name = f"datamind_bench_{uuid.uuid4().hex[:8]}_billing"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        os.environ["DATABASE_URL"] = (
            f"postgres://{SERVER['user']}:{SERVER['password']}@{SERVER['host']}:{SERVER['port']}/{name}"
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        lines = measure(questions, per_worker)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"DataMind billing bench: Python {platform.python_version()} on {platform.machine()}, Postgres")
    print(
        f"{questions} sequential questions; {WORKERS} workers x {per_worker} concurrent questions, one org\n"
    )
    headers = (
        "measure",
        "baseline p50",
        "baseline p95",
        "budget p50",
        "budget p95",
        "added p95",
        "p95 ratio",
        "baseline rate",
        "budget rate",
        "goal",
        "",
    )
    widths = [max(len(str(row[i])) for row in [headers, *lines]) for i in range(len(headers))]
    for i, row in enumerate([headers, *lines]):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def measure(questions: int, per_worker: int) -> list[tuple[str, ...]]:
    from apps.accounts.models import Organization, Role, User
    from apps.billing.models import BudgetPeriod, BudgetSettings, ModelPrice, Reservation
    from apps.billing.services import budget_reserve, budget_settle, usage_record

    org = Organization.objects.create(name="Bench", slug="bench", plan="enterprise", timezone="Europe/Paris")
    user = User.objects.create_user("bench@example.test", "x", org=org, role=Role.ADMIN)
    ModelPrice.objects.create(
        provider="anthropic", model="claude-bench", input_per_million=3, output_per_million=15
    )
    # Room for every question of the run, so no timing includes a refusal.
    BudgetSettings.objects.create(org=org, monthly_override=10**15)
    call = {"provider": "anthropic", "model": "claude-bench", "purpose": "generation", "user": user}

    def baseline() -> None:
        usage_record(org=org, input_tokens=3_000, output_tokens=500, **call)

    def budgeted() -> None:
        reservation = budget_reserve(org=org, user=user, amount=8_000)
        budget_settle(reservation=reservation, input_tokens=3_000, output_tokens=500, **call)

    def line(label: str, base: list[float], ours: list[float], base_wall: float, ours_wall: float) -> tuple:
        added = percentile(ours, 0.95) - percentile(base, 0.95)
        return (
            label,
            ms(statistics.median(base)),
            ms(percentile(base, 0.95)),
            ms(statistics.median(ours)),
            ms(percentile(ours, 0.95)),
            ms(added),
            f"{percentile(ours, 0.95) / percentile(base, 0.95):.2f}x",
            f"{len(base) / base_wall:,.0f}/s",
            f"{len(ours) / ours_wall:,.0f}/s",
            f"< {GOAL_MS:.0f} ms",
            "PASS" if added * 1000 < GOAL_MS else "MISS",
        )

    (base, ours), _ = run_sequential([baseline, budgeted], questions)
    # Interleaved, so each path's share of the wall time is the sum of its own samples.
    lines = [line("sequential", base, ours, sum(base), sum(ours))]
    base, ours, base_wall, ours_wall = [], [], 0.0, 0.0
    for _ in range(2):  # alternate whole runs, so a change in machine load hits both paths
        samples, elapsed = run_concurrent(baseline, per_worker // 2)
        base, base_wall = base + samples, base_wall + elapsed
        samples, elapsed = run_concurrent(budgeted, per_worker // 2)
        ours, ours_wall = ours + samples, ours_wall + elapsed
    lines.append(line(f"{WORKERS} workers", base, ours, base_wall, ours_wall))
    from django.db import connection

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    # Context, not a verdict: reserve + settle is two round trips and two commits (the reservation
    # one does not wait for the WAL flush), so on a busy server its cost scales with these figures.
    (trips, commits), _ = run_sequential([round_trip, baseline], questions)
    blank = ("",) * 8
    lines.append(("server round trip", ms(statistics.median(trips)), ms(percentile(trips, 0.95)), *blank))
    lines.append(("insert + commit", ms(statistics.median(commits)), ms(percentile(commits, 0.95)), *blank))
    period = BudgetPeriod.objects.get(org=org)
    open_holds = Reservation.objects.filter(settled_at__isnull=True, released_at__isnull=True).count()
    consistent = period.reserved == 0 and open_holds == 0
    verdict = "PASS" if consistent else "MISS"
    lines.append(("nothing left reserved", *("",) * 8, "0", verdict))
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer questions, for a smoke run")
    args = parser.parse_args()
    main(questions=200 if args.quick else 1_000, per_worker=10 if args.quick else 40)
