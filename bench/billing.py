"""The token budget's cost per question: reserve + settle, against a plain ledger insert.

    .venv/bin/python bench/billing.py            # about half a minute
    .venv/bin/python bench/billing.py --quick    # fewer questions, for a smoke run

Before the budget, a question wrote one UsageRecord (`usage_record`). With it, a question calls
`budget_reserve` before the LLM and `budget_settle` after (which writes that same UsageRecord).
Both paths are timed in the same run, sequentially and with 50 worker threads (each with its own
Postgres connection) all asking for the same org, which is the worst case: every reservation
updates the same period row, so they queue on its row lock. Goal: the budget adds under 5 ms at
p95 per question. The verdicts are information: the exit status never depends on a timing.

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


def run_sequential(action: Callable[[], object], questions: int) -> list[float]:
    for _ in range(20):
        action()  # warm up: connection, plans
    return [timed(action) for _ in range(questions)]


def run_concurrent(action: Callable[[], object], per_worker: int) -> list[float]:
    from django.db import connection

    start = threading.Barrier(WORKERS)

    def worker(_: int) -> list[float]:
        try:
            action()
            start.wait()
            return [timed(action) for _ in range(per_worker)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return [t for samples in pool.map(worker, range(WORKERS)) for t in samples]


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
    headers = ("measure", "baseline p50", "baseline p95", "budget p50", "budget p95", "added p95", "goal", "")
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

    lines = []
    for label, runner, size in (
        ("sequential", run_sequential, questions),
        (f"{WORKERS} workers", run_concurrent, per_worker),
    ):
        base = runner(baseline, size)
        ours = runner(budgeted, size)
        added = percentile(ours, 0.95) - percentile(base, 0.95)
        lines.append(
            (
                label,
                ms(statistics.median(base)),
                ms(percentile(base, 0.95)),
                ms(statistics.median(ours)),
                ms(percentile(ours, 0.95)),
                ms(added),
                f"< {GOAL_MS:.0f} ms",
                "PASS" if added * 1000 < GOAL_MS else "MISS",
            )
        )
    from django.db import connection

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    # Context, not a verdict: reserve + settle is about a dozen round trips and one extra commit,
    # so on a busy server its cost scales with these two figures.
    trips = run_sequential(round_trip, questions)
    commits = run_sequential(baseline, questions)
    lines.append(
        ("server round trip", ms(statistics.median(trips)), ms(percentile(trips, 0.95)), "", "", "", "", "")
    )
    lines.append(
        ("insert + commit", ms(statistics.median(commits)), ms(percentile(commits, 0.95)), "", "", "", "", "")
    )
    period = BudgetPeriod.objects.get(org=org)
    open_holds = Reservation.objects.filter(settled_at__isnull=True, released_at__isnull=True).count()
    consistent = period.reserved == 0 and open_holds == 0
    lines.append(("nothing left reserved", "", "", "", "", "", "0", "PASS" if consistent else "MISS"))
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer questions, for a smoke run")
    args = parser.parse_args()
    main(questions=200 if args.quick else 1_000, per_worker=10 if args.quick else 40)
