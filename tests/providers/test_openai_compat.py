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
    ConfigError,
    ContextTooLongError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, load_factory
from modelport.providers._http import HttpClient
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.testing import FakeUpstream, Reply, fixtures_dir
from modelport.types import ChatRequest, Message

CHAT = "/v1/chat/completions"
KEY = "sk-test-secret-0123456789"
TEXT_STREAM = "openai/chat-stream-text-include-usage.sse"
TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in "
    "San Francisco, I recommend checking a reliable weather website or a weather app."
)

#: Events arrive in the first write; then one more piece a second, long enough to interrupt.
SLOW = [700] + [100] * 60

Factory = Callable[..., OpenAICompatProvider]


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[Factory]:
    made: list[OpenAICompatProvider] = []

    def make(**overrides: Any) -> OpenAICompatProvider:
        fields: dict[str, Any] = {
            "name": "local",
            "compat": "openai",
            "base_url": f"{upstream.url}/v1",
            "api_key": KEY,
        }
        fields.update(overrides)
        provider = OpenAICompatProvider(ConnectionSettings(**fields))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def _request(model: str = "gpt-4o") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="Weather in SF?")])


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


def test_registered_as_the_openai_compat() -> None:
    assert load_factory("openai") is OpenAICompatProvider


# --- success paths --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_split_at_random_boundaries(
    upstream: FakeUpstream, make_provider: Factory, seed: int
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks="random", split_seed=seed))
    events = await _collect(make_provider().stream(_request()))
    response = aggregate(events, model="gpt-4o")
    assert (response.content, response.finish_reason) == (TEXT, "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (14, 30)


async def test_stream_says_which_events_came_with_more_in_the_same_read(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    from modelport._bursts import more_ready

    body = (fixtures_dir() / TEXT_STREAM).read_bytes()
    # The role chunk and two text chunks (the role chunk carries no event of its own).
    first_read = 0
    for _ in range(3):
        first_read = body.index(b"\n\n", first_read) + 2
    # A pause between the writes, so the provider sees two reads.
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks=[first_read], chunk_delay=0.2))
    flags = [more_ready.get() async for _event in make_provider().stream(_request())]
    # Each read's events but its last say "more ready"; nothing is left saying so.
    assert flags[:2] == [True, False]
    assert flags[2:] == [True] * (len(flags) - 3) + [False]
    assert not more_ready.get()


async def test_stream_of_split_tool_call_arguments(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    fixture = "openai/chat-stream-parallel-tool-calls-split-args.sse"
    upstream.route("POST", CHAT, Reply.fixture(fixture, chunks="random", split_seed=9))
    response = aggregate(await _collect(make_provider().stream(_request())), model="gpt-4o")
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("get_weather", {"city": "Mexico City"}),
        ("get_product_name", {}),
    ]
    assert response.finish_reason == "tool_calls"


async def test_stream_sends_the_request_the_upstream_expects(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    provider = make_provider(headers={"X-Team": "blue"})
    await _collect(provider.stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", CHAT)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-team"] == "blue"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Weather in SF?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_keyless_server_gets_a_placeholder_bearer(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    await _collect(make_provider(api_key=None).stream(_request("llama3.1:8b")))
    assert upstream.requests[0].headers["authorization"] == "Bearer modelport"


async def test_complete_from_a_json_body(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.fixture("openai/chat-completion-tool-call.json"))
    response = await make_provider().complete(_request())
    [call] = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_TTY8UFNo7rNCaOBUNtlRSvMG",
        "lookup_population",
        {"country": "Crumpet"},
    )
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (92, 17)
    assert response.model == "gpt-4o"
    assert response.id.startswith("chatcmpl-")
    body = upstream.requests[0].json()
    assert body.get("stream", False) is False
    assert "stream_options" not in body


async def test_list_models(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route(
        "GET",
        "/v1/models",
        Reply.json(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o", "object": "model", "owned_by": "openai"},
                    {"id": "llama3.1:8b", "object": "model", "owned_by": "library"},
                ],
            }
        ),
    )
    models = await make_provider().list_models()
    assert [(m.id, m.connection) for m in models] == [("gpt-4o", "local"), ("llama3.1:8b", "local")]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_trailing_slash_in_base_url(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    await _collect(make_provider(base_url=f"{upstream.url}/v1/").stream(_request()))
    assert upstream.requests[0].path == CHAT


async def test_no_base_url_is_a_config_error() -> None:
    provider = OpenAICompatProvider(ConnectionSettings(name="work", compat="openai"))
    with pytest.raises(ConfigError, match="base_url"):
        await _collect(provider.stream(_request()))
    await provider.aclose()


async def test_a_shared_client_is_not_closed_by_the_provider(upstream: FakeUpstream) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    client = HttpClient(timeout=5)
    settings = ConnectionSettings(name="a", compat="openai", base_url=f"{upstream.url}/v1")
    provider = OpenAICompatProvider(settings, client=client)
    await _collect(provider.stream(_request()))
    await provider.aclose()
    # Still usable: the provider did not own it.
    await _collect(OpenAICompatProvider(settings, client=client).stream(_request()))
    await client.aclose()


# --- error statuses ----------------------------------------------------------------

_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@pytest.mark.parametrize("path", ["stream", "complete"])
@pytest.mark.parametrize(
    ("reply", "error_class", "status"),
    [
        (Reply.json(_error("Incorrect API key", "invalid_request_error"), 401), AuthError, 401),
        (
            Reply.json(_error("The model `gpt-9` does not exist", "invalid_request_error"), 404),
            ModelNotFoundError,
            404,
        ),
        (Reply.json(_CONTEXT, 400), ContextTooLongError, 400),
        (Reply.json(_error("boom", "server_error"), 500), UpstreamError, 500),
        (Reply(status=502, body=b"<html>Bad Gateway</html>"), UpstreamError, 502),
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
    upstream.route("POST", CHAT, reply)
    provider = make_provider()
    with pytest.raises(error_class) as caught:
        if path == "stream":
            await _collect(provider.stream(_request()))
        else:
            await provider.complete(_request())
    error = caught.value
    assert error.status == status
    assert (error.connection, error.model) == ("local", "gpt-4o")
    assert error.url == f"{upstream.url}{CHAT}"
    _assert_no_secret(error)


async def test_context_too_long_has_numbers(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.json(_CONTEXT, 400))
    with pytest.raises(ContextTooLongError) as caught:
        await _collect(make_provider().stream(_request()))
    assert (caught.value.limit, caught.value.actual) == (8192, 9000)


async def test_rate_limit_carries_retry_after(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    body = _error("Rate limit reached", "requests", "rate_limit_exceeded")
    upstream.route("POST", CHAT, Reply.json(body, 429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


async def test_redirects_are_not_followed(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route(
        "POST", CHAT, Reply(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    )
    with pytest.raises(UpstreamError, match="does not follow redirects") as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.status == 307
    assert len(upstream.requests) == 1


async def test_in_band_error_mid_stream_gets_context(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture("openrouter/chat-stream-midstream-error.sse"))
    with pytest.raises(ModelportError) as caught:
        await _collect(make_provider().stream(_request()))
    assert (caught.value.connection, caught.value.model) == ("local", "gpt-4o")


# --- the network -------------------------------------------------------------------


async def test_connection_refused_raises_on_first_anext(make_provider: Factory) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    stream = make_provider(base_url=base).stream(_request())  # nothing happens yet
    with pytest.raises(NetworkError) as caught:
        await anext(stream)
    message = str(caught.value)
    assert f"Cannot reach {base} (connection refused)" in message
    assert "is the server running? is the URL right?" in message
    assert (caught.value.connection, caught.value.model) == ("local", "gpt-4o")
    assert caught.value.url == f"{base}/chat/completions"
    _assert_no_secret(caught.value)


async def test_connection_refused_for_list_models(make_provider: Factory) -> None:
    with pytest.raises(NetworkError, match="connection refused"):
        await make_provider(base_url=f"http://127.0.0.1:{_closed_port()}/v1").list_models()


@pytest.mark.parametrize("drop_after", [0, 700, 1500])
async def test_dropped_connection_mid_stream(
    upstream: FakeUpstream, make_provider: Factory, drop_after: int
) -> None:
    reply = Reply.fixture(TEXT_STREAM, chunks=[100], drop_after=drop_after)
    upstream.route("POST", CHAT, reply)
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="closed mid-response") as caught:
        async for event in make_provider().stream(_request()):
            received.append(event)
    assert not any(event.type == "finish" for event in received)
    assert caught.value.model == "gpt-4o"


async def test_dropped_connection_of_a_complete(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    reply = Reply.fixture("openai/chat-completion-tool-call.json", drop_after=50)
    upstream.route("POST", CHAT, reply)
    with pytest.raises(NetworkError, match="closed mid-response"):
        await make_provider().complete(_request())


async def test_hang_times_out_naming_the_setting(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        await _collect(make_provider(timeout=0.3).stream(_request()))
    assert time.monotonic() - started < 5
    assert "0.3 s" in str(caught.value) and "`timeout`" in str(caught.value)
    assert await upstream.requests[0].wait_closed(5)


async def test_stall_mid_stream_times_out(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks=[700], chunk_delay=2.0))
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="0.3 s"):
        async for event in make_provider(timeout=0.3).stream(_request()):
            received.append(event)
    assert received  # the first piece arrived before the stall


async def test_cancelling_the_consumer_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks=SLOW, chunk_delay=1.0))
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in make_provider().stream(_request()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    assert await upstream.requests[0].wait_closed(2)
    assert time.monotonic() - started < 0.5


async def test_aclose_on_the_generator_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks=SLOW, chunk_delay=1.0))
    stream = make_provider().stream(_request())
    await anext(stream)
    await stream.aclose()
    assert await upstream.requests[0].wait_closed(1)


async def test_finished_streams_reuse_the_connection(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks="random", split_seed=5))
    provider = make_provider()
    for _ in range(3):
        await _collect(provider.stream(_request()))
    assert upstream.open_connections == 1


async def test_cancelling_before_the_headers_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply(hang=True))
    task = asyncio.create_task(_collect(make_provider().stream(_request())))
    deadline = time.monotonic() + 5
    while not upstream.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await upstream.requests[0].wait_closed(0.5)


async def test_a_shared_client_honours_the_connection_timeout(upstream: FakeUpstream) -> None:
    upstream.route("POST", CHAT, Reply(hang=True))
    client = HttpClient(timeout=60)
    settings = ConnectionSettings(
        name="a", compat="openai", base_url=f"{upstream.url}/v1", timeout=0.2
    )
    try:
        with pytest.raises(NetworkError, match="0.2 s"):
            await OpenAICompatProvider(settings, client=client).complete(_request())
    finally:
        await client.aclose()


# --- a 2xx answer that is not a stream ----------------------------------------------


async def test_a_json_answer_to_a_stream_request_is_decoded_once(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    from modelport.providers._retry import RetryingProvider

    # A server that ignores `stream: true` and answers with a chat.completion.
    upstream.route("POST", CHAT, Reply.fixture("openai/chat-completion-tool-call.json"))
    provider = RetryingProvider(make_provider(), max_retries=2)
    response = aggregate(await _collect(provider.stream(_request())), model="gpt-4o")
    assert response.tool_calls[0].name == "lookup_population"
    assert response.finish_reason == "tool_calls"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<!doctype html><title>Welcome to nginx</title>"),
        ("text/event-stream", b""),
        ("text/plain", b"Not Found\n"),
    ],
)
async def test_a_body_that_is_no_stream_is_a_parse_error_not_retried(
    upstream: FakeUpstream, make_provider: Factory, content_type: str, body: bytes
) -> None:
    from modelport.errors import ParseError
    from modelport.providers._retry import RetryingProvider

    upstream.route("POST", CHAT, Reply(body=body, content_type=content_type))
    provider = RetryingProvider(make_provider(), max_retries=2)
    with pytest.raises(ParseError) as caught:
        await _collect(provider.stream(_request()))
    assert not caught.value.retryable
    assert "does it end in /v1?" in str(caught.value)
    if "html" in content_type:
        assert "HTML page" in str(caught.value)
    assert len(upstream.requests) == 1  # never re-sent (and billed) again


async def test_an_html_page_for_a_complete_says_what_to_check(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    from modelport.errors import ParseError

    upstream.route("POST", CHAT, Reply(body=b"<html>login</html>", content_type="text/html"))
    with pytest.raises(ParseError, match="HTML page.*does it end in /v1"):
        await make_provider().complete(_request())


async def test_a_stream_answer_to_a_complete_is_decoded(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    response = await make_provider().complete(_request())
    assert response.content == TEXT


async def test_refused_on_ollamas_port_asks_whether_the_model_is_pulled(
    make_provider: Factory,
) -> None:
    hint = make_provider(base_url="http://127.0.0.1:11434/v1").hint_for("llama3.1:8b")
    assert "`ollama serve`" in hint
    assert "is the model pulled (`ollama pull llama3.1:8b`)?" in hint
    assert "ollama" not in make_provider().hint_for("llama3.1:8b")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    provider = make_provider(base_url=f"http://127.0.0.1:{port}/v1")
    provider.hint_for = lambda model: hint  # type: ignore[method-assign]
    with pytest.raises(NetworkError) as caught:
        await provider.complete(_request("llama3.1:8b"))
    assert "connection refused" in str(caught.value)
    assert "is the model pulled (`ollama pull llama3.1:8b`)?" in str(caught.value)


async def test_credentials_in_the_base_url_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'local'") as caught:
        OpenAICompatProvider(
            ConnectionSettings(name="local", compat="openai", base_url="http://u:pw-s3@h/v1")
        )
    assert "pw-s3" not in str(caught.value)
