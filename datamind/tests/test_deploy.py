"""deploy/: the compose file has the production layout, and nginx accepts its configuration."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

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


def test_nginx_accepts_the_configuration(tmp_path: Path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    openssl = shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx or openssl is not installed (`make test` installs nginx when run as root)")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test",
            "-keyout",
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    # The compose service names do not resolve here, and the test need not run as root.
    config = (DEPLOY / "nginx.conf").read_text()
    config = config.replace("/etc/nginx/certs", str(certs)).replace("user nginx;", "")
    config = config.replace("server web1:8000", "server 127.0.0.1:8001").replace(
        "server web2:8000", "server 127.0.0.1:8002"
    )
    config = config.replace("/var/run/nginx.pid", str(tmp_path / "nginx.pid"))
    config = config.replace("/var/log/nginx/", str(tmp_path) + "/")
    (tmp_path / "nginx.conf").write_text(config)

    result = subprocess.run(  # noqa: S603 - our own configuration
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
