"""The fake LLM server itself, read with a plain HTTP client: the frames it sends must be what the
real APIs send, or the provider tests built on it would prove nothing."""

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datamind.lib.fake_llm import DEFAULT_API_KEY, FakeLLMServer, Reply

ANTHROPIC_HEADERS = {"x-api-key": DEFAULT_API_KEY, "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def post(
    server: FakeLLMServer, path: str, body: dict[str, Any], headers: dict[str, str]
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    return connection.getresponse()


def anthropic_request(server: FakeLLMServer, **body: Any) -> http.client.HTTPResponse:
    body = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]} | body
    return post(server, "/v1/messages", body, ANTHROPIC_HEADERS)


def openai_request(server: FakeLLMServer, **body: Any) -> http.client.HTTPResponse:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}]} | body
    return post(server, "/v1/chat/completions", body, OPENAI_HEADERS)


def sse_frames(raw: str) -> list[tuple[str | None, str]]:
    """(event, data) per frame; frames are separated by a blank line."""
    frames = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, ""
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data = value
        frames.append((event, data))
    return frames


# Anthropic Messages ------------------------------------------------------------------------------


def test_an_anthropic_stream_sends_the_events_anthropic_sends_in_their_order(server):
    server.script(chunks=["SELECT", " 1", ";"], input_tokens=42, output_tokens=7)

    response = anthropic_request(server, stream=True)

    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    assert response.getheader("Transfer-Encoding") == "chunked"
    frames = sse_frames(response.read().decode())
    assert [event for event, _ in frames] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = [json.loads(data) for _, data in frames]
    assert all(payload["type"] == event for (event, _), payload in zip(frames, payloads, strict=True))
    start = payloads[0]["message"]
    assert start["model"] == "claude-test"
    assert start["role"] == "assistant"
    assert start["content"] == []
    assert start["usage"]["input_tokens"] == 42
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    assert [payload["delta"] for payload in payloads[3:6]] == [
        {"type": "text_delta", "text": "SELECT"},
        {"type": "text_delta", "text": " 1"},
        {"type": "text_delta", "text": ";"},
    ]
    assert payloads[7]["delta"]["stop_reason"] == "end_turn"
    assert payloads[7]["usage"] == {"output_tokens": 7}


def test_an_anthropic_request_without_stream_gets_one_json_message(server):
    server.script("Hello there", input_tokens=5, output_tokens=2)

    response = anthropic_request(server)

    assert response.status == 200
    message = json.loads(response.read())
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "Hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 5, "output_tokens": 2}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_an_anthropic_error_has_anthropics_body_and_status(server, status, error_type):
    server.script(status=status)

    response = anthropic_request(server, stream=True)

    assert response.status == status
    body = json.loads(response.read())
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["error"]["message"]
    assert response.getheader("request-id")


def test_retryable_errors_ask_for_a_retry_after_a_few_milliseconds(server):
    server.script(status=529)
    server.script(status=400)

    assert anthropic_request(server).getheader("retry-after-ms") == "10"
    assert anthropic_request(server).getheader("retry-after-ms") is None


def test_a_stream_scripted_to_fail_is_cut_inside_its_chunked_body(server):
    server.script(chunks=["one ", "two ", "three"], fail_after_chunks=2)

    response = anthropic_request(server, stream=True)

    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    frames = sse_frames(cut.value.partial.decode())
    deltas = [json.loads(data)["delta"]["text"] for event, data in frames if event == "content_block_delta"]
    assert deltas == ["one ", "two "]
    assert "message_stop" not in [event for event, _ in frames]


def test_a_stream_scripted_with_an_error_type_ends_with_an_error_event(server):
    server.script(chunks=["one ", "two"], fail_after_chunks=1, error_type="overloaded_error")

    response = anthropic_request(server, stream=True)

    frames = sse_frames(response.read().decode())
    assert frames[-1][0] == "error"
    assert json.loads(frames[-1][1])["error"]["type"] == "overloaded_error"


# OpenAI Chat Completions -------------------------------------------------------------------------


def test_an_openai_stream_sends_data_lines_a_usage_chunk_and_done(server):
    server.script(chunks=["SELECT", " 1"], input_tokens=30, output_tokens=4)

    response = openai_request(server, stream=True, stream_options={"include_usage": True})

    assert response.status == 200
    raw = response.read().decode()
    assert "event:" not in raw
    frames = sse_frames(raw)
    assert frames[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in frames[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:3]]
    assert contents == ["SELECT", " 1"]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    assert all(chunk["usage"] is None for chunk in chunks[:4])


def test_an_openai_stream_without_include_usage_has_no_usage_chunk(server):
    server.script(chunks=["a", "b"])

    frames = sse_frames(openai_request(server, stream=True).read().decode())

    chunks = [json.loads(data) for _, data in frames[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_an_openai_request_without_stream_gets_one_json_completion(server):
    server.script("Hello", input_tokens=3, output_tokens=1)

    completion = json.loads(openai_request(server).read())

    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "Hello", "refusal": None}
    assert completion["usage"]["total_tokens"] == 4


def test_an_openai_error_has_openais_body(server):
    server.script(status=429)

    response = openai_request(server)

    assert response.status == 429
    error = json.loads(response.read())["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert set(error) == {"message", "type", "param", "code"}


def test_the_model_list_answers_in_the_format_of_the_api_that_asks(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/v1/models", headers=OPENAI_HEADERS)
    openai_list = json.loads(connection.getresponse().read())
    connection.request("GET", "/v1/models", headers=ANTHROPIC_HEADERS)
    anthropic_list = json.loads(connection.getresponse().read())

    assert openai_list["object"] == "list"
    assert [model["id"] for model in openai_list["data"]] == server.models
    assert anthropic_list["data"][0]["type"] == "model"
    assert anthropic_list["has_more"] is False


# Scripting and recording --------------------------------------------------------------------------


def test_scripted_replies_are_used_first_in_first_out_then_the_default(server):
    server.script("first")
    server.script("second")
    server.set_default("default")

    texts = [json.loads(anthropic_request(server).read())["content"][0]["text"] for _ in range(4)]

    assert texts == ["first", "second", "default", "default"]
    assert server.pending == 0


def test_a_responder_answers_from_the_request(server):
    server.set_default(lambda body: f"You said {body['messages'][-1]['content']}")

    message = json.loads(anthropic_request(server, messages=[{"role": "user", "content": "ping"}]).read())

    assert message["content"][0]["text"] == "You said ping"


def test_a_responder_can_answer_with_an_error(server):
    server.set_default(lambda body: Reply(status=529))

    assert anthropic_request(server).status == 529


def test_every_request_is_recorded_with_its_path_headers_and_body(server):
    anthropic_request(server, system="Be brief.").read()
    openai_request(server).read()

    first, second = server.wait_for_requests(2)
    assert first.path == "/v1/messages"
    assert first.api == "anthropic"
    assert first.body["system"] == "Be brief."
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.api_key == DEFAULT_API_KEY
    assert first.status == 200
    assert second.path == "/v1/chat/completions"
    assert second.api_key == DEFAULT_API_KEY


def test_a_wrong_key_is_refused_in_the_apis_format_and_uses_no_scripted_reply(server):
    server.script("kept for later")

    response = post(server, "/v1/messages", {"model": "m", "messages": []}, {"x-api-key": "wrong"})
    openai_response = post(server, "/v1/chat/completions", {"model": "m"}, {"Authorization": "Bearer wrong"})

    assert response.status == 401
    assert json.loads(response.read())["error"]["type"] == "authentication_error"
    assert openai_response.status == 401
    assert json.loads(openai_response.read())["error"]["code"] == "invalid_api_key"
    assert server.pending == 1
    assert [request.status for request in server.requests] == [401, 401]


def test_with_no_expected_key_any_key_is_accepted():
    with FakeLLMServer(api_key=None) as server:
        response = post(server, "/v1/chat/completions", {"model": "m", "messages": []}, {})

        assert response.status == 200


def test_waiting_for_requests_that_never_come_times_out(server):
    with pytest.raises(TimeoutError, match="got 0 request"):
        server.wait_for_requests(1, timeout=0.05)


def test_chunks_are_sent_one_by_one_with_the_scripted_delay(server):
    server.script(chunks=["a", "b", "c"], chunk_delay=0.15)

    response = anthropic_request(server, stream=True)
    arrivals = []
    # Raw lines, chunk framing included: read() would wait for the whole body.
    while b"message_stop" not in (line := response.fp.readline()):
        if line.startswith(b"data:") and b"text_delta" in line:
            arrivals.append((time.monotonic(), server.requests[0].chunks_sent))

    assert len(arrivals) == 3
    assert arrivals[0][1] < 3
    assert arrivals[2][0] - arrivals[0][0] >= 0.2
    assert server.requests[0].chunks_sent == 3


def test_the_server_notices_a_client_that_hangs_up_mid_stream(server):
    server.script(chunks=["a", "b", "c", "d"], chunk_delay=0.2)

    response = anthropic_request(server, stream=True)
    response.fp.readline()
    response.close()

    request = server.wait_for_disconnect(timeout=2)
    assert request.client_disconnected
    assert request.path == "/v1/messages"


def test_closing_the_server_frees_its_port():
    server = FakeLLMServer().start()
    port = server.port

    server.close()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
