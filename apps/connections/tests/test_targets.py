import os

import pytest
from django.core.exceptions import ValidationError

from apps.connections.services.targets import (
    connection_file_path,
    connection_options_clean,
    connection_target_validate,
)


@pytest.fixture
def warehouse_root(tmp_path, settings):
    root = tmp_path / "warehouses"
    root.mkdir()
    settings.CONNECTIONS_FILE_ROOT = root
    (root / "shop.duckdb").write_bytes(b"")
    (root / "shop.sqlite").write_bytes(b"")
    return root


def _network(**overrides):
    values = {
        "engine": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "warehouse",
        "username": "reader",
        "options": {},
    }
    return connection_target_validate(**{**values, **overrides})


def _refusal(**overrides) -> str:
    with pytest.raises(ValidationError) as caught:
        _network(**overrides)
    return " ".join(caught.value.messages)


class TestFileEngines:
    def test_a_file_inside_the_warehouse_folder_is_accepted(self, warehouse_root):
        path = connection_file_path(engine="duckdb", database="shop.duckdb")
        assert path == (warehouse_root / "shop.duckdb").resolve()

    @pytest.mark.parametrize(
        "database",
        [
            "../shop.duckdb",
            "/etc/passwd.duckdb",
            "sub/shop.duckdb",
            "..\\shop.duckdb",
            ":memory:",
            "file:shop.duckdb?mode=rw",
            "shop\x00.duckdb",
            "",
        ],
    )
    def test_paths_leaving_the_folder_or_special_names_are_refused(self, warehouse_root, database):
        with pytest.raises(ValidationError):
            connection_file_path(engine="duckdb", database=database)

    def test_a_symlink_pointing_out_of_the_folder_is_refused(self, warehouse_root, tmp_path):
        outside = tmp_path / "secret.duckdb"
        outside.write_bytes(b"")
        os.symlink(outside, warehouse_root / "link.duckdb")
        with pytest.raises(ValidationError, match="outside the warehouse folder"):
            connection_file_path(engine="duckdb", database="link.duckdb")

    def test_a_missing_file_is_refused_with_its_name(self, warehouse_root):
        with pytest.raises(ValidationError, match="no file named “other.duckdb”"):
            connection_file_path(engine="duckdb", database="other.duckdb")

    def test_a_file_of_the_wrong_kind_is_refused(self, warehouse_root):
        with pytest.raises(ValidationError, match="ends in"):
            connection_file_path(engine="sqlite", database="shop.duckdb")

    def test_file_engines_take_no_host_or_user(self, warehouse_root):
        with pytest.raises(ValidationError, match="only a file name"):
            connection_target_validate(
                engine="sqlite",
                host="db.example.com",
                port=None,
                database="shop.sqlite",
                username="",
                options={},
            )


class TestNetworkEngines:
    def test_a_plain_host_is_accepted(self):
        assert _network() == {}

    @pytest.mark.parametrize("host", ["169.254.169.254", "169.254.1.1", "[fe80::1]"])
    def test_link_local_and_metadata_addresses_are_refused(self, host):
        assert "Link-local" in _refusal(host=host)

    @pytest.mark.parametrize(
        "host",
        [
            "/var/run/postgresql",
            "db.example.com port=5433",
            "user@db.example.com",
            "postgres://db.example.com",
            "host=evil",
        ],
    )
    def test_sockets_urls_and_smuggled_options_in_the_host_are_refused(self, host):
        assert "host name or an IP address only" in _refusal(host=host)

    def test_an_unresolvable_host_is_refused_clearly(self):
        assert "could not be resolved" in _refusal(host="no-such-host.invalid")

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
    def test_datamind_own_database_is_refused_however_it_is_named(self, host, settings):
        own = settings.DATABASES["default"]
        message = _refusal(host=host, port=int(own.get("PORT") or 5432), database=own["NAME"])
        assert "DataMind's own database" in message

    def test_another_database_on_the_same_server_is_allowed(self, settings):
        own = settings.DATABASES["default"]
        assert _network(host="127.0.0.1", port=int(own.get("PORT") or 5432), database="warehouse") == {}

    def test_the_deny_list_refuses_a_host(self, settings):
        settings.CONNECTIONS_HOST_DENYLIST = ["127.0.0.0/8"]
        assert "not allowed by your administrator" in _refusal()

    def test_the_allow_list_refuses_every_other_host(self, settings):
        settings.CONNECTIONS_HOST_ALLOWLIST = ["10.0.0.0/8"]
        assert "not on the list" in _refusal()


class TestOptions:
    def test_known_options_are_kept_with_their_types(self):
        cleaned = connection_options_clean(
            {"sslmode": "require", "statement_timeout_s": "15", "schema": "sales"}
        )
        assert cleaned == {"sslmode": "require", "statement_timeout_s": 15, "schema": "sales"}

    @pytest.mark.parametrize("name", ["options", "passfile", "sslrootcert", "host", "service"])
    def test_driver_options_outside_the_allowlist_are_refused(self, name):
        with pytest.raises(ValidationError, match="Unknown option"):
            connection_options_clean({name: "-c default_transaction_read_only=off"})

    @pytest.mark.parametrize(
        "options",
        [
            {"sslmode": "yes"},
            {"schema": "public; DROP TABLE x"},
            {"statement_timeout_s": 0},
            {"row_cap": 10**9},
            {"cache_ttl_s": "soon"},
        ],
    )
    def test_bad_option_values_are_refused(self, options):
        with pytest.raises(ValidationError):
            connection_options_clean(options)
