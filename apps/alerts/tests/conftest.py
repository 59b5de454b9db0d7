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
