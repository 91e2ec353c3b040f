from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from modelport.errors import (
    AuthError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import FinishEvent, StreamEvent, TextEvent
from modelport.providers._retry import MAX_RETRY_AFTER, RetryingProvider, backoff_delay
from modelport.testing import FakeProvider, FakeReply, FakeUpstream, Reply
from modelport.types import ChatRequest, Message, Reasoning

REQUEST = ChatRequest(model="m", messages=[Message(role="user", content="hi")])


class Sleeps:
    """An injected ``sleep`` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def retrying(inner: FakeProvider, max_retries: int = 2, **kwargs: object) -> RetryingProvider:
    kwargs.setdefault("sleep", Sleeps())
    return RetryingProvider(inner, max_retries=max_retries, **kwargs)  # type: ignore[arg-type]


async def collect(provider: RetryingProvider) -> list[StreamEvent]:
    return [event async for event in provider.stream(REQUEST)]


RETRYABLE = [
    NetworkError("connection refused"),
    RateLimitError("slow down", status=429),
    *(UpstreamError("upstream", status=status) for status in (408, 429, 500, 502, 503, 504, 529)),
]
NOT_RETRYABLE = [
    InvalidRequestError("bad", status=400),
    AuthError("no", status=401),
    AuthError("forbidden", status=403),
    ModelNotFoundError("missing", status=404),
    UpstreamError("teapot", status=418),
    UpstreamError("not implemented", status=501),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: f"{type(e).__name__}-{e.status}")
async def test_retryable_failures_are_retried(error: ModelportError) -> None:
    inner = FakeProvider(error, "recovered")
    events = await collect(retrying(inner))
    assert events == [TextEvent(text="recovered"), FinishEvent(reason="stop")]
    assert len(inner.history) == 2


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=lambda e: f"{type(e).__name__}-{e.status}")
async def test_other_failures_are_not_retried(error: ModelportError) -> None:
    inner = FakeProvider(error, "never")
    sleeps = Sleeps()
    with pytest.raises(type(error)):
        await collect(retrying(inner, sleep=sleeps))
    assert len(inner.history) == 1
    assert sleeps.delays == []


async def test_max_retries_counts_retries_not_attempts() -> None:
    inner = FakeProvider(NetworkError("down"))
    with pytest.raises(NetworkError):
        await collect(retrying(inner, max_retries=3))
    assert len(inner.history) == 4


async def test_zero_retries_means_one_attempt() -> None:
    inner = FakeProvider(NetworkError("down"), "never")
    with pytest.raises(NetworkError):
        await collect(retrying(inner, max_retries=0))
    assert len(inner.history) == 1


async def test_the_last_error_is_raised_after_the_retries() -> None:
    inner = FakeProvider(NetworkError("first"), UpstreamError("second", status=503))
    with pytest.raises(UpstreamError, match="second"):
        await collect(retrying(inner, max_retries=1))


async def test_no_retry_once_an_event_reached_the_caller() -> None:
    inner = FakeProvider(FakeReply(events=["partial"], error=NetworkError("dropped")), "whole")
    seen: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="dropped"):
        async for event in retrying(inner).stream(REQUEST):
            seen.append(event)
    assert seen == [TextEvent(text="partial")]
    assert len(inner.history) == 1


async def test_backoff_is_exponential_with_full_jitter() -> None:
    inner = FakeProvider(NetworkError("down"))
    sleeps = Sleeps()
    provider = retrying(inner, max_retries=5, sleep=sleeps, rand=lambda: 1.0)
    with pytest.raises(NetworkError):
        await collect(provider)
    # base 0.5 doubling, capped at max_delay 8.0; rand() = 1 shows the ceilings.
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 8.0]


async def test_jitter_draws_below_the_ceiling() -> None:
    inner = FakeProvider(NetworkError("down"))
    sleeps = Sleeps()
    provider = retrying(inner, max_retries=2, sleep=sleeps, rand=lambda: 0.25)
    with pytest.raises(NetworkError):
        await collect(provider)
    assert sleeps.delays == [0.125, 0.25]


async def test_retry_after_is_honoured() -> None:
    inner = FakeProvider(RateLimitError("slow", status=429, retry_after=7.5), "ok")
    sleeps = Sleeps()
    await collect(retrying(inner, sleep=sleeps))
    assert sleeps.delays == [7.5]


def test_an_absurd_retry_after_falls_back_to_backoff() -> None:
    delay = backoff_delay(
        1, base_delay=0.5, max_delay=8.0, retry_after=MAX_RETRY_AFTER + 1, rand=lambda: 1.0
    )
    assert delay == 0.5
    assert backoff_delay(1, base_delay=0.5, max_delay=8.0, retry_after=0.0) == 0.0


async def test_default_backoff_really_sleeps_briefly() -> None:
    inner = FakeProvider(NetworkError("down"), "ok")
    provider = RetryingProvider(inner, max_retries=1, base_delay=0.001)
    assert await collect(provider) == [TextEvent(text="ok"), FinishEvent(reason="stop")]


async def test_complete_and_list_models_are_retried_too() -> None:
    inner = FakeProvider(NetworkError("down"), "answer")
    provider = retrying(inner)
    response = await provider.complete(REQUEST)
    assert response.content == "answer"
    assert len(inner.history) == 2

    class Flaky(FakeProvider):
        calls = 0

        async def list_models(self):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 1:
                raise UpstreamError("busy", status=503)
            return await super().list_models()

    flaky = Flaky(models=["a"])
    assert [m.id for m in await retrying(flaky).list_models()] == ["a"]
    assert flaky.calls == 2


async def test_closing_the_stream_early_closes_the_inner_stream() -> None:
    inner = FakeProvider(["a", "b", "c"])
    events = retrying(inner).stream(REQUEST)
    assert await events.__anext__() == TextEvent(text="a")
    await events.aclose()  # type: ignore[attr-defined]
    assert inner.cancelled == 1


async def test_cancellation_during_backoff_propagates() -> None:
    inner = FakeProvider(NetworkError("down"), "never")
    provider = RetryingProvider(inner, max_retries=1, base_delay=30, rand=lambda: 1.0)
    task = asyncio.create_task(collect(provider))
    while not inner.history:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(inner.history) == 1


async def test_aclose_closes_the_inner_provider() -> None:
    inner = FakeProvider()
    await retrying(inner).aclose()
    assert inner.closed


# --- reasoning a model cannot do, asked for only adaptively -----------------------------

NO_THINKING = InvalidRequestError('"llama3.1:8b" does not support thinking', status=400)
ADAPTIVE = ChatRequest(
    model="m",
    messages=[Message(role="user", content="hi")],
    reasoning=Reasoning(effort="high", adaptive=True),
)


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_adaptive_reasoning_refused_is_asked_again_without_it(path: str) -> None:
    inner = FakeProvider(NO_THINKING, "answered")
    provider = retrying(inner, max_retries=0)
    if path == "stream":
        events = [event async for event in provider.stream(ADAPTIVE)]
        assert events[0] == TextEvent(text="answered")
    else:
        assert (await provider.complete(ADAPTIVE)).content == "answered"
    assert [request.reasoning for request in inner.history] == [ADAPTIVE.reasoning, None]


async def test_reasoning_is_dropped_once_and_a_plain_request_refused_again_stands() -> None:
    server_error = UpstreamError("busy", status=503)
    inner = FakeProvider(server_error, NO_THINKING, server_error, NO_THINKING, "answered")
    with pytest.raises(InvalidRequestError):
        await retrying(inner, max_retries=1).complete(ADAPTIVE)
    # Retried (503), refused (reasoning), asked plainly with retries afresh (503), refused.
    assert [request.reasoning for request in inner.history] == [
        ADAPTIVE.reasoning,
        ADAPTIVE.reasoning,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        # An explicit effort is the caller's to see refused.
        (msgspec.structs.replace(ADAPTIVE, reasoning=Reasoning(effort="high")), NO_THINKING),
        # Any other refusal is not about reasoning.
        (ADAPTIVE, InvalidRequestError("messages: too many", status=400)),
    ],
)
async def test_other_refusals_stand(request_: ChatRequest, error: ModelportError) -> None:
    inner = FakeProvider(error, "answered")
    with pytest.raises(InvalidRequestError):
        [event async for event in retrying(inner).stream(request_)]
    assert len(inner.history) == 1


# --- over real HTTP: a stream that drops --------------------------------------------------

STREAM_FIXTURE = "openai/chat-stream-text-include-usage.sse"


def _http_provider(upstream: FakeUpstream, sleeps: Sleeps) -> RetryingProvider:
    from modelport.providers import ConnectionSettings
    from modelport.providers.openai_compat import OpenAICompatProvider

    settings = ConnectionSettings(name="up", compat="openai", base_url=f"{upstream.url}/v1")
    return RetryingProvider(OpenAICompatProvider(settings), max_retries=2, sleep=sleeps)


async def test_a_stream_dropped_after_its_first_event_is_not_retried_over_http(
    upstream: FakeUpstream,
) -> None:
    body = Reply.fixture(STREAM_FIXTURE).body
    cut = body.index(b"\n\n", body.index(b'"content":"I')) + 2  # text, then the drop
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture(STREAM_FIXTURE, chunks=[cut], drop_after=cut + 5),
        Reply.fixture(STREAM_FIXTURE),
    )
    sleeps = Sleeps()
    provider = _http_provider(upstream, sleeps)
    seen: list[StreamEvent] = []
    try:
        with pytest.raises(NetworkError, match="closed mid-response"):
            async for event in provider.stream(REQUEST):
                seen.append(event)
    finally:
        await provider.aclose()
    assert any(isinstance(e, TextEvent) for e in seen)  # the caller had text already …
    assert not any(isinstance(e, FinishEvent) for e in seen)  # … and no false end
    assert len(upstream.requests) == 1 and sleeps.delays == []  # so no second attempt


async def test_a_stream_dropped_before_any_event_is_retried_over_http(
    upstream: FakeUpstream,
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture(STREAM_FIXTURE, drop_after=3),  # a few bytes, not one whole event
        Reply.fixture(STREAM_FIXTURE, chunks="random", split_seed=5),
    )
    sleeps = Sleeps()
    provider = _http_provider(upstream, sleeps)
    try:
        events = [event async for event in provider.stream(REQUEST)]
    finally:
        await provider.aclose()
    assert len(upstream.requests) == 2 and len(sleeps.delays) == 1
    assert any(isinstance(e, FinishEvent) for e in events)


async def test_items_with_no_retries_allowed_are_the_items_themselves() -> None:
    async def items() -> AsyncIterator[object]:
        yield 1
        raise UpstreamError("busy", status=503)

    opened = items()
    passed = retrying(FakeProvider(), max_retries=0).retry_items(lambda: opened)
    assert passed is opened  # no generator in between
    assert [await passed.__anext__()] == [1]
    with pytest.raises(UpstreamError, match="busy"):
        await passed.__anext__()


async def test_items_are_opened_again_on_a_retryable_error_before_the_first() -> None:
    attempts: list[int] = []

    async def items() -> AsyncIterator[object]:
        attempts.append(1)
        if len(attempts) == 1:
            raise UpstreamError("busy", status=503)
        yield "answer"

    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    passed = retrying(FakeProvider(), max_retries=1, sleep=sleep).retry_items(items)
    assert [item async for item in passed] == ["answer"]
    assert (len(attempts), len(sleeps)) == (2, 1)
