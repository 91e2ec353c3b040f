from __future__ import annotations

import asyncio
import socket
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
from modelport.providers.ollama import OllamaProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message

CHAT = "/api/chat"
STREAM = "ollama/api-chat-stream.ndjson"
JOKE = (
    "Why did the OpenTelemetry agent go to therapy?\n\nBecause it was feeling traced out and "
    "needed some instrumentation in its life!\n\n(Sorry, I know it's a bit of a stretch, but I "
    "hope it brought a smile to your face!)"
)
#: Events arrive in the first write; then one more piece a second, long enough to interrupt.
SLOW = [400] + [100] * 60
KEY = "ollama-proxy-secret-0123456789"

Factory = Callable[..., OllamaProvider]


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[Factory]:
    made: list[OllamaProvider] = []

    def make(**overrides: Any) -> OllamaProvider:
        fields: dict[str, Any] = {"name": "local", "compat": "ollama", "base_url": upstream.url}
        fields.update(overrides)
        provider = OllamaProvider(ConnectionSettings(**fields))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def _request(model: str = "llama3") -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[Message(role="user", content="Tell me a joke about OpenTelemetry")],
        temperature=0.2,
    )


async def _collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registered_as_the_ollama_compat() -> None:
    assert load_factory("ollama") is OllamaProvider


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "http://localhost:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("http://localhost:11434/v1", "http://localhost:11434"),
        ("http://localhost:11434/v1/", "http://localhost:11434"),
        ("http://localhost:11434/api", "http://localhost:11434"),
    ],
)
def test_base_url(base_url: str | None, expected: str) -> None:
    provider = OllamaProvider(ConnectionSettings(name="o", compat="ollama", base_url=base_url))
    assert provider.chat_url() == f"{expected}/api/chat"
    assert provider.models_url() == f"{expected}/api/tags"


# --- success paths --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_split_at_random_boundaries(
    upstream: FakeUpstream, make_provider: Factory, seed: int
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM, chunks="random", split_seed=seed))
    response = aggregate(await _collect(make_provider().stream(_request())), model="llama3")
    assert (response.content, response.finish_reason) == (JOKE, "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (17, 50)


async def test_stream_of_a_tool_call(upstream: FakeUpstream, make_provider: Factory) -> None:
    fixture = "ollama/api-chat-stream-tools.docs-example.ndjson"
    upstream.route("POST", CHAT, Reply.fixture(fixture, chunks="random", split_seed=2))
    response = aggregate(await _collect(make_provider().stream(_request())), model="llama3.2")
    [call] = response.tool_calls
    assert (call.name, call.parsed_arguments()) == ("get_weather", {"city": "Tokyo"})
    assert response.finish_reason == "tool_calls"


async def test_stream_sends_the_request_the_upstream_expects(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    await _collect(make_provider().stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", CHAT)
    assert "authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}],
        "stream": True,
        "options": {"temperature": 0.2},
    }


async def test_a_key_is_sent_as_bearer(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    await _collect(make_provider(api_key=KEY, headers={"X-Team": "blue"}).stream(_request()))
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert upstream.requests[0].headers["x-team"] == "blue"


async def test_openai_style_base_url_reaches_the_native_api(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    await _collect(make_provider(base_url=f"{upstream.url}/v1").stream(_request()))
    assert upstream.requests[0].path == CHAT


async def test_complete_from_a_json_body(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.fixture("ollama/api-chat.json"))
    response = await make_provider().complete(_request())
    assert response.content.startswith("A joke about OpenTelemetry!")
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (17, 66)
    assert upstream.requests[0].json()["stream"] is False


async def test_list_models(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("GET", "/api/tags", Reply.fixture("ollama/api-tags.docs-example.json"))
    models = await make_provider().list_models()
    assert [(m.id, m.connection) for m in models] == [
        ("deepseek-r1:latest", "local"),
        ("llama3.2:latest", "local"),
    ]


# --- error statuses ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_missing_model_says_to_pull_it(
    upstream: FakeUpstream, make_provider: Factory, path: str
) -> None:
    body = {"error": 'model "llama9" not found, try pulling it first'}
    upstream.route("POST", CHAT, Reply.json(body, 404))
    provider = make_provider()
    with pytest.raises(ModelNotFoundError) as caught:
        if path == "stream":
            await _collect(provider.stream(_request("llama9")))
        else:
            await provider.complete(_request("llama9"))
    assert "ollama pull llama9" in str(caught.value)
    assert (caught.value.connection, caught.value.model, caught.value.status) == (
        "local",
        "llama9",
        404,
    )
    assert caught.value.url == f"{upstream.url}{CHAT}"


async def test_terse_404_still_names_the_requested_model(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.json({"error": "not found"}, 404))
    with pytest.raises(ModelNotFoundError, match="ollama pull qwen2.5-coder:7b"):
        await _collect(make_provider().stream(_request("qwen2.5-coder:7b")))


@pytest.mark.parametrize(
    ("reply", "error_class", "status"),
    [
        (Reply.json({"error": "unauthorized"}, 401), AuthError, 401),
        (
            Reply.json({"error": "input length exceeds the context length (4096 tokens)"}, 400),
            ContextTooLongError,
            400,
        ),
        (Reply.json({"error": "llama runner process has terminated"}, 500), UpstreamError, 500),
        (Reply(status=503, body=b"server busy"), UpstreamError, 503),
    ],
)
async def test_error_statuses(
    upstream: FakeUpstream,
    make_provider: Factory,
    reply: Reply,
    error_class: type[ModelportError],
    status: int,
) -> None:
    upstream.route("POST", CHAT, reply)
    with pytest.raises(error_class) as caught:
        await _collect(make_provider(api_key=KEY).stream(_request()))
    assert caught.value.status == status
    assert (caught.value.connection, caught.value.model) == ("local", "llama3")
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


async def test_rate_limit_from_a_proxy(upstream: FakeUpstream, make_provider: Factory) -> None:
    reply = Reply.json({"error": "too many requests"}, 429, headers={"Retry-After": "3"})
    upstream.route("POST", CHAT, reply)
    with pytest.raises(RateLimitError) as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.retry_after == 3.0


async def test_in_band_error_line(upstream: FakeUpstream, make_provider: Factory) -> None:
    body = (
        b'{"model":"llama3","message":{"role":"assistant","content":"Hi"},"done":false}\n'
        b'{"error":"an unknown error was encountered while running the model"}\n'
    )
    upstream.route("POST", CHAT, Reply(body=body, chunks=[20]))
    with pytest.raises(ModelportError, match="unknown error") as caught:
        await _collect(make_provider().stream(_request()))
    assert (caught.value.connection, caught.value.model) == ("local", "llama3")


# --- the network -------------------------------------------------------------------


async def test_connection_refused_asks_whether_ollama_runs(make_provider: Factory) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    stream = make_provider(base_url=f"{base}/v1").stream(_request())
    with pytest.raises(NetworkError) as caught:
        await anext(stream)
    message = str(caught.value)
    assert f"Cannot reach {base} (connection refused)" in message
    assert "is Ollama running (`ollama serve`)?" in message
    assert caught.value.url == f"{base}/api/chat"


async def test_connection_refused_for_list_models(make_provider: Factory) -> None:
    provider = make_provider(base_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(NetworkError, match="ollama serve"):
        await provider.list_models()


@pytest.mark.parametrize("drop_after", [0, 200, 3000])
async def test_dropped_connection_mid_stream(
    upstream: FakeUpstream, make_provider: Factory, drop_after: int
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM, chunks=[150], drop_after=drop_after))
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="closed mid-response"):
        async for event in make_provider().stream(_request()):
            received.append(event)
    assert not any(event.type == "finish" for event in received)


async def test_body_that_ends_without_done_is_not_complete(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    # A clean end of body (terminating chunk sent) but no "done": true line.
    truncated = b"".join(Reply.fixture(STREAM).body.splitlines(keepends=True)[:5])
    upstream.route("POST", CHAT, Reply(body=truncated, chunks=[64]))
    with pytest.raises(NetworkError):
        await _collect(make_provider().stream(_request()))


async def test_hang_times_out_naming_the_setting(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply(hang=True))
    with pytest.raises(NetworkError) as caught:
        await _collect(make_provider(timeout=0.2).stream(_request()))
    assert "0.2 s" in str(caught.value) and "`timeout`" in str(caught.value)


async def test_cancelling_the_consumer_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM, chunks=SLOW, chunk_delay=1.0))
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
    upstream.route("POST", CHAT, Reply.fixture(STREAM, chunks=SLOW, chunk_delay=1.0))
    stream = make_provider().stream(_request())
    await anext(stream)
    await stream.aclose()
    assert await upstream.requests[0].wait_closed(0.5)
