"""The Gemini provider against a real local server replaying Google's recorded traffic."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.config import parse_config
from modelport.errors import (
    AuthError,
    ConfigError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
)
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, load_factory
from modelport.providers._retry import RetryingProvider
from modelport.providers.gemini import GeminiProvider
from modelport.routing import Router
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message
from tests._fixtures import fixture_bytes

KEY = "AIza-test-secret-0123456789abcdef"
MODEL = "gemini-2.0-flash-exp"
STREAM_PATH = f"/v1beta/models/{MODEL}:streamGenerateContent"
TEXT = "google/streamGenerateContent-sse-text.sse"
THINKING = "google/streamGenerateContent-sse-thinking.sse"

Factory = Callable[..., GeminiProvider]


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[Factory]:
    made: list[GeminiProvider] = []

    def make(**overrides: Any) -> GeminiProvider:
        fields: dict[str, Any] = {
            "name": "gemini",
            "compat": "gemini",
            "base_url": upstream.url,
            "api_key": KEY,
            "max_retries": 0,
        }
        fields.update(overrides)
        provider = GeminiProvider(ConnectionSettings(**fields))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def _request(model: str = MODEL) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            Message(role="system", content="You are a helpful chatbot."),
            Message(role="user", content="What is the capital of France?"),
        ],
        temperature=0.0,
    )


async def _collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def _assert_no_secret(error: ModelportError) -> None:
    assert KEY not in str(error) and KEY not in repr(error.__dict__)


def test_registered_as_the_gemini_compat() -> None:
    assert load_factory("gemini") is GeminiProvider


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        (None, "https://generativelanguage.googleapis.com/v1beta"),
        (
            "https://generativelanguage.googleapis.com/",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        (
            "https://generativelanguage.googleapis.com/v1",
            "https://generativelanguage.googleapis.com/v1",
        ),
        ("https://proxy.example/google/v1beta/", "https://proxy.example/google/v1beta"),
    ],
)
def test_urls(base_url: str | None, root: str) -> None:
    provider = GeminiProvider(ConnectionSettings(name="g", compat="gemini", base_url=base_url))
    assert provider.request_url("gemini-2.5-flash", stream=True) == (
        f"{root}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert provider.request_url("models/gemini-2.5-flash", stream=False) == (
        f"{root}/models/gemini-2.5-flash:generateContent"
    )
    assert provider.request_url("tunedModels/my-model-7", stream=False) == (
        f"{root}/tunedModels/my-model-7:generateContent"
    )
    assert provider.models_url() == f"{root}/models?pageSize=1000"


def test_an_option_gemini_does_not_use_is_refused() -> None:
    settings = ConnectionSettings(name="g", compat="gemini", options={"api_version": "v1"})
    with pytest.raises(ConfigError, match=r"\[connections.g\] sets 'api_version'"):
        GeminiProvider(settings)


# --- success paths --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_split_at_random_boundaries(
    upstream: FakeUpstream, make_provider: Factory, seed: int
) -> None:
    upstream.route("POST", STREAM_PATH, Reply.fixture(TEXT, chunks="random", split_seed=seed))
    response = aggregate(await _collect(make_provider().stream(_request())), model=MODEL)
    assert (response.content, response.finish_reason) == (
        "The capital of France is Paris.\n",
        "stop",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (13, 8)


async def test_stream_sends_the_request_google_expects(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", STREAM_PATH, Reply.fixture(TEXT))
    await _collect(make_provider(headers={"X-Team": "blue"}).stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path, sent.query) == ("POST", STREAM_PATH, "alt=sse")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.headers["x-team"] == "blue"
    assert "authorization" not in sent.headers and KEY not in sent.query
    recorded = json.loads(fixture_bytes("google/streamGenerateContent-sse-text.request.json"))
    del recorded["systemInstruction"]["role"]
    assert sent.json() == recorded


async def test_thinking_then_a_signed_answer_round_trips(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    upstream.route("POST", path, Reply.fixture(THINKING, chunks="random", split_seed=5))
    provider = make_provider()
    request = ChatRequest(
        model="gemini-2.5-pro", messages=[Message(role="user", content="How do I cross?")]
    )
    answer = aggregate(await _collect(provider.stream(request)), model="gemini-2.5-pro")
    [thinking] = answer.thinking
    assert thinking.text.startswith("**Clarifying User Goals**") and thinking.signature
    follow_up = ChatRequest(
        model="gemini-2.5-pro",
        messages=[*request.messages, answer.to_message(), Message(role="user", content="Thanks")],
    )
    await _collect(provider.stream(follow_up))
    model_turn = upstream.requests[1].json()["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0] == {"text": thinking.text, "thought": True}
    assert model_turn["parts"][1] == {
        "text": answer.content,
        "thoughtSignature": thinking.signature,
    }


async def test_complete_from_a_json_body(upstream: FakeUpstream, make_provider: Factory) -> None:
    # The recorded body of a streamGenerateContent call made without alt=sse: a JSON
    # array of responses, which generateContent's reader takes as well as one object.
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    upstream.route(
        "POST",
        path,
        Reply.fixture(
            "google/streamGenerateContent-json-array-functionCall.json",
            content_type="application/json",
        ),
    )
    response = await make_provider().complete(_request("gemini-2.5-flash"))
    [call] = response.tool_calls
    assert (call.name, call.parsed_arguments()) == ("pelican_name_generator", {})
    assert call.signature and call.signature.startswith("ClgBEU0yD8z3")
    assert response.reasoning.startswith("**Generating Pelican Names**")
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (32, 54)
    [sent] = upstream.requests
    assert (sent.path, sent.query) == (path, "")


async def test_list_models(upstream: FakeUpstream, make_provider: Factory) -> None:
    # The documented ListModelsResponse shape (no recording of it exists here).
    body = {
        "models": [
            {
                "name": "models/gemini-2.5-flash",
                "displayName": "Gemini 2.5 Flash",
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
        ]
    }
    upstream.route("GET", "/v1beta/models", Reply.json(body))
    [model] = await make_provider().list_models()
    assert (model.address, model.name, model.context_window) == (
        "gemini/gemini-2.5-flash",
        "Gemini 2.5 Flash",
        1048576,
    )
    [sent] = upstream.requests
    assert (sent.query, sent.headers["x-goog-api-key"]) == ("pageSize=1000", KEY)


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
    assert "modelport keys set gemini`, or set $GEMINI_API_KEY (or $GOOGLE_API_KEY)" in str(
        caught.value
    )
    assert upstream.requests == []


# --- errors and the network -----------------------------------------------------


async def test_not_found(upstream: FakeUpstream, make_provider: Factory) -> None:
    path = "/v1beta/models/gemini-3.6-flahs:generateContent"
    upstream.route(
        "POST", path, Reply.fixture("google/error-404-not_found.sorted.json", status=404)
    )
    with pytest.raises(ModelNotFoundError) as caught:
        await make_provider().complete(_request("gemini-3.6-flahs"))
    error = caught.value
    assert (error.status, error.connection, error.model) == (404, "gemini", "gemini-3.6-flahs")
    assert error.url == f"{upstream.url}{path}"
    _assert_no_secret(error)


async def test_resource_exhausted_is_retried_after_its_delay(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route(
        "POST",
        STREAM_PATH,
        Reply.fixture("google/error-429-resource_exhausted.json", status=429),
        Reply.fixture(TEXT),
    )
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    provider = RetryingProvider(make_provider(), max_retries=1, sleep=sleep)
    response = aggregate(await _collect(provider.stream(_request())), model=MODEL)
    assert response.content == "The capital of France is Paris.\n"
    assert waited == [34.4]


async def test_a_rate_limit_without_retries_says_so(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route(
        "POST", STREAM_PATH, Reply.fixture("google/error-429-resource_exhausted.json", status=429)
    )
    with pytest.raises(RateLimitError) as caught:
        await _collect(make_provider().stream(_request()))
    assert caught.value.retry_after == 34.4


@pytest.mark.parametrize("drop_after", [0, 300, 3000])
async def test_dropped_connection_mid_stream(
    upstream: FakeUpstream, make_provider: Factory, drop_after: int
) -> None:
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    upstream.route("POST", path, Reply.fixture(THINKING, chunks=[200], drop_after=drop_after))
    with pytest.raises(NetworkError):
        await _collect(make_provider().stream(_request("gemini-2.5-pro")))


async def test_cancelling_the_consumer_closes_the_upstream(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    upstream.route(
        "POST", path, Reply.fixture(THINKING, chunks=[700] + [100] * 200, chunk_delay=1.0)
    )
    stream = make_provider().stream(_request("gemini-2.5-pro"))
    first = await anext(stream)
    assert first.type == "reasoning"
    await stream.aclose()
    request = upstream.requests[0]
    assert await asyncio.to_thread(request.closed.wait, 5)


async def test_connection_refused(make_provider: Factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(NetworkError, match="connection refused") as caught:
        await _collect(make_provider(base_url=base).stream(_request()))
    assert caught.value.url == f"{base}/v1beta/models/{MODEL}:streamGenerateContent"
    _assert_no_secret(caught.value)


# --- through the router: the preset and its key variables ------------------------


def test_the_preset_reads_gemini_api_key_then_google_api_key() -> None:
    router = Router(parse_config(""), env={"GOOGLE_API_KEY": "g-key"})
    settings = router.settings_for("gemini")
    assert (settings.compat, settings.api_key, settings.api_key_env) == (
        "gemini",
        "g-key",
        "GEMINI_API_KEY",
    )
    assert settings.base_url == "https://generativelanguage.googleapis.com"
    both = Router(parse_config(""), env={"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m"})
    assert both.settings_for("gemini").api_key == "m"


async def test_googles_key_never_goes_to_another_url(upstream: FakeUpstream) -> None:
    config = parse_config(f"[connections.gemini]\nbase_url = '{upstream.url}'\nmax_retries = 0\n")
    router = Router(config, env={"GEMINI_API_KEY": "real", "GOOGLE_API_KEY": "real"})
    try:
        assert router.settings_for("gemini").api_key is None
        with pytest.raises(AuthError):
            await router.complete(_request(f"gemini/{MODEL}"))
    finally:
        await router.aclose()
    assert upstream.requests == []


async def test_a_configured_connection_streams_through_the_router(
    upstream: FakeUpstream,
) -> None:
    config = parse_config(
        f"[connections.g]\ncompat = 'gemini'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'MY_GEMINI_KEY'\nmax_retries = 0\n"
    )
    upstream.route("POST", STREAM_PATH, Reply.fixture(TEXT, chunks="random", split_seed=9))
    router = Router(config, env={"MY_GEMINI_KEY": KEY})
    try:
        events = [event async for event in router.stream(_request(f"g/{MODEL}"))]
    finally:
        await router.aclose()
    assert aggregate(events, model=MODEL).content == "The capital of France is Paris.\n"
    assert upstream.requests[0].headers["x-goog-api-key"] == KEY
