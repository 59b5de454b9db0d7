"""1,000 alerts due in the same minute on the demo warehouse, evaluated by one Celery worker.

    .venv/bin/python bench/alerts.py                 # about three minutes
    .venv/bin/python bench/alerts.py --alerts 200    # a smoke run

The real path end to end: Celery beat (django-celery-beat's database scheduler) ticks the
dispatch entry at the top of the minute; the dispatcher locks the due alerts (SKIP LOCKED),
queues one evaluation task each on Redis, and one `celery worker` (its default prefork pool,
one process per core) runs them: each query through both safety locks on the demo warehouse
(DuckDB, about a million rows), the condition, the event row and any in-app notification.
Figures: time from the scheduled minute until the last alert is evaluated, and the lag of each
evaluation behind its scheduled time (p50, p99, max). Goal: all within 60 s.
The verdicts are information: the exit status never depends on a timing. The worker and beat
log to var/bench-alerts-worker.log and var/bench-alerts-beat.log.

Databases: a scratch Postgres database on the test settings' server (DATABASE_URL if set, else
postgres@127.0.0.1:5432), created, migrated and always dropped, and REDIS_URL (default
redis://127.0.0.1:6379/4, flushed at the start and the end). The demo warehouse is built in
CONNECTIONS_FILE_ROOT if it is not there yet (about a minute, once).
"""

import argparse
import contextlib
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamind.test_settings")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/4")

import environ  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

_SERVER = environ.Env.db_url_config(
    os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datamind")
)
SERVER = {
    "host": _SERVER.get("HOST") or "127.0.0.1",
    "port": int(_SERVER.get("PORT") or 5432),
    "user": _SERVER.get("USER") or "postgres",
    "password": _SERVER.get("PASSWORD") or "",
}
GOAL_S = 60.0
CHANNELS = ("organic_search", "paid_search", "direct", "social", "email", "referral")
# What people watch on a retail warehouse: daily series by region or channel, hourly orders, and
# lone numbers over the last days. Start dates vary so no two alerts run quite the same query.
METRICS = (
    "SELECT date, sum(revenue) AS revenue FROM daily_revenue WHERE region_id = {region} "
    "AND date >= DATE '2026-10-31' - INTERVAL {days} DAY GROUP BY date ORDER BY date",
    "SELECT date, visits FROM daily_traffic WHERE channel = '{channel}' "
    "AND date >= DATE '2026-10-31' - INTERVAL {days} DAY ORDER BY date",
    "SELECT date_trunc('hour', order_date) AS hour, count(*) AS orders FROM orders "
    "WHERE order_date >= TIMESTAMP '2026-10-31' - INTERVAL {days} DAY GROUP BY 1 ORDER BY 1",
    "SELECT sum(total_amount) AS revenue FROM orders WHERE region_id = {region} "
    "AND order_date >= TIMESTAMP '2026-10-31' - INTERVAL {days} DAY",
)
CONDITIONS = (
    ("anomaly", {"sensitivity": "medium"}),
    ("anomaly", {"sensitivity": "high", "direction": "below"}),
    ("threshold", {"threshold": 100_000, "direction": "above"}),
    ("change", {"amount": 25, "unit": "percent"}),
)


def _admin() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True, **SERVER)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup(count: int, slot: datetime) -> int:
    """The org, the demo connection and `count` alerts due at `slot`; returns the org's id."""
    from apps.accounts.models import Organization, Role, User
    from apps.alerts.models import Alert, ScheduleKind
    from apps.connections.services.demo_warehouse import demo_connection_ensure

    org = Organization.objects.create(name="Bench", slug="bench", timezone="UTC")
    owner = User.objects.create_user("bench@example.test", "x", org=org, role=Role.ANALYST)
    connection = demo_connection_ensure(org=org)
    pick = random.Random(6)
    alerts = []
    for i in range(count):
        sql = METRICS[i % len(METRICS)].format(
            region=1 + i % 4, channel=CHANNELS[i % len(CHANNELS)], days=30 + pick.randrange(60)
        )
        kind, config = CONDITIONS[(i // len(METRICS)) % len(CONDITIONS)]
        alerts.append(
            Alert(
                org=org,
                owner=owner,
                name=f"Metric {i}",
                connection=connection,
                sql=sql,
                condition_kind=kind,
                condition_config=config,
                # Daily at the slot's minute: exactly one run inside the measurement.
                schedule_kind=ScheduleKind.DAILY,
                at_time=slot.time(),
                timezone="UTC",
                channels=[{"kind": "in_app", "to": "owner"}],
                next_run_at=slot,
            )
        )
    Alert.objects.bulk_create(alerts)
    return org.pk


def celery(*arguments: str) -> subprocess.Popen:
    # The worker runs with the production settings (persistent database connections, JSON logs),
    # not the test settings' speed-ups and their connection-per-use.
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datamind.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789-abcdefghijklmnopqrs",
        "ALLOWED_HOSTS": "localhost",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "datamind", *arguments, "--loglevel=WARNING"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=open(ROOT / "var" / f"bench-alerts-{arguments[0]}.log", "w"),
    )


def measure(count: int, beat_file: str) -> dict:
    from django_celery_beat.models import PeriodicTask

    from apps.alerts.models import AlertEvent, EventState

    worker = celery("worker", "--without-heartbeat", "--without-mingle", "--without-gossip")
    beat = celery(
        "beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--schedule", beat_file
    )
    # As in production, beat is already ticking when the alerts fall due: wait for its first tick.
    dispatch = PeriodicTask.objects.filter(task="apps.alerts.tasks.alerts_dispatch_task")
    started = time.monotonic()
    while not dispatch.filter(total_run_count__gt=0).exists() and time.monotonic() - started < 150:
        time.sleep(0.5)
    slot = (datetime.now(UTC) + timedelta(seconds=70)).replace(second=0, microsecond=0)
    setup(count, slot)
    try:
        deadline = slot + timedelta(seconds=GOAL_S * 5)
        while datetime.now(UTC) < deadline:
            finished = AlertEvent.objects.exclude(state=EventState.RUNNING).count()
            if finished >= count:
                break
            time.sleep(0.5)
        lags = [
            (evaluated - scheduled).total_seconds()
            for scheduled, evaluated in AlertEvent.objects.exclude(evaluated_at=None).values_list(
                "scheduled_for", "evaluated_at"
            )
        ]
        states = {
            str(state): AlertEvent.objects.filter(state=state).count()
            for state in (EventState.OK, EventState.TRIGGERED, EventState.ERROR)
        }
        errors = sorted(
            set(AlertEvent.objects.filter(state=EventState.ERROR).values_list("message", flat=True))
        )
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {"lags": lags, "states": states, "errors": errors, "slot": slot}


def main(count: int) -> None:
    name = f"datamind_bench_{uuid.uuid4().hex[:8]}_alerts"
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    broker.flushdb()
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
        with contextlib.suppress(FileNotFoundError):
            os.remove(ROOT / "var" / "bench-alerts-beat")
        result = measure(count, str(ROOT / "var" / "bench-alerts-beat"))
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        broker.flushdb()
    report(count, result)


def report(count: int, result: dict) -> None:
    lags = result["lags"]
    machine = f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"
    print(f"DataMind alerts bench: {machine}")
    print(f"{count} alerts due at {result['slot']:%H:%M:%S} UTC; one Celery worker (prefork)")
    print(f"outcomes: {result['states']}")
    for error in result["errors"]:
        print(f"  error: {error}")
    print()
    if not lags:
        print("No alert was evaluated.")
        return
    last = max(lags)
    rows = [
        ("alerts evaluated", f"{len(lags)} of {count}", f"{count}", "PASS" if len(lags) == count else "MISS"),
        ("all evaluated after the scheduled minute", f"{last:.1f} s", f"<= {GOAL_S:.0f} s",
         "PASS" if len(lags) == count and last <= GOAL_S else "MISS"),
        ("lag behind the scheduled time, p50", f"{percentile(lags, 0.5):.1f} s", "", ""),
        ("lag behind the scheduled time, p99", f"{percentile(lags, 0.99):.1f} s", f"<= {GOAL_S:.0f} s",
         "PASS" if percentile(lags, 0.99) <= GOAL_S else "MISS"),
        ("throughput", f"{len(lags) / max(last, 1e-9):.0f} alerts/s", "", ""),
    ]  # fmt: skip
    headers = ("measure", "figure", "goal", "")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(4)]
    for i, row in enumerate([headers, *rows]):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000, help="how many alerts are due (default 1,000)")
    main(parser.parse_args().alerts)
