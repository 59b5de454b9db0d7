import duckdb
import pytest

from apps.chat.models import ChatSession
from apps.connections.models import Connection, Engine
from apps.connections.services.catalogue import catalogue_refresh

SHOP_FILE = "shop.duckdb"


@pytest.fixture
def shop_root(tmp_path, settings):
    """A small DuckDB warehouse (regions and their sales) in the allowed folder."""
    root = tmp_path / "warehouses"
    root.mkdir()
    settings.CONNECTIONS_FILE_ROOT = root
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
    return root


@pytest.fixture
def shop_connection(personas, shop_root) -> Connection:
    connection = Connection.objects.create(
        org=personas.org, name="Shop", engine=Engine.DUCKDB, database=SHOP_FILE, created_by=personas.admin
    )
    return catalogue_refresh(connection_id=connection.pk)


@pytest.fixture
def chat_session(personas, shop_connection) -> ChatSession:
    return ChatSession.objects.create(org=personas.org, user=personas.analyst, connection=shop_connection)
