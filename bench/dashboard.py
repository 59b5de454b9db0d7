"""Dashboards, measured: a dashboard of 12 widgets on the demo warehouse, served by daphne.

    .venv/bin/python bench/dashboard.py              # about two and a half minutes
    .venv/bin/python bench/dashboard.py --quick      # fewer rounds, for a smoke run
    .venv/bin/python bench/dashboard.py --workers 4  # uvicorn with 4 worker processes, as deploy/ serves it
    .venv/bin/python bench/dashboard.py --pool 0     # a new Postgres connection per request

What a viewer waits for is the page plus one request per widget (htmx loads each on its own).
Measured over loopback against one daphne process, as `make run` serves it (or uvicorn with worker
processes, as deploy/ serves it), each with a pool of Postgres connections, on a scratch Postgres
database and Redis db that this script creates and always removes. The client is one event loop
with kept-alive connections, as a browser keeps them (bench/_keepalive.py), so that little of the
two cores goes to the client:
- cold: the result cache empty, every widget's query runs on DuckDB;
- warm: the same requests again, results from the cache (p50/p95 over the rounds);
- 20 viewers at once: a herd, every viewer opening the dashboard at the same moment with 3
  requests in flight each (60 at once); a few rounds;
- 20 viewers reloading: each viewer keeps reopening the dashboard, one request at a time, for a
  while (20 in flight, as wrk's connections in bench/http_load.py); requests per second;
- 20 viewers browsing: people at their dashboards, each opening it as a browser does (the page,
  then its widgets six at a time over HTTP/1.1), looking at it for 1 to 5 seconds, opening it
  again; with the requests per second this makes and how busy the machine was;
- server-side chart images: vl-convert PNG and SVG per chart widget.
Each figure is printed beside its reference from the same run: the log-in page (a small page
through daphne and the same middleware) for pages and fragments, and vl-convert's own Vega-Lite
compile for the images. Verdicts are information: the exit status never depends on a timing.
"""

import argparse
import asyncio
import contextlib
import os
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
from dataclasses import dataclass
from pathlib import Path

from _keepalive import Connection
from _machine import busy_share, machine_ticks

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_REDIS_URL = "redis://127.0.0.1:6379/6"
# The reference request: the log-in page, a small Django page through the same middleware
# (sessions, CSRF, htmx, request ids) with one template and no query of its own.
FLOOR_PATH = "/accounts/login/"
VIEWERS = 20
PER_VIEWER_IN_FLIGHT = 3
BROWSER_IN_FLIGHT = 6  # Chromium's and Firefox's connections per host over HTTP/1.1
LOOK_SECONDS = (1.0, 5.0)
FRAGMENT_GOAL_MS = 50.0
PAGE_GOAL_MS = 100.0
HTMX = {"HX-Request": "true"}

MONTHLY = (
    "SELECT date_trunc('month', date) AS month, sum({measure}) AS {measure} "
    "FROM daily_revenue GROUP BY 1 ORDER BY 1"
)
BY_REGION = (
    "SELECT r.name AS region, sum(d.revenue) AS revenue "
    "FROM daily_revenue d JOIN regions r USING (region_id) GROUP BY 1 ORDER BY 2 DESC"
)
BY_CATEGORY = (
    "SELECT c.name AS category, sum(i.quantity * i.unit_price) AS revenue FROM order_items i "
    "JOIN products p USING (product_id) JOIN categories c USING (category_id) GROUP BY 1"
)
# Twelve widgets over the demo warehouse's tables: charts, KPIs and tables, as a sales team's
# dashboard would have them.
WIDGETS = [
    ("Revenue by month", "chart", "line", MONTHLY.format(measure="revenue"), ("month", "revenue")),
    ("Revenue by region", "chart", "bar", BY_REGION, ("region", "revenue")),
    ("Orders by channel", "chart", "bar", "SELECT channel, count(*) AS orders FROM orders GROUP BY 1",
     ("channel", "orders")),
    ("Visits by week", "chart", "area", "SELECT date_trunc('week', date) AS week, sum(visits) AS visits "
     "FROM daily_traffic GROUP BY 1 ORDER BY 1", ("week", "visits")),
    ("Revenue by category", "chart", "arc", BY_CATEGORY, ("category", "revenue")),
    ("Signups by channel", "chart", "bar", "SELECT channel, sum(signups) AS signups FROM daily_traffic "
     "GROUP BY 1",
     ("channel", "signups")),
    ("Monthly revenue", "kpi", "", MONTHLY.format(measure="revenue"), ("month", "revenue")),
    ("Monthly orders", "kpi", "", MONTHLY.format(measure="orders"), ("month", "orders")),
    ("New customers", "kpi", "", MONTHLY.format(measure="new_customers"), ("month", "new_customers")),
    ("Refunds", "kpi", "", "SELECT sum(refunded_amount) AS refunded FROM daily_revenue", ("", "refunded")),
    ("Top customers", "table", "", "SELECT c.name, c.country, sum(o.total_amount) AS spent FROM orders o "
     "JOIN customers c USING (customer_id) GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20", ("", "")),
    ("Top products", "table", "", "SELECT p.name, sum(i.quantity) AS units FROM order_items i "
     "JOIN products p USING (product_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 20", ("", "")),
]  # fmt: skip


@dataclass
class Line:
    measure: str
    ours: str = ""
    reference: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""


@dataclass
class World:
    dashboard_id: int
    widget_ids: list[int]
    cookies: list[str]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def table_print(lines: list[Line]) -> None:
    columns = ("measure", "ours", "reference", "ratio", "goal", "verdict")
    rows = [Line("measure", "ours", "reference", "ratio", "goal", ""), *lines]
    widths = [max(len(getattr(line, c)) for line in rows) for c in columns]
    for i, line in enumerate(rows):
        print("  ".join(getattr(line, c).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def world_create(viewers: int) -> World:
    """Migrate, then an org with the demo warehouse, a shared dashboard of 12 widgets and
    `viewers` logged-in viewers (real session rows)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core.management import call_command

    from apps.accounts.models import Organization, Role, User
    from apps.connections.models import Connection, Engine
    from apps.connections.services.catalogue import catalogue_refresh
    from apps.connections.services.demo_warehouse import DEMO_WAREHOUSE_FILENAME, demo_warehouse_build

    call_command("migrate", interactive=False, verbosity=0)
    org = Organization.objects.create(name="Bench", slug="bench")
    owner = User.objects.create_user("analyst@bench.test", org=org, role=Role.ANALYST)
    demo_warehouse_build()
    connection = Connection.objects.create(
        org=org, name="Demo", engine=Engine.DUCKDB, database=DEMO_WAREHOUSE_FILENAME
    )
    catalogue_refresh(connection_id=connection.pk)
    dashboard_id, widgets = dashboard_build(owner, connection)
    store = import_module(settings.SESSION_ENGINE).SessionStore
    cookies = []
    for n in range(viewers):
        viewer = User.objects.create_user(f"viewer{n}@bench.test", org=org, role=Role.VIEWER)
        login = store()
        login[SESSION_KEY] = str(viewer.pk)
        login[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        login[HASH_SESSION_KEY] = viewer.get_session_auth_hash()
        login.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={login.session_key}")
    return World(dashboard_id=dashboard_id, widget_ids=widgets, cookies=cookies)


def dashboard_build(owner, connection) -> tuple[int, list[int]]:
    """The twelve widgets on the demo warehouse `connection`, in an org-wide dashboard of `owner`'s:
    the dashboard's id and its widgets' ids."""
    from apps.dashboards.models import Visibility
    from apps.dashboards.services.dashboards import dashboard_create, widget_create

    dashboard = dashboard_create(org=owner.org, owner=owner, title="Sales", visibility=Visibility.ORG)
    widgets = [
        widget_create(
            dashboard=dashboard, user=owner, title=title, kind=kind, connection=connection, sql=sql,
            chart={"mark": mark, "x": x, "y": y}, width=4,
        ).pk
        for title, kind, mark, sql, (x, y) in WIDGETS
    ]  # fmt: skip
    return dashboard.pk, widgets


@contextlib.contextmanager
def scratch(tmp: Path, viewers: int, pool: int) -> Iterator[tuple[dict[str, str], World]]:
    """A scratch Postgres database, Redis db and warehouse folder; Django set up on them here."""
    import environ
    import psycopg
    import redis

    server = environ.Env.db_url_config(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    admin = {
        "host": server.get("HOST") or "127.0.0.1", "port": int(server.get("PORT") or 5432),
        "user": server.get("USER") or "postgres", "password": server.get("PASSWORD") or "",
        "dbname": "postgres", "autocommit": True,
    }  # fmt: skip
    name = f"datamind_bench_dashboard_{uuid.uuid4().hex[:8]}"
    (tmp / "warehouses").mkdir()
    environment = {
        "DJANGO_SETTINGS_MODULE": "datamind.settings",
        "DATABASE_URL": f"postgres://{admin['user']}:{admin['password']}@{admin['host']}:{admin['port']}/{name}",
        "REDIS_URL": BENCH_REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production mode, as deploy/ runs it, but plain HTTP on loopback (nginx redirects to
        # HTTPS in production) and static files collected into the scratch folder.
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "STATIC_ROOT": str(tmp / "static"),
        # Under daphne every request runs its sync view in a thread of its own, so persistent
        # connections are never reused (the settings force CONN_MAX_AGE=0); web processes take
        # their connections from a pool instead, 8 as deploy/docker-compose.yml gives them
        # (--pool 0: a new connection per request, as `make run` without the variable).
        "DATABASE_CONN_MAX_AGE": "0",
        "DATABASE_POOL_MAX_SIZE": str(pool),
        "CONNECTIONS_FILE_ROOT": str(tmp / "warehouses"),
        "DATAMIND_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(environment)
    collectstatic = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(collectstatic, cwd=ROOT, check=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        import django

        django.setup()
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        yield environment, world_create(viewers)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Served:
    url: str
    pid: int  # the server's main process: with one worker, the one that answers


@contextlib.contextmanager
def server(environment: dict[str, str], log: Path, workers: int, root: Path = ROOT) -> Iterator[Served]:
    """daphne, one process (`make run`), or with `workers` uvicorn and its worker processes (deploy/);
    the code is `root`'s (bench/ab.py serves another revision's checkout)."""
    port = free_port()
    if workers:
        command = ["uvicorn", "datamind.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--no-access-log"]  # fmt: skip
    else:
        command = ["daphne", "-b", "127.0.0.1", "-p", str(port), "datamind.asgi:application"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=root, env={**os.environ, **environment}, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}{FLOOR_PATH}", timeout=2)  # noqa: S310 - our own loopback server
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start: {log.read_text()[-500:]}") from None
                time.sleep(0.2)
        yield Served(url, process.pid)
    except BaseException:
        errors = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
        print("\n".join(dict.fromkeys(errors)) or f"{command[0]} logged no error", file=sys.stderr)
        raise
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Viewer:
    """A logged-in browser on the dashboard: its kept-alive connections, reused from load to load."""

    connections: list[Connection]

    @classmethod
    def open(cls, base: str, cookie: str, in_flight: int) -> "Viewer":
        return cls([Connection(base, {"Cookie": cookie}) for _ in range(in_flight)])

    async def load(self, world: World) -> tuple[float, list[float], float]:
        """The page, then its widgets (as many at once as the viewer has connections): the page's
        ms, each fragment's ms and the whole load's ms."""
        started = time.perf_counter()
        page, _ = await self.connections[0].get(f"/dashboards/{world.dashboard_id}/")
        waiting = [f"/dashboards/widgets/{pk}/" for pk in world.widget_ids]
        fragments: list[float] = []

        async def take(connection: Connection) -> None:
            while waiting:
                elapsed, _ = await connection.get(waiting.pop(0), HTMX)
                fragments.append(elapsed)

        await asyncio.gather(*(take(connection) for connection in self.connections))
        return page, fragments, (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


@dataclass
class Browsing:
    pages: list[float]
    fragments: list[float]
    requests_per_second: float
    machine_busy: float | None  # the share of all cores in use while it ran (Linux)


async def browse(base: str, world: World, seconds: float, seed: int = 0) -> Browsing:
    """Viewers as people use a dashboard: each opens it (the page, then its widgets
    BROWSER_IN_FLIGHT at a time), looks at it for LOOK_SECONDS (at random), and opens it again.
    Their first openings are spread over one look, as people do not arrive in the same
    millisecond; every viewer's connections are opened and warm before the clock starts."""
    rng = random.Random(seed)
    viewers = [Viewer.open(base, cookie, BROWSER_IN_FLIGHT) for cookie in world.cookies]
    for viewer in viewers:
        await viewer.load(world)
    pages: list[float] = []
    fragments: list[float] = []
    deadline = time.perf_counter() + seconds

    async def look_and_reopen(viewer: Viewer, arrival: float) -> None:
        await asyncio.sleep(arrival)
        while time.perf_counter() < deadline:
            page, timings, _ = await viewer.load(world)
            pages.append(page)
            fragments.extend(timings)
            await asyncio.sleep(rng.uniform(*LOOK_SECONDS))

    busy_before = machine_ticks()
    started = time.perf_counter()
    await asyncio.gather(*(look_and_reopen(v, rng.uniform(0, LOOK_SECONDS[1])) for v in viewers))
    elapsed = time.perf_counter() - started
    busy = busy_share(busy_before, machine_ticks())
    for viewer in viewers:
        await viewer.close()
    return Browsing(pages, fragments, (len(pages) + len(fragments)) / elapsed, busy)


async def bench_http(
    base: str, world: World, rounds: int, steady_seconds: float, browse_seconds: float
) -> list[Line]:
    import redis

    anonymous = Connection(base)
    floor = statistics.median([(await anonymous.get(FLOOR_PATH))[0] for _ in range(rounds * 5)])
    await anonymous.close()
    results = redis.Redis.from_url(BENCH_REDIS_URL)
    results.delete(*results.keys("*datamind:result:*") or ["-"])
    alone = Viewer.open(base, world.cookies[0], 1)
    cold_page, cold, _ = await alone.load(world)
    pages, fragments = [], []
    for _ in range(rounds):
        page, timings, _ = await alone.load(world)
        pages.append(page)
        fragments.extend(timings)
    await alone.close()

    # A herd: every viewer opens the dashboard at the same moment, each with a few requests at once.
    crowd = [Viewer.open(base, cookie, PER_VIEWER_IN_FLIGHT) for cookie in world.cookies]
    await asyncio.gather(*(viewer.load(world) for viewer in crowd))  # connections open, processes warm
    herd_pages, herd_fragments, herd_whole = [], [], []
    for _ in range(max(1, rounds // 5)):
        for page, timings, whole in await asyncio.gather(*(viewer.load(world) for viewer in crowd)):
            herd_pages.append(page)
            herd_fragments.extend(timings)
            herd_whole.append(whole)
    for viewer in crowd:
        await viewer.close()

    # Steady: every viewer keeps reloading the dashboard, one request at a time (as wrk's
    # connections do), for a while; the load is then constant rather than a burst.
    steady = [Viewer.open(base, cookie, 1) for cookie in world.cookies]
    steady_pages, steady_fragments = [], []
    deadline = time.perf_counter() + steady_seconds

    async def keep_loading(viewer: Viewer) -> None:
        while time.perf_counter() < deadline:
            page, timings, _ = await viewer.load(world)
            steady_pages.append(page)
            steady_fragments.extend(timings)

    started = time.perf_counter()
    await asyncio.gather(*(keep_loading(viewer) for viewer in steady))
    throughput = (len(steady_pages) + len(steady_fragments)) / (time.perf_counter() - started)
    for viewer in steady:
        await viewer.close()

    browsing = await browse(base, world, browse_seconds)

    p95 = lambda values: percentile(values, 0.95)  # noqa: E731
    cold_total, warm_total = (
        cold_page + sum(cold),
        statistics.median(pages) + 12 * statistics.median(fragments),
    )
    herd = f"{len(world.cookies)} viewers at once ({PER_VIEWER_IN_FLIGHT} requests each)"
    loop = f"{len(world.cookies)} viewers reloading (1 request each)"
    return [
        Line(f"reference: {FLOOR_PATH} median", ms(floor)),
        against("cold: page + 12 widgets, one after another", cold_total, floor * 13),
        against("cold: slowest widget fragment", max(cold), floor),
        against("warm: page + 12 widgets, one after another", warm_total, floor * 13),
        against("warm: page p95", p95(pages), floor, PAGE_GOAL_MS),
        against("warm: widget fragment p50", statistics.median(fragments), floor),
        against("warm: widget fragment p95", p95(fragments), floor, FRAGMENT_GOAL_MS),
        against(f"{herd}: page p95", p95(herd_pages), floor, PAGE_GOAL_MS),
        against(f"{herd}: widget fragment p95", p95(herd_fragments), floor, FRAGMENT_GOAL_MS),
        against(f"{herd}: whole dashboard p95", p95(herd_whole), floor * 13),
        against(f"{loop}: page p50", statistics.median(steady_pages), floor),
        against(f"{loop}: page p95", p95(steady_pages), floor, PAGE_GOAL_MS),
        against(f"{loop}: widget fragment p50", statistics.median(steady_fragments), floor),
        against(f"{loop}: widget fragment p95", p95(steady_fragments), floor, FRAGMENT_GOAL_MS),
        Line(f"{loop}: requests/s", f"{throughput:.0f}"),
        *browsing_lines(browsing, floor, len(world.cookies)),
    ]


def browsing_lines(browsing: Browsing, floor: float, viewers: int) -> list[Line]:
    looks = f"{LOOK_SECONDS[0]:.0f}-{LOOK_SECONDS[1]:.0f} s"
    people = f"{viewers} viewers browsing ({BROWSER_IN_FLIGHT} requests each, looking {looks})"
    busy = "n/a" if browsing.machine_busy is None else f"{browsing.machine_busy:.0%}"
    return [
        against(f"{people}: page p95", percentile(browsing.pages, 0.95), floor, PAGE_GOAL_MS),
        against(f"{people}: widget fragment p50", statistics.median(browsing.fragments), floor),
        against(
            f"{people}: widget fragment p95", percentile(browsing.fragments, 0.95), floor, FRAGMENT_GOAL_MS
        ),
        Line(
            f"{people}: dashboards opened, requests/s",
            f"{len(browsing.pages)}, {browsing.requests_per_second:.0f}",
        ),
        Line(f"{people}: machine busy (all cores)", busy),
    ]


def against(measure: str, ours: float, reference: float, goal: float | None = None) -> Line:
    line = Line(measure, ms(ours), ms(reference), f"{ours / reference:.1f}x")
    if goal is not None:
        line.goal, line.verdict = f"<= {goal:.0f} ms", "PASS" if ours <= goal else "MISS"
    return line


def bench_images(world: World, rounds: int) -> list[Line]:
    import vl_convert

    from apps.dashboards.models import Widget, WidgetKind
    from apps.dashboards.services import charts
    from apps.dashboards.services.widgets import widget_run

    lines = []
    for widget in Widget.objects.filter(pk__in=world.widget_ids, kind=WidgetKind.CHART).select_related(
        "connection"
    ):
        spec = charts.image_spec(widget_run(widget=widget).spec)  # the exact spec the download draws
        compile_ms = min(_timed(lambda s=spec: vl_convert.vegalite_to_vega(s)) for _ in range(rounds))
        png_ms = statistics.median(
            _timed(lambda s=spec: vl_convert.vegalite_to_png(s, scale=charts.PNG_SCALE))
            for _ in range(rounds)
        )
        svg_ms = statistics.median(
            _timed(lambda s=spec: vl_convert.vegalite_to_svg(s)) for _ in range(rounds)
        )
        lines += [
            against(f"PNG: {widget.title}", png_ms, compile_ms),
            against(f"SVG: {widget.title}", svg_ms, compile_ms),
        ]
    return lines  # fmt: skip


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def main(rounds: int, pool: int, workers: int, steady_seconds: float, browse_seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="datamind-bench-dashboard-") as folder:
        tmp = Path(folder)
        started = time.perf_counter()
        with scratch(tmp, VIEWERS, pool) as (environment, world):
            print(f"world ready in {time.perf_counter() - started:.0f} s: 12 widgets, {VIEWERS} viewers")
            with server(environment, tmp / "server.log", workers) as served:
                lines = asyncio.run(bench_http(served.url, world, rounds, steady_seconds, browse_seconds))
            lines += bench_images(world, max(3, rounds // 4))
    layout = f"uvicorn with {workers} worker processes" if workers else "one daphne process"
    connections = f"a pool of {pool} Postgres connections per process" if pool else "no connection pool"
    print(f"\nDashboards: {layout}, {connections}, loopback, {os.cpu_count()} CPUs, {rounds} warm rounds\n")
    table_print(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument(
        "--pool", type=int, default=8, help="Postgres connections in each process's pool (0: none)"
    )
    parser.add_argument("--workers", type=int, default=0, help="serve with uvicorn and this many workers")
    arguments = parser.parse_args()
    quick = arguments.quick
    main(5 if quick else 20, arguments.pool, arguments.workers, 5 if quick else 20, 10 if quick else 40)
