"""What only the Anthropic adapter does: its wire, its version and beta headers, its
missing-key messages, its overloaded status. The scenarios every adapter shares are in
`test_adapters.py`."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.errors import AuthError, NetworkError, UpstreamError
from modelport.providers import ConnectionSettings
from modelport.providers._retry import RetryingProvider
from modelport.providers.anthropic import AnthropicProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message
from tests.providers._adapters import ANTHROPIC, Adapter
from tests.providers.conftest import ProviderFactory, collect

MESSAGES = ANTHROPIC.chat_path
KEY = ANTHROPIC.key
MODEL = ANTHROPIC.model
_request = ANTHROPIC.request


@pytest.fixture
def adapter() -> Adapter:
    return ANTHROPIC


# --- success paths --------------------------------------------------------------


async def test_stream_of_thinking_then_tool_use(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fixture = "anthropic/messages-stream-thinking-then-tool_use.sse"
    upstream.route("POST", MESSAGES, Reply.fixture(fixture, chunks="random", split_seed=4))
    response = aggregate(await collect(make_provider().stream(_request())), model=MODEL)
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
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # Extra headers: test_adapters.py::test_the_key_and_extra_headers_go_upstream.
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/messages-stream-text.sse"))
    await collect(make_provider().stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", MESSAGES)
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in sent.headers
    assert "authorization" not in sent.headers
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
    upstream: FakeUpstream, make_provider: ProviderFactory, beta: Any, header: str
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/messages-stream-text.sse"))
    options = {"anthropic_version": "2099-01-01", "anthropic_beta": beta}
    await collect(make_provider(options=options).stream(_request()))
    assert upstream.requests[0].headers["anthropic-version"] == "2099-01-01"
    assert upstream.requests[0].headers["anthropic-beta"] == header


def test_default_base_url() -> None:
    provider = AnthropicProvider(ConnectionSettings(name="anthropic", compat="anthropic"))
    assert provider.chat_url() == "https://api.anthropic.com/v1/messages"
    assert provider.models_url() == "https://api.anthropic.com/v1/models"


async def test_complete_from_a_json_body(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", MESSAGES, Reply.fixture("anthropic/message-text.json"))
    response = await make_provider().complete(_request())
    assert response.content.startswith("Hello! I'm doing well, thanks for asking.")
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 29)
    assert response.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert "stream" not in upstream.requests[0].json()
    assert upstream.requests[0].headers["x-api-key"] == KEY


async def test_list_models(upstream: FakeUpstream, make_provider: ProviderFactory) -> None:
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


# --- a missing key ------------------------------------------------------------------


@pytest.mark.parametrize("call", ["stream", "complete", "list_models"])
async def test_missing_key_fails_before_any_request(
    upstream: FakeUpstream, make_provider: ProviderFactory, call: str
) -> None:
    provider = make_provider(api_key=None)
    with pytest.raises(AuthError) as caught:
        if call == "stream":
            await collect(provider.stream(_request()))
        elif call == "complete":
            await provider.complete(_request())
        else:
            await provider.list_models()
    assert "modelport keys set anthropic" in str(caught.value)
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert caught.value.connection == "anthropic"
    assert upstream.requests == []


async def test_missing_key_of_another_connection_does_not_name_the_vendor_variable(
    upstream: FakeUpstream, make_provider: ProviderFactory
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
    upstream: FakeUpstream, make_provider: ProviderFactory
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


# --- error statuses ----------------------------------------------------------------


async def test_overloaded_is_retryable(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route(
        "POST",
        MESSAGES,
        Reply.json(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
        ),
    )
    with pytest.raises(UpstreamError) as caught:
        await collect(make_provider().stream(_request()))
    assert caught.value.retryable


# --- retries --------------------------------------------------------------------


async def test_a_stream_that_ends_after_message_start_is_retried(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
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
        await collect(provider.stream(_request()))
    assert len(upstream.requests) == 2


async def _no_sleep(delay: float) -> None:
    return None
