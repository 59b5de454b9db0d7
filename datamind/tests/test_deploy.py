"""deploy/: the compose file has the production layout, and nginx accepts its configuration and
serves the app through it: HTTPS redirect, HSTS, static files, pages and WebSockets."""

import asyncio
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect
from websockets.typing import Origin

from apps.accounts.models import Role
from apps.accounts.tests.factories import UserFactory
from apps.chat.models import ChatSession
from apps.connections.tests.factories import ConnectionFactory

DEPLOY = Path(settings.BASE_DIR) / "deploy"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


def test_compose_runs_two_web_replicas_a_worker_exactly_one_beat_and_nginx(services):
    commands = {name: " ".join(service.get("command", [])) for name, service in services.items()}

    assert {"postgres", "redis", "web1", "web2", "worker", "beat", "nginx"} <= set(services)
    assert [name for name, command in commands.items() if "beat" in command] == ["beat"]
    assert "worker" in commands["worker"]
    assert set(services["nginx"]["depends_on"]) == {"web1", "web2"}


def test_the_image_runs_as_a_non_root_user_with_a_health_check():
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    assert dockerfile.count("FROM ") >= 2  # multi-stage
    assert "USER datamind" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/health/" in dockerfile
    assert "collectstatic" in dockerfile


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LoopbackNginx:
    """deploy/nginx.conf made to run here: loopback ports, a self-signed certificate, files in a
    temporary folder, both upstream replicas pointed at one local server."""

    binary: str
    folder: Path
    http_port: int
    https_port: int

    @property
    def config(self) -> Path:
        return self.folder / "nginx.conf"

    def run(self, *args: str) -> subprocess.CompletedProcess:
        command = [
            self.binary,
            "-p",
            str(self.folder),
            "-c",
            str(self.config),
            "-e",
            str(self.folder / "error.log"),
        ]
        return subprocess.run([*command, *args], capture_output=True, text=True, check=False)  # noqa: S603


def loopback_nginx(folder: Path, upstream_port: int) -> LoopbackNginx:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    openssl = shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx or openssl is not installed (`make test` installs nginx when run as root)")
    certs, static = folder / "certs", folder / "static"
    certs.mkdir()
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_text("body { color: black; }\n")
    subprocess.run(  # noqa: S603 - fixed arguments
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test"]
        + ["-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True,
        capture_output=True,
    )
    http_port, https_port = _free_port(), _free_port()
    config = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        # Run as root, nginx's workers would become `nobody` and could not read the test's folder.
        "user nginx;": "user root;" if os.geteuid() == 0 else "",
        "/etc/nginx/certs": str(certs),
        "/srv/datamind/static/": f"{static}/",
        "/var/run/nginx.pid": str(folder / "nginx.pid"),
        "/var/log/nginx/": f"{folder}/",
        "server web1:8000": f"server 127.0.0.1:{upstream_port}",
        "server web2:8000": f"server 127.0.0.1:{upstream_port}",
        "listen [::]:80 default_server;": "",
        "listen [::]:443 ssl http2 default_server;": "",
        "listen 80 default_server;": f"listen 127.0.0.1:{http_port} default_server;",
        "listen 443 ssl http2 default_server;": f"listen 127.0.0.1:{https_port} ssl http2 default_server;",
        # Temporary files where this (possibly unprivileged) process may write.
        "http {": "http {\n"
        + "".join(
            f"    {kind}_temp_path {folder}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
    }
    for old, new in replacements.items():
        assert old in config, f"deploy/nginx.conf no longer has {old!r}: update this test"
        config = config.replace(old, new)
    (folder / "nginx.conf").write_text(config)
    return LoopbackNginx(nginx, folder, http_port, https_port)


@dataclass
class Fetched:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(connection: http.client.HTTPConnection, path: str) -> Fetched:
    """One GET, redirects not followed."""
    connection.request("GET", path)
    response = connection.getresponse()
    return Fetched(response.status, response.headers, response.read())


def test_nginx_accepts_the_configuration(tmp_path: Path):
    nginx = loopback_nginx(tmp_path, upstream_port=8001)

    result = nginx.run("-t")

    assert result.returncode == 0, result.stderr


def test_nginx_redirects_to_https_proxies_pages_and_websockets_and_serves_static_files(
    tmp_path: Path, asgi_live_server: str
):
    analyst = UserFactory(role=Role.ANALYST)
    chat = ChatSession.objects.create(
        org=analyst.org, user=analyst, connection=ConnectionFactory(org=analyst.org)
    )
    browser = Client()
    browser.force_login(analyst)
    session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    nginx = loopback_nginx(tmp_path, upstream_port=int(asgi_live_server.rsplit(":", 1)[1]))
    started = nginx.run()
    assert started.returncode == 0, started.stderr
    try:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        base = f"https://127.0.0.1:{nginx.https_port}"
        redirect = fetch(http.client.HTTPConnection("127.0.0.1", nginx.http_port), "/health/?x=1")
        secure = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=insecure)
        health, static, login = (
            fetch(secure, path) for path in ("/health/", "/static/css/app.css", "/accounts/login/")
        )

        assert redirect.status == 301
        assert redirect.headers["Location"] == "https://127.0.0.1/health/?x=1"
        assert health.status == 200  # a wrong Host header (DisallowedHost) would be a 400
        assert json.loads(health.body)["status"] == "ok"
        assert health.headers.get_all("Strict-Transport-Security") == [
            "max-age=31536000; includeSubDomains; preload"
        ]
        assert static.body == b"body { color: black; }\n"
        assert static.headers.get_all("Cache-Control") == ["public, max-age=31536000, immutable"]
        assert static.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]

        # A logged-in analyst's chat socket is upgraded through nginx and accepted by the app.
        async def handshake() -> int:
            uri = f"wss://127.0.0.1:{nginx.https_port}/ws/chat/{chat.pk}/"
            headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"}
            async with connect(uri, ssl=insecure, origin=Origin(base), additional_headers=headers) as socket_:
                return socket_.response.status_code

        assert asyncio.run(handshake()) == 101
    finally:
        nginx.run("-s", "stop")
