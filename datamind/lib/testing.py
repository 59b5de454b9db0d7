"""Personas shared by every app's tests: an admin, an analyst and a viewer of one org, and an
outsider (an admin of another org). Imported by the root conftest as fixtures."""

from dataclasses import dataclass

from apps.accounts.models import Organization, User

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - the test personas' password


@dataclass
class Personas:
    org: Organization
    admin: User
    analyst: User
    viewer: User
    other_org: Organization
    outsider: User


# Subprocesses of a test (daphne, Celery): they share the test database, Redis and warehouse folder.
# Imports stay inside the functions: this module is imported by conftest before Django is set up.


def browser_sign_up(page, base: str, *, org: str, name: str, email: str, password: str) -> None:
    """Sign a new organisation up through the sign-up page, as a person would (Playwright)."""
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Organisation name").fill(org)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password again").fill(password)


VISIBILITY_TIMEOUT_S = 2
# A web process as production runs it (DEBUG off, a pool of Postgres connections), on plain HTTP.
# The pool's short timeout keeps tests of an unreachable database quick.
PRODUCTION_WEB = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "DATABASE_POOL_MAX_SIZE": "4",
    "DATABASE_POOL_TIMEOUT": "2",
    "TEST_SERVER_DATABASE_POOL": "true",
}


def subprocess_environment(**extra: str) -> dict[str, str]:
    """The environment of a server or worker started by a test: the pytest test database (not
    the development one), the test run's Redis (cache, channel layer and broker) and the
    warehouse folder the test set up. Read when the process starts, after the test's fixtures."""
    import os

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datamind.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CONNECTIONS_FILE_ROOT": str(settings.CONNECTIONS_FILE_ROOT),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **extra,
    }


def wait_for(condition, *, timeout: float = 30, message: str = "") -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message or "timed out")
        time.sleep(0.1)


def stop_processes(*processes) -> None:
    """Terminate each process still running (then kill it if it lingers)."""
    import subprocess

    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class AsgiServers:
    """Real daphne processes (HTTP and WebSockets) on loopback; `.start()` returns a base URL."""

    def __init__(self) -> None:
        self.processes: list = []

    def start(self, **environment: str) -> str:
        """`environment` is added to the server's (e.g. DATABASE_URL through a `TcpProxy`)."""
        import socket
        import subprocess
        import sys
        import time
        import urllib.request

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "datamind.asgi:application"],
            env=subprocess_environment(**environment),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/health/", timeout=1)  # noqa: S310 - our own loopback server
                return url
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = process.stderr.read().decode()[-2000:]
                    raise RuntimeError(f"daphne did not start: {output}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        stop_processes(*self.processes)


class CeleryProcesses:
    """A real Celery worker (and optionally beat) on the test database and Redis."""

    def __init__(self) -> None:
        self.worker = None
        self.beat = None

    def _start(self, *arguments: str, **extra: str):
        import subprocess
        import sys

        environment = subprocess_environment(
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S), ALERTS_RETRY_BACKOFF_S="0.3", **extra
        )
        return subprocess.Popen(  # noqa: S603 - fixed arguments, our own interpreter
            [sys.executable, "-m", "celery", "-A", "datamind", *arguments, "--loglevel=WARNING"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self, **environment: str) -> None:
        # One process (solo pool), so a SIGKILL takes the task down with the worker, as a crash would.
        self.worker = self._start(
            "worker", "--pool=solo", "--without-heartbeat", "--without-mingle", "--without-gossip",
            **environment,
        )  # fmt: skip

    def kill_worker(self) -> None:
        import signal
        import time

        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)
        # A starting worker hands back unacknowledged messages older than the visibility timeout
        # (later, only every 100 s): past it, the killed task is handed out again at once.
        time.sleep(VISIBILITY_TIMEOUT_S + 0.5)

    def start_beat(self, schedule_file: str, **environment: str) -> None:
        self.beat = self._start("beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                                "--schedule", schedule_file, "--max-interval", "1",
                                **environment)  # fmt: skip

    def stop(self) -> None:
        stop_processes(self.beat, self.worker)


class TcpProxy:
    """A TCP proxy on loopback in front of a server (Postgres, Redis, a warehouse), so a test can
    take the server away and bring it back without touching the real one, which the rest of the
    suite shares.

    `cut()` closes every connection through the proxy (each client sees the server hang up, as
    on a restart) and, until `restore()`, closes each new connection as soon as it is accepted.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import socket
        import threading

        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"tcp-proxy-{self.port}").start()

    def url(self, url: str) -> str:
        """`url` (postgres://..., redis://...) with its host and port replaced by the proxy's."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._cut:
                    _close(client, server)
                    continue
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with self._lock:
            self._sockets -= {source, sink}
        _close(source, sink)


def _close(*sockets) -> None:
    import contextlib
    import socket

    for sock in sockets:
        # shutdown() first: it wakes a thread blocked reading the socket, which close() alone does not.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
