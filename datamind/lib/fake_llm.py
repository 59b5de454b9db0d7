"""A local fake language-model server for tests and benchmarks.

Tests fake the LLM only at its HTTP boundary: the real `anthropic` and `openai` SDKs talk to this
server over a socket, in the providers' own wire formats, so streaming, error mapping, retries and
cancellation run through exactly the code that runs in production.

It speaks:
- Anthropic Messages: `POST /v1/messages`, streamed as server-sent events (`message_start`,
  `content_block_start`, `ping`, one `content_block_delta` per chunk, `content_block_stop`,
  `message_delta`, `message_stop`) or answered as one JSON message; errors in Anthropic's error body;
- OpenAI Chat Completions: `POST /v1/chat/completions`, streamed as `data:` chunks (a final usage
  chunk when `stream_options.include_usage`, then `data: [DONE]`) or as JSON; `GET /v1/models`.

    with FakeLLMServer() as server:
        server.script("SELECT 1", chunk_delay=0.05)      # the next request gets this reply
        server.set_default(lambda body: "It depends")    # every request after the queue runs dry
        ...                                              # point ANTHROPIC_BASE_URL at server.url
        server.wait_for_requests(1)
        assert server.requests[0].body["model"] == "claude-sonnet-5-5"

Streams use chunked transfer encoding as the real APIs do, so a reply scripted to fail mid-way
(`fail_after_chunks`) drops the connection inside a chunked body and the client sees a broken
stream, not a short but complete one.
"""

import json
import math
import re
import select
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

DEFAULT_API_KEY = "test-key"
DEFAULT_TEXT = "This is the fake model's answer."
DEFAULT_MODELS = ("claude-sonnet-5-5", "gpt-5.4-mini")
# Real servers ask for a retry after seconds; the fake asks for milliseconds so a test that
# exercises the SDKs' retries costs almost no time.
DEFAULT_RETRY_AFTER_MS = 10
# How often a paused stream looks at its socket for a client that went away.
_POLL_SECONDS = 0.02

Api = Literal["anthropic", "openai"]

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out.",
    "overloaded_error": "Overloaded",
}
# OpenAI's error bodies carry a type and a code rather than Anthropic's single type.
OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_STOP_REASONS_OPENAI = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


@dataclass
class Reply:
    """What the fake answers to one request.

    `chunks` are the text deltas streamed one by one (default: the text split after each word);
    `chunk_delay` is waited before each chunk; `fail_after_chunks` ends the stream after that many
    chunks, by dropping the connection or, with an `error_type`, by an error event as the real
    APIs send mid-stream. A `status` other than 200 answers with an error body instead.
    """

    text: str = DEFAULT_TEXT
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    fail_after_chunks: int | None = None
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    retry_after_ms: int | None = None
    stop_reason: str = "end_turn"

    def __post_init__(self) -> None:
        if self.chunks is not None:
            self.text = "".join(self.chunks)
        if self.status == 200 and self.error_type and self.fail_after_chunks is None:
            raise ValueError("A mid-stream error needs fail_after_chunks; an error reply needs a status.")

    @property
    def is_error(self) -> bool:
        return self.status != 200

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+\s*", self.text) or ([self.text] if self.text else [])

    def usage(self, body: dict[str, Any]) -> tuple[int, int]:
        """(input, output) tokens: the scripted ones, else about four characters a token."""
        input_tokens = self.input_tokens
        if input_tokens is None:
            input_tokens = max(1, math.ceil(len(_prompt_text(body)) / 4))
        output_tokens = self.output_tokens
        if output_tokens is None:
            output_tokens = max(1, math.ceil(len(self.text) / 4))
        return input_tokens, output_tokens


Responder = Callable[[dict[str, Any]], "str | Reply"]


@dataclass
class RecordedRequest:
    """One request the fake received, whatever it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    api: Api | None = None
    status: int = 0
    reply: Reply | None = None
    client_disconnected: bool = False
    # Text chunks written so far: a test can tell text that arrived while the stream was still
    # being written from text that arrived only at its end.
    chunks_sent: int = 0
    # The client's port: requests that share it came over one kept-alive connection.
    client_port: int = 0

    @property
    def api_key(self) -> str | None:
        """The key the client sent, from `x-api-key` (Anthropic) or `Authorization: Bearer` (OpenAI)."""
        if key := self.headers.get("x-api-key"):
            return key
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    @property
    def streamed(self) -> bool:
        return bool(self.body and self.body.get("stream"))


def _prompt_text(body: dict[str, Any]) -> str:
    """All text of a request's system prompt and messages, in either API's shape."""
    parts: list[str] = []

    def add(content: Any) -> None:
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(block.get("text", "") for block in content if isinstance(block, dict))

    add(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            add(message.get("content"))
    return "\n".join(parts)


class _TextFrame(str):
    """A frame that carries one text chunk."""


class _ClientGone(Exception):
    """The client closed its end of the connection."""


class _ServerClosing(Exception):
    """The fake is shutting down while a stream is still running."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 made the kernel drop the connections of clients that
    # connect all at once (bench/chat.py's 50 chats) and those retried a second later: a stall
    # a real API server, with a backlog in the hundreds, does not have.
    request_queue_size = 128

    def __init__(self, fake: "FakeLLMServer") -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's fully qualified name, a reverse DNS query
        # that can stall for seconds on a machine without DNS; the fake needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its keep-alive connection is routine here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for keep-alive and chunked streams, as the SDKs expect from the real APIs.
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1.0"
    # Send each streamed event at once (as real servers do), not after the client's delayed ACK.
    disable_nagle_algorithm = True
    # An idle keep-alive connection is let go after this long, so no handler thread lingers.
    timeout = 60
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request lines http.server writes to stderr."""

    # Routing -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        api: Api = "anthropic" if "anthropic-version" in self.headers else "openai"
        record = self._record(api=api, body=None)
        if path not in ("/v1/models", "/models"):
            self._send_error(record, 404, "not_found_error", f"No route for GET {path}.")
            return
        if not self.server.fake._key_accepted(record):
            self._send_error(record, 401, "authentication_error")
            return
        self._send_json(record, 200, self._models_body(api))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        api: Api | None = None
        if path == "/v1/messages":
            api = "anthropic"
        elif path.endswith("/chat/completions"):
            api = "openai"
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            record = self._record(api=api or "anthropic", body=None)
            self._send_error(record, 400, "invalid_request_error", "The request body is not valid JSON.")
            return
        record = self._record(api=api, body=body)
        if api is None:
            self._send_error(record, 404, "not_found_error", f"No route for POST {path}.")
            return
        fake = self.server.fake
        if not fake._key_accepted(record):
            self._send_error(record, 401, "authentication_error")
            return
        try:
            reply = fake._next_reply(body)
        except Exception as error:
            # A broken responder is a broken test: say so in the answer rather than hang the client.
            self._send_error(record, 500, "api_error", f"The fake's responder failed: {error!r}")
            return
        record.reply = reply
        if reply.is_error:
            self._send_error(record, reply.status, reply.error_type, reply.error_message, reply=reply)
        elif body.get("stream"):
            self._stream(record, reply, body)
        elif api == "anthropic":
            self._send_json(record, 200, self._anthropic_message(reply, body))
        else:
            self._send_json(record, 200, self._openai_completion(reply, body))

    def _record(self, *, api: Api | None, body: dict[str, Any] | None) -> RecordedRequest:
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            api=api,
            client_port=self.client_address[1],
        )
        self.server.fake._add_request(record)
        return record

    # Plain responses ---------------------------------------------------------------------------

    def _send_json(
        self,
        record: RecordedRequest,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._send_request_id(record.api)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_request_id(self, api: Api | None) -> None:
        if api == "openai":
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        else:
            self.send_header("request-id", f"req_{uuid.uuid4().hex}")

    def _send_error(
        self,
        record: RecordedRequest,
        status: int,
        error_type: str | None = None,
        message: str | None = None,
        *,
        reply: Reply | None = None,
    ) -> None:
        headers = {}
        if status == 429 or status >= 500:
            retry_after = reply.retry_after_ms if reply and reply.retry_after_ms is not None else None
            headers["retry-after-ms"] = str(DEFAULT_RETRY_AFTER_MS if retry_after is None else retry_after)
        payload: dict[str, Any]
        if record.api == "openai":
            payload = {"error": _openai_error(status, error_type, message)}
        else:
            payload = {
                "type": "error",
                "error": _anthropic_error(status, error_type, message),
                "request_id": f"req_{uuid.uuid4().hex}",
            }
        self._send_json(record, status, payload, headers)

    def _models_body(self, api: Api) -> dict[str, Any]:
        models = self.server.fake.models
        if api == "anthropic":
            data = [
                {"type": "model", "id": name, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}
                for name in models
            ]
            return {
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        created = 1_700_000_000
        listed = [{"id": name, "object": "model", "created": created, "owned_by": "fake"} for name in models]
        return {"object": "list", "data": listed}

    @staticmethod
    def _anthropic_message(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        input_tokens, output_tokens = reply.usage(body)
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    @staticmethod
    def _openai_completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        input_tokens, output_tokens = reply.usage(body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": _STOP_REASONS_OPENAI.get(reply.stop_reason, "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }

    # Streams -----------------------------------------------------------------------------------

    def _stream(self, record: RecordedRequest, reply: Reply, body: dict[str, Any]) -> None:
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._send_request_id(record.api)
        self.end_headers()
        events = self._anthropic_events if record.api == "anthropic" else self._openai_events
        try:
            for event in events(reply, body):
                if event is None:
                    self._drop_connection()
                    return
                if isinstance(event, float):
                    self._pause(event)
                    continue
                self._write_chunk(event.encode())
                if isinstance(event, _TextFrame):
                    record.chunks_sent += 1
            self._write_chunk(b"")
        except _ClientGone:
            record.client_disconnected = True
            self.close_connection = True
            self.server.fake._notify()
        except _ServerClosing:
            self._drop_connection()

    def _anthropic_events(self, reply: Reply, body: dict[str, Any]):
        """SSE frames as Anthropic sends them; a float means "wait", None means "drop the connection"."""
        input_tokens, output_tokens = reply.usage(body)
        message = self._anthropic_message(reply, body) | {
            "content": [],
            "stop_reason": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        yield _sse("message_start", {"type": "message_start", "message": message})
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        yield _sse("ping", {"type": "ping"})
        pieces = reply.pieces()
        for number, piece in enumerate(pieces):
            if reply.fail_after_chunks == number:
                break
            if reply.chunk_delay:
                yield reply.chunk_delay
            delta = {"type": "text_delta", "text": piece}
            yield _TextFrame(
                _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        if reply.fail_after_chunks is not None:
            if reply.error_type is None:
                yield None
                return
            error = _anthropic_error(0, reply.error_type, reply.error_message)
            yield _sse("error", {"type": "error", "error": error})
            return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})

    def _openai_events(self, reply: Reply, body: dict[str, Any]):
        """`data:` frames as OpenAI sends them; a float means "wait", None means "drop the connection"."""
        input_tokens, output_tokens = reply.usage(body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_fake",
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _data(base | {"choices": [choice]})

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        pieces = reply.pieces()
        for number, piece in enumerate(pieces):
            if reply.fail_after_chunks == number:
                break
            if reply.chunk_delay:
                yield reply.chunk_delay
            yield _TextFrame(chunk({"content": piece}))
        if reply.fail_after_chunks is not None:
            if reply.error_type is None:
                yield None
                return
            yield _data({"error": _openai_error(0, reply.error_type, reply.error_message)})
            return
        yield chunk({}, _STOP_REASONS_OPENAI.get(reply.stop_reason, "stop"))
        if include_usage:
            usage = {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            }
            yield _data(base | {"choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk; the empty one ends the body."""
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as error:
            raise _ClientGone from error

    def _pause(self, seconds: float) -> None:
        """Wait between chunks, watching the socket so a client that hangs up is noticed at once."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.server.fake._closing.is_set():
                raise _ServerClosing
            readable, _, _ = select.select([self.connection], [], [], min(remaining, _POLL_SECONDS))
            if not readable:
                continue
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if not peeked:
                raise _ClientGone
            # The client sent bytes mid-response (it should not); keep the remaining wait plain.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return

    def _drop_connection(self) -> None:
        """End mid-body: no terminating chunk, so the client sees an incomplete response."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _anthropic_error(status: int, error_type: str | None, message: str | None) -> dict[str, str]:
    kind = error_type or ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": kind, "message": message or ERROR_MESSAGES.get(kind, "Error")}


def _openai_error(status: int, error_type: str | None, message: str | None) -> dict[str, Any]:
    kind, code = OPENAI_ERRORS.get(status, ("server_error", None))
    if status == 401 and message is None:
        message = "Incorrect API key provided. You can find your API key in your account settings."
    return {
        "message": message or ERROR_MESSAGES.get(error_type or "", "The server had an error."),
        "type": error_type or kind,
        "param": None,
        "code": code,
    }


class FakeLLMServer:
    """A fake Anthropic + OpenAI-compatible server on 127.0.0.1 and a free port, in a thread.

    `api_key`: the key requests must carry (`x-api-key` or `Authorization: Bearer`); a request with
    another key is answered 401 in the API's own format and consumes no scripted reply. None
    accepts any key, or none.
    """

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        default: "str | Reply | Responder" = DEFAULT_TEXT,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
    ) -> None:
        self.api_key = api_key
        self.models = list(models)
        self._default: Reply | Responder = Reply(default) if isinstance(default, str) else default
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Life cycle ----------------------------------------------------------------------------------

    def start(self) -> "FakeLLMServer":
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; streams still running end at their next chunk or pause."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("The fake LLM server is not running; call start() first.")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL for Anthropic (ANTHROPIC_BASE_URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL for OpenAI-compatible clients (OPENAI_BASE_URL)."""
        return f"{self.url}/v1"

    # Scripting -----------------------------------------------------------------------------------

    def script(
        self,
        text: str = DEFAULT_TEXT,
        *,
        chunks: list[str] | None = None,
        chunk_delay: float = 0.0,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        fail_after_chunks: int | None = None,
        status: int = 200,
        error_type: str | None = None,
        error_message: str | None = None,
        retry_after_ms: int | None = None,
        stop_reason: str = "end_turn",
    ) -> Reply:
        """Queue the reply to the next request not yet answered (first in, first out)."""
        reply = Reply(
            text=text,
            chunks=chunks,
            chunk_delay=chunk_delay,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            fail_after_chunks=fail_after_chunks,
            status=status,
            error_type=error_type,
            error_message=error_message,
            retry_after_ms=retry_after_ms,
            stop_reason=stop_reason,
        )
        with self._changed:
            self._queue.append(reply)
        return reply

    def set_default(self, reply: "str | Reply | Responder" = DEFAULT_TEXT, **options: Any) -> None:
        """What to answer when the queue is empty: a text (with `script`'s options), a Reply, or a
        callable `responder(request_json) -> str | Reply` for answers that depend on the prompt."""
        if isinstance(reply, str):
            reply = Reply(reply, **options)
        elif options:
            raise TypeError("Options go with a text reply; build a Reply to pass them with it.")
        with self._changed:
            self._default = reply

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._changed:
            return len(self._queue)

    def reset(self) -> None:
        """Forget scripted replies and recorded requests (the default reply stays)."""
        with self._changed:
            self._queue.clear()
            self._requests.clear()

    # Inspection ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a copy)."""
        with self._changed:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(
                    f"The fake LLM server got {len(self._requests)} request(s), expected {count}."
                )
            return list(self._requests)

    def wait_for_disconnect(self, timeout: float = 5.0) -> RecordedRequest:
        """Block until a client hung up in the middle of a stream; return that request."""

        def gone() -> RecordedRequest | None:
            return next((request for request in self._requests if request.client_disconnected), None)

        with self._changed:
            if not self._changed.wait_for(lambda: gone() is not None, timeout=timeout):
                raise TimeoutError("No client went away in the middle of a stream.")
            request = gone()
            assert request is not None
            return request

    # Called by handler threads -------------------------------------------------------------------

    def _add_request(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _key_accepted(self, request: RecordedRequest) -> bool:
        return self.api_key is None or request.api_key == self.api_key

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._changed:
            if self._queue:
                return self._queue.popleft()
            default = self._default
        if isinstance(default, Reply):
            return default
        answer = default(body)
        return Reply(answer) if isinstance(answer, str) else answer


__all__ = ["DEFAULT_API_KEY", "FakeLLMServer", "RecordedRequest", "Reply"]
