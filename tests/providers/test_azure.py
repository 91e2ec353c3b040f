"""The Azure OpenAI provider against a real local server.

No recorded Azure traffic exists in tests/fixtures (see SOURCES.md), so the
replies here are built from the shapes Azure documents for Chat Completions
(the ``prompt_filter_results`` chunk that opens a stream, ``content_filter_results``
on each choice, the 400 ``content_filter`` error with its ``innererror``) and
the ``Models - List`` answer. They are typed here, not recorded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.config import parse_config
from modelport.errors import AuthError, ConfigError, InvalidRequestError
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, load_factory
from modelport.providers.azure import DEFAULT_API_VERSION, AzureProvider
from modelport.routing import Router
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message

KEY = "azure-test-secret-0123456789abcdef"
DEPLOYMENT = "my-gpt4o"
CHAT = f"/openai/deployments/{DEPLOYMENT}/chat/completions"

_SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                "hate": _SAFE,
                "jailbreak": {"filtered": False, "detected": False},
                "self_harm": _SAFE,
                "sexual": _SAFE,
                "violence": _SAFE,
            },
        }
    ],
}


def _chunk(delta: dict[str, Any], finish: str | None = None, filters: Any = None) -> dict[str, Any]:
    return {
        "choices": [
            {
                "content_filter_results": filters if filters is not None else {},
                "delta": delta,
                "finish_reason": finish,
                "index": 0,
                "logprobs": None,
            }
        ],
        "created": 1727000000,
        "id": "chatcmpl-AzUre",
        "model": "gpt-4o-2024-08-06",
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_azure",
    }


USAGE = {
    "choices": [],
    "created": 1727000000,
    "id": "chatcmpl-AzUre",
    "model": "gpt-4o-2024-08-06",
    "object": "chat.completion.chunk",
    "usage": {"completion_tokens": 2, "prompt_tokens": 9, "total_tokens": 11},
}


def sse(*chunks: dict[str, Any]) -> bytes:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return body + b"data: [DONE]\n\n"


HELLO = sse(
    PROMPT_FILTER,
    _chunk({"content": "", "refusal": None, "role": "assistant"}),
    _chunk({"content": "Hello"}, filters={"hate": _SAFE, "violence": _SAFE}),
    _chunk({"content": " world"}, filters={"hate": _SAFE, "violence": _SAFE}),
    _chunk({}, finish="stop"),
    USAGE,
)
FILTERED = sse(
    PROMPT_FILTER,
    _chunk({"content": "Here is how"}),
    _chunk(
        {}, finish="content_filter", filters={"violence": {"filtered": True, "severity": "medium"}}
    ),
    USAGE,
)
PROMPT_BLOCKED = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
        "content management policy. Please modify your prompt and retry.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": True, "severity": "high"},
                "jailbreak": {"filtered": True, "detected": True},
                "self_harm": _SAFE,
                "sexual": _SAFE,
                "violence": {"filtered": False, "severity": "low"},
            },
        },
    }
}

Factory = Callable[..., AzureProvider]


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[Factory]:
    made: list[AzureProvider] = []

    def make(**overrides: Any) -> AzureProvider:
        fields: dict[str, Any] = {
            "name": "azure",
            "compat": "azure",
            "base_url": upstream.url,
            "api_key": KEY,
            "max_retries": 0,
        }
        fields.update(overrides)
        provider = AzureProvider(ConnectionSettings(**fields))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def _request(model: str = DEPLOYMENT) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="Say hello")])


async def _collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def test_registered_as_the_azure_compat() -> None:
    assert load_factory("azure") is AzureProvider


@pytest.mark.parametrize(
    ("base_url", "options", "chat", "models"),
    [
        (
            "https://res.openai.azure.com",
            {},
            f"https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version={DEFAULT_API_VERSION}",
            f"https://res.openai.azure.com/openai/models?api-version={DEFAULT_API_VERSION}",
        ),
        (
            "https://res.openai.azure.com/openai/",
            {"api_version": "2025-04-01-preview"},
            "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2025-04-01-preview",
            "https://res.openai.azure.com/openai/models?api-version=2025-04-01-preview",
        ),
        (
            "https://res.openai.azure.com/openai/v1/",
            {},
            "https://res.openai.azure.com/openai/v1/chat/completions",
            "https://res.openai.azure.com/openai/v1/models",
        ),
        (
            "https://res.openai.azure.com/openai/v1",
            {"api_version": "preview"},
            "https://res.openai.azure.com/openai/v1/chat/completions?api-version=preview",
            "https://res.openai.azure.com/openai/v1/models?api-version=preview",
        ),
    ],
)
def test_urls(base_url: str, options: dict[str, Any], chat: str, models: str) -> None:
    provider = AzureProvider(
        ConnectionSettings(name="a", compat="azure", base_url=base_url, options=options)
    )
    assert provider.request_url("d", stream=True) == chat
    assert provider.models_url() == models


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api-version": "2024-10-21"}, "sets 'api-version'.*Did you mean 'api_version'"),
        ({"deployment": ["x"]}, "Did you mean 'deployments'"),
        ({"deployments": "gpt-4o"}, "deployments must be a list"),
        ({"api_version": 2024}, "api_version must be a string"),
    ],
)
def test_settings_azure_would_ignore_or_misread_are_refused(
    options: dict[str, Any], message: str
) -> None:
    settings = ConnectionSettings(name="a", compat="azure", base_url="https://r", options=options)
    with pytest.raises(ConfigError, match=message):
        AzureProvider(settings)


async def test_no_base_url_says_what_to_set(make_provider: Factory) -> None:
    with pytest.raises(ConfigError, match=r"https://NAME\.openai\.azure\.com"):
        await _collect(make_provider(base_url=None).stream(_request()))


# --- chats ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_with_azures_filter_results(
    upstream: FakeUpstream, make_provider: Factory, seed: int
) -> None:
    upstream.route(
        "POST",
        CHAT,
        Reply(body=HELLO, content_type="text/event-stream", chunks="random", split_seed=seed),
    )
    response = aggregate(await _collect(make_provider().stream(_request())), model=DEPLOYMENT)
    assert (response.content, response.finish_reason) == ("Hello world", "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 2)
    [sent] = upstream.requests
    assert (sent.path, sent.query) == (CHAT, f"api-version={DEFAULT_API_VERSION}")
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    assert sent.json() == {
        "model": DEPLOYMENT,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_a_filtered_completion_finishes_with_content_filter(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply(body=FILTERED, content_type="text/event-stream"))
    response = aggregate(await _collect(make_provider().stream(_request())), model=DEPLOYMENT)
    assert (response.content, response.finish_reason) == ("Here is how", "content_filter")


async def test_a_filtered_answer_without_streaming(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    body = {
        "id": "chatcmpl-AzUre",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "prompt_filter_results": PROMPT_FILTER["prompt_filter_results"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "content_filter",
                "message": {"role": "assistant", "content": None},
                "content_filter_results": {"sexual": {"filtered": True, "severity": "high"}},
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9},
    }
    upstream.route("POST", CHAT, Reply.json(body))
    response = await make_provider().complete(_request())
    assert (response.content, response.finish_reason, response.id) == (
        "",
        "content_filter",
        "chatcmpl-AzUre",
    )


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_a_prompt_the_filter_refused_is_a_clear_error(
    upstream: FakeUpstream, make_provider: Factory, path: str
) -> None:
    upstream.route("POST", CHAT, Reply.json(PROMPT_BLOCKED, status=400))
    provider = make_provider()
    with pytest.raises(InvalidRequestError) as caught:
        if path == "stream":
            await _collect(provider.stream(_request()))
        else:
            await provider.complete(_request())
    error = caught.value
    assert error.message == (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry. "
        "(Azure content filter: hate (high), jailbreak)"
    )
    assert (error.status, error.retryable, error.model) == (400, False, DEPLOYMENT)
    assert KEY not in str(error)


async def test_the_v1_form(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route(
        "POST", "/openai/v1/chat/completions", Reply(body=HELLO, content_type="text/event-stream")
    )
    provider = make_provider(base_url=f"{upstream.url}/openai/v1")
    response = aggregate(await _collect(provider.stream(_request())), model=DEPLOYMENT)
    assert response.content == "Hello world"
    [sent] = upstream.requests
    assert (sent.path, sent.query, sent.json()["model"]) == (
        "/openai/v1/chat/completions",
        "",
        DEPLOYMENT,
    )


async def test_an_old_api_version_gets_no_stream_options(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route("POST", CHAT, Reply(body=HELLO, content_type="text/event-stream"))
    provider = make_provider(options={"api_version": "2024-06-01"})
    await _collect(provider.stream(_request()))
    [sent] = upstream.requests
    assert sent.query == "api-version=2024-06-01"
    assert "stream_options" not in sent.json()


async def test_missing_key_fails_before_any_request(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    with pytest.raises(AuthError, match='api_key_env = "AZURE_OPENAI_API_KEY"'):
        await _collect(make_provider(api_key=None).stream(_request()))
    assert upstream.requests == []


# --- models --------------------------------------------------------------------------

# Azure's documented Models - List answer for a resource (abridged).
MODELS = {
    "data": [
        {
            "id": "gpt-4o-2024-08-06",
            "status": "succeeded",
            "capabilities": {"chat_completion": True, "completion": False},
            "lifecycle_status": "generally-available",
            "object": "model",
        }
    ],
    "object": "list",
}


async def test_models_the_resource_offers(upstream: FakeUpstream, make_provider: Factory) -> None:
    upstream.route("GET", "/openai/models", Reply.json(MODELS))
    [model] = await make_provider().list_models()
    assert model.address == "azure/gpt-4o-2024-08-06"
    [sent] = upstream.requests
    assert (sent.query, sent.headers["api-key"]) == (f"api-version={DEFAULT_API_VERSION}", KEY)


async def test_named_deployments_are_listed_once_the_resource_answers(
    upstream: FakeUpstream, make_provider: Factory
) -> None:
    upstream.route(
        "GET",
        "/openai/models",
        Reply.json(MODELS),
        Reply.json(
            {"error": {"code": "401", "message": "Access denied due to invalid key"}}, status=401
        ),
    )
    provider = make_provider(options={"deployments": ["my-gpt4o", "embeddings"]})
    assert [m.address for m in await provider.list_models()] == [
        "azure/my-gpt4o",
        "azure/embeddings",
    ]
    with pytest.raises(AuthError):
        await provider.list_models()


async def test_through_the_router_with_a_configured_key_variable(upstream: FakeUpstream) -> None:
    config = parse_config(
        f"[connections.work]\ncompat = 'azure'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'AZURE_OPENAI_API_KEY'\napi_version = '2025-04-01-preview'\n"
        "max_retries = 0\n"
    )
    upstream.route("POST", CHAT, Reply(body=HELLO, content_type="text/event-stream"))
    router = Router(config, env={"AZURE_OPENAI_API_KEY": KEY})
    try:
        events = [event async for event in router.stream(_request(f"work/{DEPLOYMENT}"))]
    finally:
        await router.aclose()
    assert aggregate(events, model=DEPLOYMENT).content == "Hello world"
    [sent] = upstream.requests
    assert (sent.query, sent.headers["api-key"]) == ("api-version=2025-04-01-preview", KEY)
