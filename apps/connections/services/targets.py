"""Where a connection may point. A connection definition is treated as code.

The worst incidents in peer BI tools came through connection strings (libpq `options=-c`,
`passfile`, SQLite/H2 URLs reaching the server's own files), not through SELECTs. So: structured
fields only; an allowlist of options; file engines confined to one folder; no link-local or
metadata addresses; never DataMind's own database. The same checks run on every path that
creates or edits a connection, and again before every test or query (DNS may have changed).
"""

import ipaddress
import re
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.connections.models import OPTION_DEFAULTS, SSL_MODES, Engine

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,200}$")
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_OPTION_BOUNDS = {
    "statement_timeout_s": (1, 600),
    "connect_timeout_s": (1, 60),
    "row_cap": (1, 100_000),
    "cache_ttl_s": (0, 86_400),
}
_FILE_SUFFIXES = {Engine.SQLITE: (".sqlite", ".sqlite3", ".db"), Engine.DUCKDB: (".duckdb", ".db")}


def connection_options_clean(options: dict[str, Any] | None) -> dict[str, Any]:
    """Only known options, each of the right type and within bounds."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ValidationError(
            {"options": f"Unknown option(s): {', '.join(unknown)}. Allowed: {', '.join(OPTION_DEFAULTS)}."}
        )
    cleaned: dict[str, Any] = {}
    for name, value in options.items():
        if value in (None, ""):
            continue
        if name == "sslmode":
            if value not in SSL_MODES:
                raise ValidationError({"options": f"SSL mode must be one of: {', '.join(SSL_MODES)}."})
        elif name == "schema":
            if not _IDENTIFIER.match(str(value)):
                raise ValidationError({"options": "The default schema must be a plain name such as public."})
        else:
            low, high = _OPTION_BOUNDS[name]
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValidationError({"options": f"{name} must be a whole number."})
            if not low <= value <= high:
                raise ValidationError({"options": f"{name} must be between {low} and {high}."})
        cleaned[name] = value
    return cleaned


def connection_file_path(*, engine: str, database: str) -> Path:
    """The absolute path of a SQLite/DuckDB file, which must sit inside CONNECTIONS_FILE_ROOT."""
    name = (database or "").strip()
    if not name:
        raise ValidationError({"database": "Enter the file name of the database."})
    if name == ":memory:" or name.lower().startswith("file:") or "\x00" in name:
        raise ValidationError({"database": "Only a file name inside the warehouse folder is allowed."})
    if "/" in name or "\\" in name or ".." in name or Path(name).is_absolute():
        raise ValidationError(
            {"database": "Give just the file name (no folders): files must be in the warehouse folder."}
        )
    if not _FILE_NAME.match(name):
        raise ValidationError({"database": "The file name may use letters, digits, spaces, dots, - and _."})
    suffixes = _FILE_SUFFIXES[Engine(engine)]
    if not name.lower().endswith(suffixes):
        raise ValidationError(
            {"database": f"A {Engine(engine).label} file name ends in {' or '.join(suffixes)}."}
        )
    root = Path(settings.CONNECTIONS_FILE_ROOT).resolve()
    path = (root / name).resolve()
    # resolve() follows symlinks, so a link pointing out of the folder ends up outside it here.
    if path.parent != root:
        raise ValidationError({"database": "This file points outside the warehouse folder."})
    if not path.is_file():
        raise ValidationError({"database": f"There is no file named “{name}” in the warehouse folder."})
    return path


def _addresses(host: str, port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationError({"host": f"The host name “{host}” could not be resolved."})
    return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}


def _same_address(a: ipaddress._BaseAddress, b: ipaddress._BaseAddress) -> bool:
    # localhost, 127.0.0.1, ::1 and a Unix socket all reach the same server.
    return a == b or (a.is_loopback and b.is_loopback)


def _own_database_targets() -> list[tuple[str, int, str]]:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"] and "mysql" not in db["ENGINE"]:
        return []
    default_port = 5432 if "postgresql" in db["ENGINE"] else 3306
    host = db.get("HOST") or "localhost"
    if host.startswith("/"):
        host = "localhost"
    return [(host, int(db.get("PORT") or default_port), db["NAME"])]


def _check_host_lists(host: str, addresses: set) -> None:
    deny, allow = settings.CONNECTIONS_HOST_DENYLIST, settings.CONNECTIONS_HOST_ALLOWLIST

    def matches(entry: str) -> bool:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return host.lower().rstrip(".") == entry.lower().rstrip(".")
        return any(address in network for address in addresses)

    if any(matches(entry) for entry in deny):
        raise ValidationError({"host": "Connections to this host are not allowed by your administrator."})
    if allow and not any(matches(entry) for entry in allow):
        raise ValidationError({"host": "This host is not on the list of hosts connections may reach."})


def connection_network_check(*, engine: str, host: str, port: int | None, database: str) -> None:
    host = (host or "").strip()
    if not host:
        raise ValidationError({"host": "Enter the database server's host name or IP address."})
    if host.startswith("/") or "@" in host or "=" in host or " " in host or ":" in host.strip("[]"):
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise ValidationError(
                {"host": "Enter a host name or an IP address only (no URL, socket or options)."}
            )
    elif not _HOSTNAME.match(host):
        raise ValidationError(
            {"host": "Enter a host name or an IP address only (no URL, socket or options)."}
        )
    port = port or {"postgresql": 5432, "mysql": 3306}[engine]
    if not 1 <= port <= 65535:
        raise ValidationError({"port": "The port must be between 1 and 65535."})
    addresses = _addresses(host.strip("[]"), port)
    for address in addresses:
        if any(address in net for net in _LINK_LOCAL) or address.is_multicast or address.is_unspecified:
            raise ValidationError(
                {"host": "Link-local and metadata addresses (169.254.0.0/16) are not allowed."}
            )
    _check_host_lists(host, addresses)
    for own_host, own_port, own_name in _own_database_targets():
        own_addresses = _addresses(own_host, own_port)
        if (
            own_port == port
            and own_name == database
            and any(_same_address(a, b) for a in addresses for b in own_addresses)
        ):
            raise ValidationError({"database": "A connection cannot point at DataMind's own database."})


def connection_target_validate(
    *, engine: str, host: str, port: int | None, database: str, username: str, options: dict | None
) -> dict[str, Any]:
    """Check where a connection points; return its cleaned options. Raises ValidationError."""
    if engine not in Engine.values:
        raise ValidationError({"engine": "Choose a database engine."})
    cleaned = connection_options_clean(options)
    if engine in (Engine.SQLITE, Engine.DUCKDB):
        if host or port or username:
            raise ValidationError(
                {"host": "File databases take only a file name: leave host, port and user empty."}
            )
        connection_file_path(engine=engine, database=database)
    else:
        if not (database or "").strip():
            raise ValidationError({"database": "Enter the database name."})
        connection_network_check(engine=engine, host=host, port=port, database=database.strip())
    return cleaned
