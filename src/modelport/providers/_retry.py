"""Retries with exponential backoff and full jitter, wrapped around any provider.

What is retried is what :attr:`ModelportError.retryable` says: connection
failures, 429, and the statuses 408, 500, 502, 503, 504 and 529 — never 400,
401, 403 or 404. A stream is retried only while nothing has reached the
caller: once one event is out, a failure is the caller's to see, because a
second attempt would repeat text they already have.

The backoff's base and ceiling are per connection (``retry_base_delay`` and
``retry_max_delay`` in its table; 0.5 s and 8 s by default). An ``on_retry``
callback (what ``onRetryAttempt`` is to Cline's ``withRetry``) hears of each
retry before its pause, to log or count attempts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import msgspec

from modelport.errors import InvalidRequestError, ModelportError
from modelport.events import StreamEvent
from modelport.providers import DEFAULT_RETRY_BASE_DELAY, DEFAULT_RETRY_MAX_DELAY, Provider
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)

__all__ = ["OnRetry", "RetryingProvider", "backoff_delay", "without_refused_reasoning"]

logger = logging.getLogger("modelport.retry")

_T = TypeVar("_T")

#: ``on_retry(attempt, error, delay)``: attempt number ``attempt`` (1 for the first) failed
#: with ``error``, and the next one starts after ``delay`` seconds. It may be a coroutine
#: function; an exception it raises ends the call with that exception.
OnRetry: TypeAlias = Callable[[int, ModelportError, float], Any]

#: A server asking for a longer pause than this gets the computed backoff
#: instead (as the OpenAI and Anthropic SDKs do), rather than a minutes-long hang.
MAX_RETRY_AFTER = 60.0


def backoff_delay(
    retry: int,
    *,
    base_delay: float,
    max_delay: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``retry`` (1-based).

    The server's ``retry_after`` wins when given (and not absurd); otherwise
    full jitter: uniform between 0 and ``min(max_delay, base_delay * 2**(retry-1))``.
    """
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
        return retry_after
    ceiling = min(max_delay, base_delay * 2 ** (retry - 1))
    return rand() * ceiling


#: Words an upstream's refusal of reasoning for a model that cannot reason contains
#: (Ollama: '"llama3.1" does not support thinking'; OpenAI: "Unsupported parameter:
#: 'reasoning_effort' …").
_REASONING_WORDS = ("think", "reasoning", "effort")


def without_refused_reasoning(request: ChatRequest, error: ModelportError) -> ChatRequest | None:
    """``request`` without its reasoning, when that was only ``adaptive`` and the upstream
    refused it as such; otherwise ``None``."""
    reasoning = request.reasoning
    if reasoning is None or not reasoning.adaptive or not isinstance(error, InvalidRequestError):
        return None
    message = error.message.lower()
    if not any(word in message for word in _REASONING_WORDS):
        return None
    logger.info("%s cannot reason, as the upstream says; asking without reasoning", request.model)
    return msgspec.structs.replace(request, reasoning=None)


class RetryingProvider:
    """A provider that retries ``inner`` on retryable errors.

    ``max_retries`` counts retries, not attempts: 2 means at most 3 attempts.
    ``base_delay`` and ``max_delay`` shape the backoff (:func:`backoff_delay`).
    ``on_retry`` (:data:`OnRetry`) is called before each pause. ``sleep`` is
    injectable so tests can record the delays instead of waiting.
    """

    def __init__(
        self,
        inner: Provider,
        *,
        max_retries: int,
        base_delay: float = DEFAULT_RETRY_BASE_DELAY,
        max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.inner = inner
        self.on_retry = on_retry
        self.max_retries = max(0, max_retries)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rand = rand

    async def _pause_or_raise(self, error: ModelportError, retry: int) -> None:
        if not error.retryable or retry > self.max_retries:
            raise error
        delay = backoff_delay(
            retry,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            retry_after=error.retry_after,
            rand=self._rand,
        )
        logger.info(
            "retry %d of %d in %.2fs after %s", retry, self.max_retries, delay, type(error).__name__
        )
        if self.on_retry is not None:
            heard = self.on_retry(retry, error, delay)
            if inspect.isawaitable(heard):
                await heard
        await self._sleep(delay)

    async def _call(self, call: Callable[[], Awaitable[_T]]) -> _T:
        retry = 0
        while True:
            try:
                return await call()
            except ModelportError as error:
                retry += 1
                await self._pause_or_raise(error, retry)

    async def list_models(self) -> list[ModelInfo]:
        return await self._call(self.inner.list_models)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        # _call's loop written out: no closure and no extra coroutine on every plain call.
        complete = self.inner.complete
        retry = 0
        while True:
            try:
                return await complete(request)
            except ModelportError as error:
                if not (error.retryable and retry < self.max_retries):
                    # Giving up on this request, unless the upstream refused only its adaptive
                    # reasoning: asked again without it (once: it has none then), retries afresh.
                    plain = without_refused_reasoning(request, error)
                    if plain is not None:
                        request, retry = plain, 0
                        continue
                retry += 1
                await self._pause_or_raise(error, retry)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The inner provider's ``embed``, retried (check ``offers_embeddings(inner)`` first)."""
        embed = self.inner.embed  # type: ignore[attr-defined]
        return await self._call(lambda: embed(request))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        retry = 0
        while True:
            events = self.inner.stream(request)
            started = False
            try:
                async for event in events:
                    started = True
                    yield event
                return
            except ModelportError as error:
                if started:
                    raise
                failure = error
            finally:
                await _aclose(events)
            plain = without_refused_reasoning(request, failure)
            if plain is not None:
                request = plain  # not a retry: the same call, minus what the model cannot do
                continue
            retry += 1
            await self._pause_or_raise(failure, retry)

    def retry_items(self, open_items: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
        """The items of ``open_items()``, opened again on a retryable error before the first.

        The passthrough's stream (see :mod:`modelport.providers._relay`): the same rule
        as :meth:`stream`, once anything is out a failure is the caller's to see. With
        no retries allowed that is ``open_items()`` itself: a generator around it would
        only pass each item on (and cost every item a resume).
        """
        if self.max_retries == 0:
            return open_items()
        return self._retry_items(open_items)

    async def _retry_items(
        self, open_items: Callable[[], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        retry = 0
        while True:
            items = open_items()
            started = False
            try:
                async for item in items:
                    started = True
                    yield item
                return
            except ModelportError as error:
                if started:
                    raise
                failure = error
            finally:
                await _aclose(items)
            retry += 1
            await self._pause_or_raise(failure, retry)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


async def _aclose(events: AsyncIterator[Any]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
