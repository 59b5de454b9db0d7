"""Anthropic's Messages API through the official SDK, streamed.

Empty key and base URL are passed to the SDK as None so it reads its own ANTHROPIC_API_KEY and
ANTHROPIC_BASE_URL, which is how tests and benchmarks point it at the local fake server.
"""

from collections.abc import AsyncIterator
from typing import Any, cast

import anthropic
import httpx2
import structlog
from anthropic.types import MessageParam
from django.conf import settings

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

KEY_REFUSED = "The Anthropic API key was refused. Check it in Settings, Language model."
RETRYABLE_ERROR_TYPES = {"rate_limit_error", "overloaded_error", "api_error", "timeout_error"}


class _UsageReport:
    """The answer's usage as the stream reports it: message_start's figures, then message_delta's
    cumulative ones (input figures included when the API sends them). Cached input tokens are
    input tokens too."""

    INPUT = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

    def __init__(self) -> None:
        self.counts = dict.fromkeys((*self.INPUT, "output_tokens"), 0)

    def update(self, report: Any) -> Usage:
        for name in self.counts:
            value = getattr(report, name, None)
            if value is not None:
                self.counts[name] = value
        return Usage(
            input_tokens=sum(self.counts[name] for name in self.INPUT),
            output_tokens=self.counts["output_tokens"],
        )


@register
class AnthropicProvider(Provider):
    name = "anthropic"
    label = "Anthropic"

    def __init__(self, *, model: str = "", api_key: str = "", base_url: str = "") -> None:
        super().__init__(model=model or settings.ANTHROPIC_MODEL, api_key=api_key, base_url=base_url)

    def _client(self) -> anthropic.AsyncAnthropic:
        timeout = settings.LLM_TIMEOUT
        return loop_client(
            (self.name, self.api_key, self.base_url, timeout),
            lambda: anthropic.AsyncAnthropic(
                api_key=self.api_key or None,
                base_url=self.base_url or None,
                max_retries=MAX_RETRIES,
                timeout=anthropic.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            ),
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        self.usage = Usage()
        client = self._client()
        report = _UsageReport()
        started = finished = False
        system: dict[str, Any] = {"system": prompt.system} if prompt.system else {}
        try:
            # The raw stream events rather than the SDK's messages.stream() helper: the helper
            # rebuilds a snapshot of the whole message on every event, CPU time on the event loop
            # that every other chat of the process waits for, and we need only text and usage.
            stream = await client.messages.create(
                model=self.model,
                max_tokens=prompt.max_tokens,
                messages=cast("list[MessageParam]", prompt.messages),
                stream=True,
                **system,
            )
            async with stream:
                async for event in stream:
                    if event.type == "content_block_delta":
                        if event.delta.type == "text_delta":
                            yield event.delta.text
                    elif event.type == "message_start":
                        started = True
                        self.usage = report.update(event.message.usage)
                    elif event.type == "message_delta":
                        self.usage = report.update(event.usage)
                        if event.delta.stop_reason == "max_tokens":
                            logger.warning("llm_answer_truncated", provider=self.name, model=self.model)
                    elif event.type == "message_stop":
                        finished = True
        except anthropic.AnthropicError as error:
            raise self._error(error, mid_way=started) from error
        except httpx2.RequestError as error:
            # The SDK lets transport errors that happen after the response began through as they are.
            raise self._error(error, mid_way=True) from error
        if not finished:
            # The body ended cleanly but without message_stop: a proxy cut it short.
            raise ProviderError(MID_WAY, retryable=True)

    async def test(self) -> str:
        client = self._client()
        try:
            await client.messages.create(
                model=self.model, max_tokens=1, messages=[{"role": "user", "content": "Say OK."}]
            )
        except (anthropic.AnthropicError, httpx2.RequestError) as error:
            raise self._error(error) from error
        return f"Anthropic {self.model} answered."

    def _error(self, error: Exception, *, mid_way: bool = False) -> ProviderError:
        """Our error for the SDK's, saying whether trying again could help."""
        logger.warning("llm_error", provider=self.name, model=self.model, error=repr(error), mid_way=mid_way)
        if isinstance(error, anthropic.APIStatusError):
            status, kind = error.status_code, getattr(error, "type", None)
            if status in (401, 403) or kind in ("authentication_error", "permission_error"):
                return ProviderError(KEY_REFUSED, retryable=False)
            if mid_way:
                return ProviderError(MID_WAY, retryable=kind in RETRYABLE_ERROR_TYPES or status >= 500)
            if status == 429:
                return ProviderError(
                    "Anthropic is limiting requests right now. Try again in a moment.", retryable=True
                )
            if status == 529 or kind == "overloaded_error":
                return ProviderError(
                    "Anthropic is overloaded right now. Try again in a moment.", retryable=True
                )
            if status >= 500:
                return ProviderError(
                    f"Anthropic had an internal error (HTTP {status}). Try again in a moment.", retryable=True
                )
            if status == 404:
                return ProviderError(
                    f"Anthropic has no model named {self.model!r} (or the API address is wrong).",
                    retryable=False,
                )
            # Only the API's own short explanation: the base URL may point anywhere, and a raw body
            # from an arbitrary server has no business on our page.
            reason = (getattr(error, "api_message", None) or f"HTTP {status}")[:REASON_LIMIT]
            return ProviderError(f"Anthropic refused the request: {reason}", retryable=False)
        if mid_way:
            return ProviderError(MID_WAY, retryable=True)
        if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
            return ProviderError(
                f"Anthropic did not answer within {settings.LLM_TIMEOUT:g} seconds. Try again.",
                retryable=True,
            )
        if isinstance(error, anthropic.APIConnectionError | httpx2.RequestError):
            where = self.base_url or "its API"
            return ProviderError(f"Could not reach Anthropic at {where}. Try again later.", retryable=True)
        return ProviderError(f"Anthropic could not answer: {error}", retryable=False)
