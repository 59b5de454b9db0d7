import duckdb
import pytest

from apps.connections.models import Connection, Engine

WAREHOUSE_FILE = "metrics.duckdb"


@pytest.fixture
def warehouse_root(tmp_path, settings):
    """An empty DuckDB file in the allowed folder: alert SQL computes its own numbers."""
    root = tmp_path / "warehouses"
    root.mkdir()
    settings.CONNECTIONS_FILE_ROOT = root
    duckdb.connect(str(root / WAREHOUSE_FILE)).close()
    return root


@pytest.fixture
def warehouse(personas, warehouse_root) -> Connection:
    return Connection.objects.create(
        org=personas.org,
        name="Metrics",
        engine=Engine.DUCKDB,
        database=WAREHOUSE_FILE,
        created_by=personas.admin,
    )


VISIBILITY_TIMEOUT_S = 2


class CeleryProcesses:
    """A real Celery worker (and optionally beat) on the test database and Redis."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.worker = None
        self.beat = None

    def _start(self, *arguments: str):
        import subprocess
        import sys

        return subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
            [sys.executable, "-m", "celery", "-A", "datamind", *arguments, "--loglevel=WARNING"],
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self) -> None:
        # One process (solo pool), so a SIGKILL takes the task down with the worker, as a crash would.
        self.worker = self._start(
            "worker", "--pool=solo", "--without-heartbeat", "--without-mingle", "--without-gossip"
        )

    def kill_worker(self) -> None:
        import signal
        import time

        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)
        # A starting worker hands back unacknowledged messages older than the visibility timeout
        # (later, only every 100 s): past it, the killed task is handed out again at once.
        time.sleep(VISIBILITY_TIMEOUT_S + 0.5)

    def start_beat(self, schedule_file: str) -> None:
        self.beat = self._start("beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                                "--schedule", schedule_file, "--max-interval", "1")  # fmt: skip

    def stop(self) -> None:
        for process in (self.beat, self.worker):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except Exception:
                    process.kill()


@pytest.fixture
def celery_processes(transactional_db, settings, warehouse_root, tmp_path):
    """Start with `.start_worker()` / `.start_beat()`; everything queued before the test is purged."""
    import os

    import redis
    from django.db import connection

    # Messages (and unacknowledged ones) left by an earlier test must not reach this worker.
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.flushdb()
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datamind.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CONNECTIONS_FILE_ROOT": str(warehouse_root),
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "ALERTS_RETRY_BACKOFF_S": "0.3",
    }
    processes = CeleryProcesses(environment)
    yield processes
    processes.stop()
    broker.flushdb()


def wait_for(condition, *, timeout: float = 30, message: str = "") -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message or "timed out")
        time.sleep(0.1)


@pytest.fixture
def webhook_server():
    """A local HTTP receiver: answers the statuses queued in `.statuses` (then 200), keeps requests."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Receiver(ThreadingHTTPServer):
        statuses: list[int] = []
        requests: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.server.requests.append((dict(self.headers), body))
            status = self.server.statuses.pop(0) if self.server.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = Receiver(("127.0.0.1", 0), Handler)
    server.statuses, server.requests = [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
