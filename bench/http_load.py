"""Pages and API under load on loopback: one server process against the production layout.

    .venv/bin/python bench/http_load.py            # about three minutes
    .venv/bin/python bench/http_load.py --quick    # shorter runs, for a smoke test

DataMind runs in production mode (DEBUG off, collected static files, Postgres, Redis) on a scratch
database and Redis db set up here and always removed (the same world as bench/chat.py: an org, its
DuckDB connection with a fresh catalogue, 20 analysts each logged in through a real session row,
plus an API key). Three layouts serve it in turn:

- one daphne process (the `make run` web process);
- one uvicorn process (the production server with a single worker, to tell the server's own cost
  from the number of processes);
- the production layout of one replica: uvicorn with WEB_CONCURRENCY worker processes
  (deploy/Dockerfile), default 4.

For each, wrk (Debian's package) drives 20 connections, one per logged-in analyst (each request
carries one analyst's session cookie, in turn), against warm pages and an API list, after a warm-up:
a dashboard page (bench/dashboard.py's twelve widgets on the demo warehouse, the page the goal
names) and one of its widget fragments (results cached), the connections list (`/connections/`),
the chat index (`/chat/`) and `GET /api/v1/connections/` with an API key; then the dashboard page
again while HEAVY_CLIENTS other clients keep running a
5,000-row query through the API (`POST /api/v1/connections/{id}/query/`, Python-heavy: rows
converted and serialised), which is where one process makes pages queue behind other work; and
last, 20 people using the dashboard as bench/dashboard.py's browsing viewers do (each opens it as
a browser does, looks at it for a few seconds, opens it again), whose pages and fragments are
timed by the benchmark's own client. It prints requests per second and p50/p95/p99 latency per
endpoint and layout. wrk's 20 connections ask again the moment they are answered: they measure how
much a layout serves, and their latency is 20 divided by that rate. The goal in issue 8 is a p95
of a warm page under 20 concurrent users of at most 100 ms, and no queueing behind a single
process. Figures depend on the machine: on a shared 2-core machine, wrk
itself takes part of one core.
"""

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The scratch world (database, Redis db, org, logged-in analysts) is bench/chat.py's; the
# dashboard on it is bench/dashboard.py's twelve widgets.
chat_bench = _bench_module("chat")
dashboard_bench = _bench_module("dashboard")

USERS = 20
HEAVY_CLIENTS = 4
HEAVY_SQL = "SELECT i, i * 2 AS double, 'row ' || i AS label FROM range(5000) t(i)"
GOAL_P95_MS = 100.0  # issue 8: a warm page
FRAGMENT_GOAL_P95_MS = 50.0  # issue 5: a warm widget fragment
# Its own Redis db, so this benchmark never clears bench/chat.py's.
chat_bench.BENCH_REDIS_URL = "redis://127.0.0.1:6379/4"
PRODUCTION = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback; nginx redirects in production
    "SESSION_COOKIE_SECURE": "false",
    "LOG_LEVEL": "WARNING",
    "DATABASE_POOL_MAX_SIZE": "8",  # as deploy/docker-compose.yml gives the web processes
}
# Reports p50/p95/p99 (wrk's own --latency table has no p95) and spreads the analysts' cookies over
# the requests.
WRK_SCRIPT = """
local cookies = {}
for line in io.lines(os.getenv("BENCH_COOKIES")) do cookies[#cookies + 1] = line end
local n = 0
request = function()
  n = n + 1
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Cookie"] = cookies[(n % #cookies) + 1]
  return wrk.format("GET", wrk.path, headers)
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.2f %.2f %.2f %d %d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.requests, errors))
end
"""


@dataclass
class Layout:
    name: str
    command: list[str]  # "{port}" is replaced


@dataclass
class Figures:
    rps: float
    p50: float
    p95: float
    p99: float
    requests: int
    errors: int
    goal_ms: float = GOAL_P95_MS


def layouts(workers: int) -> list[Layout]:
    venv = Path(sys.executable).parent  # the virtualenv running this script
    uvicorn = [str(venv / "uvicorn"), "datamind.asgi:application", "--host", "127.0.0.1", "--port", "{port}"]
    quiet = ["--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
    return [
        Layout(
            "daphne, 1 process",
            [str(venv / "daphne"), "-b", "127.0.0.1", "-p", "{port}", "datamind.asgi:application"],
        ),
        Layout("uvicorn, 1 process", [*uvicorn, *quiet]),
        Layout(f"uvicorn, {workers} workers (production)", [*uvicorn, *quiet, "--workers", str(workers)]),
    ]


@contextlib.contextmanager
def serving(layout: Layout, environment: dict[str, str], log: Path) -> Iterator[int]:
    port = chat_bench.free_port()
    command = [part.replace("{port}", str(port)) for part in layout.command]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **environment}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{layout.name} did not become healthy; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrk(url: str, seconds: int, script: Path, cookies: Path, headers: dict[str, str]) -> Figures:
    command = ["wrk", "-t", "2", "-c", str(USERS), "-d", f"{seconds}s", "-s", str(script), "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_COOKIES": str(cookies)},
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    rps, p50, p95, p99, requests, errors = line.split()[1:]
    return Figures(float(rps), float(p50), float(p95), float(p99), int(requests), int(errors))


@contextlib.contextmanager
def heavy_neighbours(port: int, connection_id: int, key: str) -> Iterator[list[int]]:
    """HEAVY_CLIENTS threads running the 5,000-row query back to back until the block ends; yields
    the running count of queries they completed."""
    done = [0]
    stop = threading.Event()
    body = json.dumps({"sql": HEAVY_SQL, "use_cache": False}).encode()

    def loop() -> None:
        while not stop.is_set():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/connections/{connection_id}/query/",
                data=body,
                headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - our loopback server
                answer.read()
            done[0] += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(HEAVY_CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield done
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def browsing(
    port: int, dashboard_id: int, widget_ids: list[int], cookies: list[str], seconds: int
) -> list[tuple[str, Figures]]:
    """USERS people at the dashboard as bench/dashboard.py's browsing viewers: each opens it as a
    browser does (the page, then its widgets six at a time), looks at it a few seconds, opens it
    again. Their pages and fragments as two rows (requests per second: all of theirs)."""
    world = dashboard_bench.World(dashboard_id, widget_ids, cookies)
    run = asyncio.run(dashboard_bench.browse(f"http://127.0.0.1:{port}", world, seconds))
    looks = "-".join(f"{s:.0f}" for s in dashboard_bench.LOOK_SECONDS)
    busy = "" if run.machine_busy is None else f", machine {run.machine_busy:.0%} busy"
    return [
        (
            f"{USERS} users browsing the dashboard ({looks} s looks{busy}): {name}",
            Figures(
                run.requests_per_second,
                *(dashboard_bench.percentile(timings, share) for share in (0.5, 0.95, 0.99)),
                requests=len(timings),
                errors=0,
                goal_ms=goal,
            ),
        )
        for name, timings, goal in (
            ("page", run.pages, GOAL_P95_MS),
            ("widget fragments", run.fragments, FRAGMENT_GOAL_P95_MS),
        )
    ]


def collect_static(environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **environment},
        check=True,
    )


def demo_connection(org):
    """The demo warehouse, which bench/dashboard.py's widgets query, as a second connection."""
    from apps.connections.models import Connection, Engine
    from apps.connections.services.catalogue import catalogue_refresh
    from apps.connections.services.demo_warehouse import DEMO_WAREHOUSE_FILENAME, demo_warehouse_build

    demo_warehouse_build()
    connection = Connection.objects.create(
        org=org, name="Demo", engine=Engine.DUCKDB, database=DEMO_WAREHOUSE_FILENAME
    )
    catalogue_refresh(connection_id=connection.pk)
    return connection


def main(seconds: int, workers: int) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk; `make bench` installs it as root).")
    print(
        f"bench/http_load.py on {platform.node()}: {os.cpu_count()} cores, {USERS} connections, "
        f"{seconds} s per run"
    )
    with tempfile.TemporaryDirectory(prefix="datamind-bench-http-") as folder:
        tmp = Path(folder)
        with chat_bench.scratch_world(tmp, USERS, pool=8) as (world_environment, chats):
            from apps.accounts import services
            from apps.accounts.models import Organization, Role, User
            from apps.connections.models import Connection

            org = Organization.objects.get(slug="bench")
            admin = User.objects.get(email="admin@bench.test")
            _api_key, key = services.api_key_create(org=org, actor=admin, name="Bench", role=Role.VIEWER)
            _api_key, analyst_key = services.api_key_create(
                org=org, actor=admin, name="Bench queries", role=Role.ANALYST
            )
            connection = Connection.objects.get(org=org)
            connection_id = connection.pk
            analyst = User.objects.filter(org=org, role=Role.ANALYST).first()
            dashboard_id, widget_ids = dashboard_bench.dashboard_build(analyst, demo_connection(org))
            environment = {**world_environment, **PRODUCTION, "STATIC_ROOT": str(tmp / "static")}
            collect_static(environment)
            cookies = tmp / "cookies.txt"
            cookies.write_text("\n".join(chat.cookie for chat in chats) + "\n")
            script = tmp / "report.lua"
            script.write_text(WRK_SCRIPT)
            endpoints = [
                ("dashboard page (12 widgets)", f"/dashboards/{dashboard_id}/", {}),
                ("widget fragment (warm)", f"/dashboards/widgets/{widget_ids[0]}/", {"HX-Request": "true"}),
                ("connections list page", "/connections/", {}),
                ("chat index page", "/chat/", {}),
                (
                    "API: GET /api/v1/connections/",
                    "/api/v1/connections/",
                    {"Authorization": f"Api-Key {key}"},
                ),
            ]
            results: list[tuple[str, str, Figures]] = []
            for layout in layouts(workers):
                with serving(layout, environment, tmp / "server.log") as port:
                    for label, path, headers in endpoints:
                        url = f"http://127.0.0.1:{port}{path}"
                        wrk(url, max(2, seconds // 4), script, cookies, headers)  # warm-up
                        figures = wrk(url, seconds, script, cookies, headers)
                        if path.startswith("/dashboards/widgets/"):
                            figures = replace(figures, goal_ms=FRAGMENT_GOAL_P95_MS)
                        results.append((layout.name, label, figures))
                        print(f"  {layout.name:<34} {label:<32} {results[-1][2].rps:8.1f} req/s", flush=True)
                    label, path, headers = endpoints[0]  # the dashboard page
                    with heavy_neighbours(port, connection_id, analyst_key) as done:
                        busy = wrk(f"http://127.0.0.1:{port}{path}", seconds, script, cookies, headers)
                    label = f"{label}, {HEAVY_CLIENTS} heavy API clients ({done[0]} queries)"
                    results.append((layout.name, label, busy))
                    print(f"  {layout.name:<34} {label:<32} {busy.rps:8.1f} req/s", flush=True)
                    sessions = [chat.cookie for chat in chats]
                    for label, figures in browsing(port, dashboard_id, widget_ids, sessions, seconds * 2):
                        results.append((layout.name, label, figures))
                        print(f"  {layout.name:<34} {label:<32} {figures.rps:8.1f} req/s", flush=True)
    print()
    print("| layout | endpoint | req/s | p50 ms | p95 ms | p99 ms | errors | p95 goal |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for layout_name, label, figures in results:
        met = figures.p95 <= figures.goal_ms and figures.errors == 0
        verdict = f"<= {figures.goal_ms:.0f} ms: {'PASS' if met else 'MISS'}"
        print(
            f"| {layout_name} | {label} | {figures.rps:.0f} | {figures.p50:.1f} | {figures.p95:.1f} | "
            f"{figures.p99:.1f} | {figures.errors} | {verdict} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4-second runs instead of 15")
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers in the production layout")
    arguments = parser.parse_args()
    main(seconds=4 if arguments.quick else 15, workers=arguments.workers)
