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
        org=personas.org, name="Metrics", engine=Engine.DUCKDB, database=WAREHOUSE_FILE, created_by=personas.admin
    )
