"""The Anthropic and OpenAI-compatible providers, driving the real SDKs against the fake server."""

import asyncio
import socket
import threading
import time

import pytest

import apps.chat.providers.builtin  # noqa: F401 - see test_llm_settings: every provider registered
from apps.chat.providers.anthropic import AnthropicProvider
from apps.chat.providers.base import Prompt, ProviderError, QuestionContext, Usage, loop_client
from apps.chat.providers.openai import OpenAIProvider
from datamind.lib.fake_llm import DEFAULT_API_KEY, FakeLLMServer

SYSTEM = "You write PostgreSQL for the schema below."
MESSAGES = [
    {"role": "user", "content": "How many orders last month?"},
    {"role": "assistant", "content": "SELECT count(*) FROM orders"},
    {"role": "user", "content": "And by region?"},
]


def make_prompt(max_tokens: int = 700) -> Prompt:
    context = QuestionContext(question="And by region?", dialect="postgres", tables=[])
    return Prompt(task="sql", system=SYSTEM, messages=list(MESSAGES), context=context, max_tokens=max_tokens)


async def collect(provider, prompt: Prompt | None = None) -> list[str]:
    return [text async for text in provider.stream(prompt or make_prompt())]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["anthropic", "openai"])
def provider(request, fake_llm):
    """Each behaviour both providers share, run against each."""
    if request.param == "anthropic":
        return AnthropicProvider(model="claude-test")
    return OpenAIProvider(model="gpt-test")


# Both providers ------------------------------------------------------------------------------------


async def test_text_arrives_in_the_chunks_the_server_sent_as_they_are_sent(provider, fake_llm):
    chunks = ["SELECT region,", " count(*)", " FROM orders", " GROUP BY region"]
    fake_llm.script(chunks=chunks, chunk_delay=0.15)

    arrivals: list[tuple[float, str, int]] = []
    async for text in provider.stream(make_prompt()):
        arrivals.append((time.monotonic(), text, fake_llm.requests[0].chunks_sent))

    assert [text for _, text, _ in arrivals] == chunks
    # The first chunk was in our hands while the server still had the others to write...
    assert arrivals[0][2] < len(chunks)
    # ...and the chunks came one by one over the time the server took, not all at the end.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2


async def test_usage_is_what_the_server_reported(provider, fake_llm):
    fake_llm.script("SELECT 1", input_tokens=321, output_tokens=54)

    await collect(provider)

    assert provider.usage == Usage(input_tokens=321, output_tokens=54)


async def test_a_refused_key_is_an_error_that_retrying_cannot_fix(provider, fake_llm):
    fake_llm.api_key = "another-key"

    with pytest.raises(ProviderError) as raised:
        await collect(provider)

    assert not raised.value.retryable
    assert "key was refused" in raised.value.detail
    assert len(fake_llm.requests) == 1


async def test_a_server_error_is_retried_once_then_reported_as_retryable(provider, fake_llm):
    fake_llm.set_default(status=500)

    with pytest.raises(ProviderError) as raised:
        await collect(provider)

    assert raised.value.retryable
    assert "internal error (HTTP 500)" in raised.value.detail
    assert len(fake_llm.requests) == 2


async def test_a_rate_limit_that_passes_is_absorbed_by_the_retry(provider, fake_llm):
    fake_llm.script(status=429)
    fake_llm.script("SELECT 1")

    assert "".join(await collect(provider)) == "SELECT 1"
    assert len(fake_llm.requests) == 2


async def test_a_bad_request_is_not_retryable(provider, fake_llm):
    fake_llm.script(status=400, error_message="max_tokens: too large")

    with pytest.raises(ProviderError) as raised:
        await collect(provider)

    assert not raised.value.retryable
    assert "max_tokens: too large" in raised.value.detail
    assert len(fake_llm.requests) == 1


async def test_a_dropped_stream_yields_its_start_then_a_retryable_error(provider, fake_llm):
    fake_llm.script(
        chunks=["SELECT region", ", count(*)", " FROM orders"], fail_after_chunks=2, input_tokens=99
    )
    received: list[str] = []

    with pytest.raises(ProviderError) as raised:
        async for text in provider.stream(make_prompt()):
            received.append(text)

    assert received == ["SELECT region", ", count(*)"]
    assert raised.value.retryable
    assert "stopped answering mid-way" in raised.value.detail


async def test_closing_the_stream_mid_way_closes_the_http_connection(provider, fake_llm):
    fake_llm.script(chunks=["one", " two", " three", " four"], chunk_delay=0.2)

    stream = provider.stream(make_prompt())
    assert await anext(stream) == "one"
    await stream.aclose()

    request = await asyncio.to_thread(fake_llm.wait_for_disconnect, 2.0)
    assert request.client_disconnected


async def test_cancelling_the_consumer_closes_the_http_connection(provider, fake_llm):
    fake_llm.script(chunks=["one", " two", " three"], chunk_delay=0.3)
    first_text = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(make_prompt()):
            first_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_text.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    request = await asyncio.to_thread(fake_llm.wait_for_disconnect, 2.0)
    assert request.client_disconnected


async def test_a_server_that_cannot_be_reached_is_a_retryable_error(provider):
    provider.base_url = f"http://127.0.0.1:{closed_port()}" + ("/v1" if provider.name == "openai" else "")

    with pytest.raises(ProviderError) as raised:
        await collect(provider)

    assert raised.value.retryable
    assert "Could not reach" in raised.value.detail


async def test_a_model_that_goes_quiet_mid_answer_times_out_as_retryable(provider, fake_llm, settings):
    settings.LLM_TIMEOUT = 0.3
    fake_llm.script(chunks=["SELECT", " 1"], chunk_delay=1.0)

    with pytest.raises(ProviderError) as raised:
        await collect(provider)

    assert raised.value.retryable


async def test_the_key_given_by_the_organisation_wins_over_the_environment(provider, fake_llm):
    fake_llm.api_key = "org-key"
    provider.api_key = "org-key"

    await collect(provider)

    assert fake_llm.requests[0].api_key == "org-key"


# Anthropic ------------------------------------------------------------------------------------------


async def test_anthropic_sends_our_model_system_prompt_and_messages(fake_llm):
    provider = AnthropicProvider(model="claude-test")

    await collect(provider, make_prompt(max_tokens=700))

    (request,) = fake_llm.requests
    assert request.path.startswith("/v1/messages")
    assert request.api_key == DEFAULT_API_KEY
    assert request.body["model"] == "claude-test"
    assert request.body["system"] == SYSTEM
    assert request.body["messages"] == MESSAGES
    assert request.body["max_tokens"] == 700
    assert request.body["stream"] is True


async def test_anthropic_uses_the_default_model_from_the_settings(fake_llm, settings):
    settings.ANTHROPIC_MODEL = "claude-default"

    provider = AnthropicProvider()
    await collect(provider)

    assert fake_llm.requests[0].body["model"] == "claude-default"


async def test_anthropic_overloaded_is_retryable(fake_llm):
    fake_llm.set_default(status=529)

    with pytest.raises(ProviderError) as raised:
        await collect(AnthropicProvider())

    assert raised.value.retryable
    assert "overloaded" in raised.value.detail


async def test_anthropic_an_error_event_mid_stream_is_retryable(fake_llm):
    fake_llm.script(
        chunks=["SELECT", " 1"], fail_after_chunks=1, error_type="overloaded_error", input_tokens=12
    )
    provider = AnthropicProvider()
    received: list[str] = []

    with pytest.raises(ProviderError) as raised:
        async for text in provider.stream(make_prompt()):
            received.append(text)

    assert received == ["SELECT"]
    assert raised.value.retryable
    assert "mid-way" in raised.value.detail
    assert provider.usage.input_tokens == 12


async def test_anthropic_an_unknown_model_is_not_retryable(fake_llm):
    fake_llm.script(status=404, error_message="model: claude-nope")

    with pytest.raises(ProviderError) as raised:
        await collect(AnthropicProvider(model="claude-nope"))

    assert not raised.value.retryable
    assert "claude-nope" in raised.value.detail


async def test_anthropic_test_makes_a_one_token_request(fake_llm):
    message = await AnthropicProvider(model="claude-test").test()

    assert message == "Anthropic claude-test answered."
    (request,) = fake_llm.requests
    assert request.body["max_tokens"] == 1
    assert not request.streamed


async def test_anthropic_test_reports_a_refused_key(fake_llm):
    fake_llm.api_key = "another-key"

    with pytest.raises(ProviderError, match="The Anthropic API key was refused"):
        await AnthropicProvider().test()


# OpenAI-compatible ------------------------------------------------------------------------------------


async def test_openai_sends_the_system_prompt_first_and_asks_for_usage(fake_llm):
    await collect(OpenAIProvider(model="gpt-test"), make_prompt(max_tokens=300))

    (request,) = fake_llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.api_key == DEFAULT_API_KEY
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [{"role": "system", "content": SYSTEM}, *MESSAGES]
    assert request.body["max_tokens"] == 300
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


async def test_openai_asks_openai_itself_for_max_completion_tokens_and_other_servers_for_max_tokens():
    official = OpenAIProvider(api_key="key", base_url="https://api.openai.com/v1")._client()
    self_hosted = OpenAIProvider(api_key="key", base_url="http://llm.internal:8000/v1")._client()

    assert OpenAIProvider._token_limit(official, 5) == {"max_completion_tokens": 5}
    assert OpenAIProvider._token_limit(self_hosted, 5) == {"max_tokens": 5}
    await official.close()
    await self_hosted.close()


async def test_openai_without_any_key_still_talks_to_a_self_hosted_server(fake_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    fake_llm.api_key = None

    assert await collect(OpenAIProvider(model="local"))

    assert fake_llm.requests[0].api_key == "not-needed"


async def test_openai_an_error_chunk_mid_stream_is_retryable(fake_llm):
    fake_llm.script(chunks=["SELECT", " 1"], fail_after_chunks=1, error_type="server_error")

    with pytest.raises(ProviderError) as raised:
        await collect(OpenAIProvider())

    assert raised.value.retryable
    assert "mid-way" in raised.value.detail


async def test_openai_test_names_the_server_and_model(fake_llm):
    message = await OpenAIProvider(model="gpt-test").test()

    assert message == f"The OpenAI-compatible server at {fake_llm.openai_base_url}/ answered with gpt-test."
    assert fake_llm.requests[0].body["max_tokens"] == 1


async def test_the_fake_server_can_be_used_without_the_fixture():
    with FakeLLMServer(api_key="own-key") as server:
        server.script(chunks=["a", "b"])
        provider = OpenAIProvider(model="m", api_key="own-key", base_url=server.openai_base_url)

        assert await collect(provider) == ["a", "b"]


# One client per event loop -------------------------------------------------------------------------


class _Client:
    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    async def close(self) -> None:
        self.closed = True


def test_calls_on_one_loop_share_a_client_and_its_connection(provider, fake_llm):
    fake_llm.script(chunks=["a"])
    fake_llm.script(chunks=["b"])

    async def twice() -> list[list[str]]:
        return [await collect(provider), await collect(provider)]

    assert asyncio.run(twice()) == [["a"], ["b"]]
    first, second = fake_llm.requests
    assert first.client_port == second.client_port


def test_a_new_loop_gets_a_new_client_and_the_old_one_is_closed_with_its_loop(provider, fake_llm):
    # As the sync doors run the pipeline outside an ASGI server: async_to_sync starts a new loop
    # per call and closes it afterwards. A client of a closed loop must never be handed out.
    fake_llm.script(chunks=["a"])
    fake_llm.script(chunks=["b"])

    async def once() -> tuple[list[str], object]:
        return await collect(provider), provider._client()

    first_text, first_client = asyncio.run(once())
    second_text, second_client = asyncio.run(once())

    assert (first_text, second_text) == (["a"], ["b"])
    assert second_client is not first_client
    assert first_client.is_closed() and second_client.is_closed()
    assert fake_llm.requests[0].client_port != fake_llm.requests[1].client_port


def test_a_long_lived_loop_keeps_its_clients_while_other_loops_come_and_go():
    # As daphne's loop does while plain-HTTP requests elsewhere run on loops of their own.
    started, stop = threading.Event(), threading.Event()
    server: dict[str, asyncio.AbstractEventLoop] = {}

    async def serve() -> None:
        server["loop"] = asyncio.get_running_loop()
        started.set()
        await asyncio.to_thread(stop.wait)

    async def client_for(key: str) -> _Client:
        return loop_client(key, _Client)

    def on_server(key: str) -> _Client:
        return asyncio.run_coroutine_threadsafe(client_for(key), server["loop"]).result(5)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert started.wait(5)
    try:
        kept = on_server("k")
        passing = [asyncio.run(client_for("k")) for _ in range(2)]
        again, other = on_server("k"), on_server("other")
        open_while_its_loop_ran = not kept.closed
    finally:
        stop.set()
        thread.join(5)

    assert again is kept and open_while_its_loop_ran
    assert other is not kept
    assert passing[0] is not passing[1] and kept not in passing
    assert all(client.closed for client in passing)
    assert kept.closed and other.closed  # once the long-lived loop ended too
