from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, load_factory
from modelport.providers.anthropic import AnthropicProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message

MESSAGES = "/v1/messages"
KEY = "sk-ant-test-secret-0123456789"
MODEL = "claude-haiku-4-5"
LONG_STREAM = "anthropic/messages-stream-thinking-long.sse"
#: Events arrive in the first write; then one more piece a second, long enough to interrupt.
SLOW = [800] + [100] * 60

Factory = Callable[..., AnthropicProvider]


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[Factory]:
    made: list[AnthropicProvider] = []

    def make(**overrides: Any) -> AnthropicProvider:
        fields: dict[str, Any] = {
            "name": "anthropic",
            "compat": "anthropic",
            "base_url": upstream.url,
            "api_key": KEY,
        }
        fields.update(overrides)
        provider = AnthropicProvider(ConnectionSettings(**fields))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def _request() -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hello"),
        ],
        max_tokens=100,
    )


async def _collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_no_secret(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in repr(getattr(error, "__dict__", {}))


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def test_registered_as_the_anthropic_compat() -> None:
    assert load_factory("anthropic") is AnthropicProvider


# --- success paths --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_split_at_random_boundaries(
    upstream: FakeUpstream, make_provider: Factory, seed: int
) -> None:
    fixture = "anthropic/messages-stream-text.sse"
    upstream.route("POST", MESSAGES, Reply.fixture(fixture, chunks="random", split_seed=seed))
    response = aggregate(await _collect(make_provider().stream(_request())), model=MODEL)
    assert (response.content, response.finish_reason) == ("Hello", "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 4)


async def test_stream_of_thinking_then_tool_use(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    fixture = "anthropic/messages-stream-thinking-then-tool_use.sse"
    upstream.route("POST", MESSAGES, Reply.fixture(fixture, chunks="random", split_seed=4))
    response = aggregate(await _collect(make_provider().stream(_request())), model=MODEL)
    assert response.reasoning.startswith("The user wants me to:")
    [thinking] = response.thinking
    assert thinking.signature is not None and thinking.signature.startswith("EoQDCm0I")
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "toolu_01825dXWLSoJwCst1qTsiWdb",
        "fixed_version",
        "{}",
    )
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (598, 92)


async def test_stream_sends_the_request_the_upstream_expects(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/messages-stream-text.sse"))
    await _collect(make_provider(headers={"X-Team": "blue"}).stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", MESSAGES)
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in sent.headers
    assert "authorization" not in sent.headers
    assert sent.headers["x-team"] == "blue"
    assert sent.json() == {
        "model": MODEL,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 100,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("beta", "header"),
    [
        ("interleaved-thinking-2025-05-14", "interleaved-thinking-2025-05-14"),
        (["a-1", "b-2"], "a-1,b-2"),
    ],
)
async def test_version_and_beta_from_options(
    upstream: FakeUpstream, make_provider: Factory, beta: Any, header: str
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/messages-stream-text.sse"))
    options = {"anthropic_version": "2099-01-01", "anthropic_beta": beta}
    await _collect(make_provider(options=options).stream(_request()))
    assert upstream.requests[0].headers["anthropic-version"] == "2099-01-01"
    assert upstream.requests[0].headers["anthropic-beta"] == header


async def test_base_url_with_v1_suffix(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/messages-stream-text.sse"))
    await _collect(make_provider(base_url=f"{upstream.url}/v1/").stream(_request()))
    assert upstream.requests[0].path == MESSAGES


def test_default_base_url() -> None:
    provider = AnthropicProvider(ConnectionSettings(name="anthropic", compat="anthropic"))
    assert provider.chat_url() == "https://api.anthropic.com/v1/messages"
    assert provider.models_url() == "https://api.anthropic.com/v1/models"


async def test_complete_from_a_json_body(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/message-text.json"))
    response = await make_provider().complete(_request())
    assert response.content.startswith("Hello! I'm doing well, thanks for asking.")
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 29)
    assert response.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert "stream" not in upstream.requests[0].json()
    assert upstream.requests[0].headers["x-api-key"] == KEY


async def test_list_models(upstream: FakeUpstream, make_provider: Factory) -> None:
    body = {
        "data": [
            {
                "type": "model",
                "id": "claude-sonnet-4-5-20250929",
                "display_name": "Claude Sonnet 4.5",
                "created_at": "2025-09-29T00:00:00Z",
            }
        ],
        "has_more": False,
        "first_id": "claude-sonnet-4-5-20250929",
        "last_id": "claude-sonnet-4-5-20250929",
    }
    upstream.route("GET", "/v1/models", Reply.json(body))
    [model] = await make_provider().list_models()
    assert (model.id, model.name, model.connection) == (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "anthropic",
    )
    assert upstream.requests[0].headers["x-api-key"] == KEY
    assert upstream.requests[0].headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("call", ["stream", "complete", "list_models"])
async def test_missing_key_fails_before_any_request(
    upstream: FakeUpstream, make_provider: Factory, call: str
) -> None:
    provider = make_provider(api_key=None)
    with pytest.raises(AuthError) as caught:
        if call == "stream":
            await _collect(provider.stream(_request()))
        elif call == "complete":
            await provider.complete(_request())
        else:
            await provider.list_models()
    assert "modelport keys set anthropic" in str(caught.value)
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert caught.value.connection == "anthropic"
    assert upstream.requests == []


# --- error statuses ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "complete"])
@pytest.mark.parametrize(
    ("reply", "error_class", "status"),
    [
        (Reply.json(_error("authentication_error", "invalid x-api-key"), 401), AuthError, 401),
        (
            Reply.fixture("anthropic/error-404-not_found_error.sorted.json", status=404),
            ModelNotFoundError,
            404,
        ),
        (
            Reply.json(
                _error(
                    "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
                ),
                400,
            ),
            ContextTooLongError,
            400,
        ),
        (Reply.json(_error("api_error", "Internal server error"), 500), UpstreamError, 500),
        (Reply.json(_error("overloaded_error", "Overloaded"), 529), UpstreamError, 529),
    ],
)
async def test_error_statuses(
    upstream: FakeUpstream,
    make_provider: Factory,
    path: str,
    reply: Reply,
    error_class: type[ModelportError],
    status: int,
) -> None:
    upstream.route("POST", MESSAGES, reply)
    provider = make_provider()
    with pytest.raises(error_class) as caught:
        if path == "stream":
            await _collect(provider.stream(_request()))
        else:
            await provider.complete(_request())
    error = caught.value
    assert error.status == status
    assert (error.connection, error.model) == ("anthropic", MODEL)
    assert error.url == f"{upstream.url}{MESSAGES}"
    _assert_no_secret(error)


async def test_overloaded_is_retryable(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", MESSAGES, Reply.json(_error("overloaded_error", "Overloaded"), 529))
    with pytest.raises(UpstreamError) as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.retryable


async def test_rate_limit_carries_retry_after(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    reply = Reply.json(_error("rate_limit_error", "slow down"), 429, headers={"retry-after": "12"})
    upstream.route("POST", MESSAGES, reply)
    with pytest.raises(RateLimitError) as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.retry_after == 12.0


async def test_in_band_error_event(upstream: FakeUpstream, make_provider: Factory) -> None:
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","content":[],"model":"m","usage":'
        b'{"input_tokens":1,"output_tokens":1}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    upstream.route("POST", MESSAGES, Reply(body=body, content_type="text/event-stream", chunks=[7]))
    with pytest.raises(ModelportError, match="Overloaded") as caught:
        await _collect(make_provider().stream(_request()))
    assert (caught.value.connection, caught.value.model) == ("anthropic", MODEL)


# --- the network -------------------------------------------------------------------


async def test_connection_refused_raises_on_first_anext(make_provider: Factory) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    stream = make_provider(base_url=base).stream(_request())
    with pytest.raises(NetworkError) as caught:
        await anext(stream)
    assert f"Cannot reach {base} (connection refused)" in str(caught.value)
    assert caught.value.url == f"{base}/v1/messages"
    assert (caught.value.connection, caught.value.model) == ("anthropic", MODEL)
    _assert_no_secret(caught.value)


@pytest.mark.parametrize("drop_after", [0, 500, 5000])
async def test_dropped_connection_mid_stream(
    upstream: FakeUpstream, make_provider: Factory, drop_after: int
) -> None:
    upstream.route(
        "POST", MESSAGES, Reply.fixture(LONG_STREAM, chunks=[300], drop_after=drop_after)
    )
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="closed mid-response"):
        async for event in make_provider().stream(_request()):
            received.append(event)
    assert not any(event.type == "finish" for event in received)


async def test_hang_times_out_naming_the_setting(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", MESSAGES, Reply(hang=True))
    with pytest.raises(NetworkError) as caught:
        await make_provider(timeout=0.25).complete(_request())
    assert "0.25 s" in str(caught.value) and "`timeout`" in str(caught.value)
    _assert_no_secret(caught.value)


async def test_cancelling_the_consumer_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture(LONG_STREAM, chunks=SLOW, chunk_delay=1.0))
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in make_provider().stream(_request()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await upstream.requests[0].wait_closed(0.5)


async def test_aclose_on_the_generator_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture(LONG_STREAM, chunks=SLOW, chunk_delay=1.0))
    stream = make_provider().stream(_request())
    await anext(stream)
    started = time.monotonic()
    await stream.aclose()
    assert await upstream.requests[0].wait_closed(1)
    assert time.monotonic() - started < 0.5


async def test_missing_key_of_another_connection_does_not_name_the_vendor_variable(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    provider = make_provider(name="claude", api_key=None)
    with pytest.raises(AuthError) as caught:
        await provider.complete(_request())
    message = str(caught.value)
    assert "modelport keys set claude" in message
    assert "api_key_env" in message and "[connections.claude]" in message
    # The router reads ANTHROPIC_API_KEY only for the `anthropic` preset.
    assert "ANTHROPIC_API_KEY" not in message


async def test_missing_key_names_the_variable_the_settings_name(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    provider = make_provider(name="claude", api_key=None, api_key_env="CLAUDE_KEY")
    with pytest.raises(AuthError) as caught:
        await provider.complete(_request())
    assert str(caught.value).startswith(
        "No API key for connection 'claude' — run `modelport keys set claude`, or set $CLAUDE_KEY "
    )
    assert upstream.requests == []


async def test_missing_key_through_the_router_names_the_configured_variable(
    upstream: FakeUpstream,
) -> None:
    from modelport.config import parse_config
    from modelport.routing import Router

    config = parse_config(
        f"[connections.claude]\ncompat = 'anthropic'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'CLAUDE_KEY'\nmax_retries = 0"
    )
    router = Router(config, env={})
    try:
        with pytest.raises(AuthError, match=r"keys set claude`, or set \$CLAUDE_KEY \("):
            await router.complete(
                ChatRequest(model="claude/m", messages=[Message(role="user", content="hi")])
            )
        # The ready-made connection names the vendor's variable the router reads for it.
        with pytest.raises(AuthError, match=r"anthropic`, or set \$ANTHROPIC_API_KEY \("):
            await router.complete(
                ChatRequest(model="anthropic/m", messages=[Message(role="user", content="hi")])
            )
    finally:
        await router.aclose()
    assert upstream.requests == []


async def test_a_stream_that_ends_after_message_start_is_retried(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    from modelport.errors import NetworkError
    from modelport.providers._retry import RetryingProvider

    start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"model":"m","content":[],"usage":{"input_tokens":3}}}\n\n'
    )
    # Cut off cleanly before any content: nothing reached the caller, so it is retried.
    upstream.route(
        "POST", "/v1/messages", Reply(body=start, content_type="text/event-stream", chunks=[])
    )
    provider = RetryingProvider(make_provider(), max_retries=1, sleep=_no_sleep)
    with pytest.raises(NetworkError, match="before it finished"):
        await _collect(provider.stream(_request()))
    assert len(upstream.requests) == 2


async def _no_sleep(delay: float) -> None:
    return None
