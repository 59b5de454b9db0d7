"""OpenAI Chat Completions through the official SDK, streamed: OpenAI itself or any compatible
server (vLLM, Ollama, llama.cpp, LiteLLM...) at a configurable base URL.

Empty key and base URL are passed to the SDK as None so it reads its own OPENAI_API_KEY and
OPENAI_BASE_URL, which is how tests and benchmarks point it at the local fake server.
"""

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
import openai
import structlog
from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from apps.chat.providers import register
from apps.chat.providers.base import (
    CONNECT_TIMEOUT,
    MAX_RETRIES,
    MID_WAY,
    REASON_LIMIT,
    Prompt,
    Provider,
    ProviderError,
    Usage,
    loop_client,
)

logger = structlog.get_logger(__name__)

# Self-hosted servers usually need no key, but the SDK refuses to start without one.
NO_KEY = "not-needed"
KEY_REFUSED = "The API key was refused by the OpenAI-compatible server. Check it in Settings, Language model."
SERVER = "The OpenAI-compatible server"
OPENAI_HOST = "api.openai.com"


def _reason(error: openai.APIStatusError) -> str:
    """The server's own explanation, short: the base URL may point at any server, whose raw body
    has no business on our page."""
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    reason = message if isinstance(message, str) and message else f"HTTP {error.status_code}"
    return reason[:REASON_LIMIT]


@register
class OpenAIProvider(Provider):
    name = "openai"
    label = "OpenAI-compatible"

    def __init__(self, *, model: str = "", api_key: str = "", base_url: str = "") -> None:
        super().__init__(model=model or settings.OPENAI_MODEL, api_key=api_key, base_url=base_url)

    def _client(self) -> openai.AsyncOpenAI:
        timeout = settings.LLM_TIMEOUT
        return loop_client(
            (self.name, self.api_key, self.base_url, timeout),
            lambda: self._new_client(openai.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))),
        )

    def _new_client(self, timeout: openai.Timeout) -> openai.AsyncOpenAI:
        options: dict[str, Any] = {
            "base_url": self.base_url or None,
            "max_retries": MAX_RETRIES,
            "timeout": timeout,
        }
        try:
            return openai.AsyncOpenAI(api_key=self.api_key or None, **options)
        except openai.OpenAIError:
            # Raised only when neither we nor OPENAI_API_KEY have a key: fine for a self-hosted server.
            return openai.AsyncOpenAI(api_key=NO_KEY, **options)

    @staticmethod
    def _token_limit(client: openai.AsyncOpenAI, max_tokens: int) -> dict[str, Any]:
        # OpenAI's own API replaced max_tokens by max_completion_tokens (its newer models refuse the
        # old name); the compatible servers people self-host mostly know only max_tokens.
        if client.base_url.host == OPENAI_HOST:
            return {"max_completion_tokens": max_tokens}
        return {"max_tokens": max_tokens}

    def _messages(self, prompt: Prompt) -> list[ChatCompletionMessageParam]:
        system = [{"role": "system", "content": prompt.system}] if prompt.system else []
        return cast("list[ChatCompletionMessageParam]", [*system, *prompt.messages])

    async def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        self.usage = Usage()
        client = self._client()
        started = finished = False
        try:
            stream = await client.chat.completions.create(
                model=self.model,
                messages=self._messages(prompt),
                stream=True,
                stream_options={"include_usage": True},
                **self._token_limit(client, prompt.max_tokens),
            )
            started = True
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        self.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
                        if choice.finish_reason is not None:
                            finished = True
                            if choice.finish_reason == "length":
                                logger.warning("llm_answer_truncated", provider=self.name, model=self.model)
        except openai.OpenAIError as error:
            raise self._error(error, mid_way=started) from error
        except httpx2.RequestError as error:
            raise self._error(error, mid_way=True) from error
        if not finished:
            # The body ended cleanly but without a finish reason: a proxy cut it short.
            raise ProviderError(MID_WAY, retryable=True)
        if self.usage == Usage():
            # Some self-hosted servers ignore include_usage; the answer is fine, the budget blind.
            logger.warning("llm_usage_not_reported", provider=self.name, model=self.model)

    async def test(self) -> str:
        client = self._client()
        try:
            await client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": "Say OK."}],
                **self._token_limit(client, 1),
            )
        except (openai.OpenAIError, httpx2.RequestError) as error:
            raise self._error(error) from error
        return f"{SERVER} at {client.base_url} answered with {self.model}."

    def _error(self, error: Exception, *, mid_way: bool = False) -> ProviderError:
        """Our error for the SDK's, saying whether trying again could help."""
        logger.warning("llm_error", provider=self.name, model=self.model, error=repr(error), mid_way=mid_way)
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status in (401, 403):
                return ProviderError(KEY_REFUSED, retryable=False)
            if status == 429:
                return ProviderError(
                    f"{SERVER} is limiting requests right now. Try again in a moment.",
                    retryable=True,
                )
            if status >= 500:
                return ProviderError(
                    f"{SERVER} had an internal error (HTTP {status}). Try again in a moment.",
                    retryable=True,
                )
            if status == 404:
                return ProviderError(
                    f"{SERVER} has no model named {self.model!r} "
                    "(or its base URL is wrong; it usually ends in /v1).",
                    retryable=False,
                )
            return ProviderError(f"{SERVER} refused the request: {_reason(error)}", retryable=False)
        if mid_way:
            # An error event inside the stream, or a connection that broke after the answer began.
            return ProviderError(MID_WAY, retryable=True)
        if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException):
            return ProviderError(
                f"{SERVER} did not answer within {settings.LLM_TIMEOUT:g} seconds. Try again.",
                retryable=True,
            )
        if isinstance(error, openai.APIConnectionError | httpx2.RequestError):
            where = self.base_url or "its base URL"
            return ProviderError(
                f"Could not reach {SERVER.lower()} at {where}. Try again later.", retryable=True
            )
        return ProviderError(f"{SERVER} could not answer: {error}", retryable=False)
