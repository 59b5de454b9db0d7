"""A small HTTP/1.1 client over asyncio with kept-alive connections, for load on loopback.

Browsers keep their connections to a site open and send many requests over each; a client that
opens a connection per request (urllib) measures connection set-up on both sides, and a thread
per simulated user spends the benchmark's own CPU on the GIL. One event loop with plain stream
reads costs the client a few tens of microseconds a request, so nearly all of the machine is left
to the server being measured.
"""

import asyncio
import time
from urllib.parse import urlsplit


class HTTPError(RuntimeError):
    pass


class Connection:
    """One kept-alive connection; requests on it go one after another, as on a browser's."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[float, bytes]:
        """GET `path`: the milliseconds from sending to the last byte of the body, and the body."""
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in (self.headers | (headers or {})).items())]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        started = time.perf_counter()
        reused = self._writer is not None
        try:
            status, body, keep_alive = await self._exchange(request)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            # The server closed the connection while it sat idle (uvicorn's keep-alive timeout is
            # 5 s): as a browser does, send the request again on a new connection.
            await self.close()
            status, body, keep_alive = await self._exchange(request)
        elapsed = (time.perf_counter() - started) * 1000
        if not keep_alive:
            await self.close()
        if status != 200:
            raise HTTPError(f"GET {path} answered {status}")
        return elapsed, body

    async def _exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(request)
        return await self._response()

    async def _response(self) -> tuple[int, bytes, bool]:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            body = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = await self._reader.read()
        return status, body, fields.get("connection", "").lower() != "close"

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        chunks = []
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        await self._reader.readuntil(b"\r\n")  # the last chunk's (empty) trailer
        return b"".join(chunks)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None
