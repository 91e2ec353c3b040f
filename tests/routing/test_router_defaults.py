"""The router's per-connection knobs: request defaults, the connection's model, retry backoff,
and the ``on_retry`` callback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelport.config import parse_config
from modelport.errors import ModelportError, NetworkError, RateLimitError
from modelport.events import StreamEvent
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeUpstream, Reply
from modelport.types import ChatRequest, Message

STREAM = "openai/chat-stream-text-include-usage.sse"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _request(model: str, **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")], **fields)


async def _drain(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


def _work(url: str, extra: str = "") -> Router:
    config = parse_config(f'[connections.work]\nbase_url = "{url}/v1"\nmax_retries = 0\n{extra}')
    return Router(config, env={}, sleep=Sleeps())


# --- temperature, max_tokens and model ------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_the_connections_temperature_and_max_tokens_fill_in_what_the_request_leaves(
    path: str,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
        r = _work(upstream.url, "temperature = 0.2\nmax_tokens = 4096")
        try:
            for request in (_request("work/m"), _request("work/m", temperature=0.9, max_tokens=7)):
                if path == "stream":
                    await _drain(r.stream(request))
                else:
                    await r.complete(request)
        finally:
            await r.aclose()
        first, second = (sent.json() for sent in upstream.requests)
    assert (first["temperature"], first["max_tokens"]) == (0.2, 4096)
    # A request's own values win.
    assert (second["temperature"], second["max_tokens"]) == (0.9, 7)


async def test_without_defaults_nothing_is_added() -> None:
    async with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
        r = _work(upstream.url)
        try:
            await _drain(r.stream(_request("work/m")))
        finally:
            await r.aclose()
        body = upstream.requests[0].json()
    assert "temperature" not in body
    assert "max_tokens" not in body


@pytest.mark.parametrize("address", ["work", "work/"])
async def test_an_address_naming_only_the_connection_uses_its_model(address: str) -> None:
    async with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
        r = _work(upstream.url, 'model = "qwen2.5-coder:7b"')
        try:
            response = await r.complete(_request(address))
        finally:
            await r.aclose()
        assert upstream.requests[0].json()["model"] == "qwen2.5-coder:7b"
    assert response.model == "work/qwen2.5-coder:7b"


async def test_each_fallback_gets_its_own_connections_defaults() -> None:
    text = """
[connections.a]
compat = "plugin:a"
temperature = 0.1
[connections.b]
compat = "plugin:b"
max_tokens = 99
[fallbacks]
"a/m" = ["b/m"]
"""
    r = Router(parse_config(text), env={}, sleep=Sleeps())
    first, second = FakeProvider(NetworkError("down")), FakeProvider("ok")
    r.register_provider("a", first)
    r.register_provider("b", second)
    await r.complete(_request("a/m"))
    assert (first.history[0].temperature, first.history[0].max_tokens) == (0.1, None)
    assert (second.history[0].temperature, second.history[0].max_tokens) == (None, 99)


# --- backoff and on_retry -----------------------------------------------------------


def _retrying_router(extra: str = "") -> tuple[Router, Sleeps]:
    sleeps = Sleeps()
    config = parse_config(f'[connections.acme]\ncompat = "plugin:acme"\nmax_retries = 4\n{extra}')
    return Router(config, env={}, sleep=sleeps), sleeps


async def test_the_backoff_follows_the_connections_base_and_maximum() -> None:
    r, sleeps = _retrying_router("retry_base_delay = 2\nretry_max_delay = 5")
    r.register_provider("acme", FakeProvider(NetworkError("down")))
    calls = 30
    for _ in range(calls):
        with pytest.raises(NetworkError):
            await _drain(r.stream(_request("acme/m")))
    # Full jitter: each pause is uniform below min(max, base * 2**(n-1)).
    per_call = [sleeps.delays[i : i + 4] for i in range(0, 4 * calls, 4)]
    for delays in per_call:
        assert all(0 <= d <= c for d, c in zip(delays, [2, 4, 5, 5], strict=True))
    # The base shows in the first pause: the default base would keep all thirty draws
    # under 0.5 s, which with this one happens once in 10**18 runs.
    assert max(delays[0] for delays in per_call) > 0.5


async def test_the_default_backoff_stays_below_eight_seconds() -> None:
    r, sleeps = _retrying_router()
    r.register_provider("acme", FakeProvider(NetworkError("down")))
    with pytest.raises(NetworkError):
        await _drain(r.stream(_request("acme/m")))
    assert all(d <= c for d, c in zip(sleeps.delays, [0.5, 1, 2, 4], strict=True))


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_on_retry_hears_each_attempt_its_error_and_delay(path: str) -> None:
    r, sleeps = _retrying_router()
    errors = [RateLimitError("slow down", retry_after=0.25), NetworkError("down")]
    r.register_provider("acme", FakeProvider(*errors, "answer"))
    heard: list[tuple[int, ModelportError, float]] = []

    def on_retry(attempt: int, error: ModelportError, delay: float) -> None:
        heard.append((attempt, error, delay))

    if path == "stream":
        await _drain(r.stream(_request("acme/m"), on_retry=on_retry))
    else:
        await r.complete(_request("acme/m"), on_retry=on_retry)
    assert [(a, type(e).__name__) for a, e, _ in heard] == [
        (1, "RateLimitError"),
        (2, "NetworkError"),
    ]
    assert heard[0][2] == 0.25  # the server's retry-after
    assert [delay for _, _, delay in heard] == sleeps.delays


async def test_on_retry_may_be_a_coroutine_and_its_failure_ends_the_call() -> None:
    r, _ = _retrying_router()
    r.register_provider("acme", FakeProvider(NetworkError("down"), "answer"))
    heard: list[int] = []

    async def counting(attempt: int, error: ModelportError, delay: float) -> None:
        heard.append(attempt)

    assert (await r.complete(_request("acme/m"), on_retry=counting)).content == "answer"
    assert heard == [1]

    def refusing(attempt: int, error: ModelportError, delay: float) -> None:
        raise RuntimeError("stop retrying")

    r.register_provider("other", FakeProvider(NetworkError("down"), "answer"))
    with pytest.raises(RuntimeError, match="stop retrying"):
        await r.complete(_request("other/m"), on_retry=refusing)
