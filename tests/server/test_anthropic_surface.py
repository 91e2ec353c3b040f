"""Anthropic SDK → gateway → Anthropic upstream (recorded fixtures)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from modelport.testing import FakeUpstream, Reply
from tests.server._sse import anthropic_deltas, sse_events
from tests.server.conftest import UPSTREAM_ANTHROPIC_KEY, Gateway

USER = [{"role": "user", "content": "hi"}]
_EVENT = TypeAdapter(RawMessageStreamEvent)


def _route(upstream: FakeUpstream, fixture: str, seed: int = 1) -> None:
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.fixture(f"anthropic/{fixture}", chunks="random", split_seed=seed),
    )


def _raw_stream(gateway: Gateway, body: dict[str, object]) -> list[dict[str, object]]:
    """POST a streaming request; every event validated against the SDK's event union."""
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json={**body, "stream": True},
        headers={"anthropic-version": "2023-06-01"},
    ) as response:
        assert response.status_code == 200
        raw = response.read()
    events = []
    for event in sse_events(raw):
        payload = json.loads(event.data)
        assert payload["type"] == event.event
        if event.event != "ping":
            _EVENT.validate_python(payload)
        events.append(payload)
    return events


def test_stream_thinking_with_signature(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "anthropic/messages-stream-thinking-signature.sse"
    _route(upstream, "messages-stream-thinking-signature.sse")
    client = gateway.anthropic()
    with client.messages.stream(
        model="ant/claude-sonnet-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        system="Be brief.",
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert "content_block_start" in kinds and "message_delta" in kinds
    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == anthropic_deltas(fixture, "thinking_delta")
    assert thinking.signature == anthropic_deltas(fixture, "signature_delta")
    assert text.text == anthropic_deltas(fixture, "text_delta")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 133

    sent = upstream.requests[-1]
    assert sent.headers["x-api-key"] == UPSTREAM_ANTHROPIC_KEY
    body = sent.json()
    assert body["model"] == "claude-sonnet-4-5"
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "Be brief." in json.dumps(body["system"])


def test_thinking_signature_round_trips_on_the_next_turn(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _route(upstream, "messages-stream-thinking-signature.sse")
    client = gateway.anthropic()
    first = client.messages.create(
        model="ant/claude-sonnet-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=USER,  # type: ignore[arg-type]
    )
    Message.model_validate(first.model_dump())
    client.messages.create(
        model="ant/claude-sonnet-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": "and?"},
        ],  # type: ignore[arg-type]
    )
    sent = upstream.requests[-1].json()["messages"][1]["content"]
    assert sent[0]["type"] == "thinking"
    assert sent[0]["signature"] == first.content[0].signature  # type: ignore[union-attr]


def test_stream_text_and_two_tool_uses(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "anthropic/messages-stream-text-and-two-tool_use.sse"
    _route(upstream, "messages-stream-text-and-two-tool_use.sse", seed=9)
    tools = [
        {"name": "get_weather", "description": "w", "input_schema": {"type": "object"}},
        {"name": "get_time", "description": "t", "input_schema": {"type": "object"}},
    ]
    client = gateway.anthropic()
    with client.messages.stream(
        model="ant/claude-sonnet-4-5",
        max_tokens=1024,
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "auto"},
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert all(isinstance(u.input, dict) for u in uses)
    assert message.content[0].type == "text"
    assert message.content[0].text == anthropic_deltas(fixture, "text_delta")
    assert message.usage.input_tokens == 514
    assert message.usage.output_tokens == 165
    sent = upstream.requests[-1].json()
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time"]


def test_tool_result_turn_reaches_the_upstream(gateway: Gateway, upstream: FakeUpstream) -> None:
    _route(upstream, "messages-stream-text.sse")
    gateway.anthropic().messages.create(
        model="ant/claude-sonnet-4-5",
        max_tokens=100,
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}],
            },
        ],  # type: ignore[arg-type]
    )
    messages = upstream.requests[-1].json()["messages"]
    assert messages[1]["content"][0]["type"] == "tool_use"
    assert messages[1]["content"][0]["input"] == {"a": 1}
    result = messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"


def test_stream_cache_read_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    _route(upstream, "messages-stream-cache-read.sse", seed=4)
    events = _raw_stream(
        gateway,
        {
            "model": "ant/claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}],
            "messages": USER,
        },
    )
    assert [e["type"] for e in events][:1] == ["message_start"]
    assert events[-1]["type"] == "message_stop"
    # As an Anthropic client accumulates it: message_start's usage, then message_delta's
    # on top (the decode-encode path repeats it all there; the passthrough relays the
    # upstream's own split).
    usage = dict(events[0]["message"]["usage"])  # type: ignore[index, call-overload]
    usage.update({k: v for k, v in events[-2]["usage"].items() if v is not None})  # type: ignore[union-attr]
    assert events[-2]["type"] == "message_delta"
    assert usage["cache_read_input_tokens"] == 1165  # type: ignore[index]
    assert usage["input_tokens"] == 4  # type: ignore[index]
    assert usage["output_tokens"] == 221  # type: ignore[index]
    system = upstream.requests[-1].json()["system"]
    assert system[-1]["cache_control"] == {"type": "ephemeral"}


def test_non_streaming_cache_creation_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    _route(upstream, "messages-stream-cache-creation.sse")
    message = gateway.anthropic().messages.create(
        model="ant/claude-sonnet-4-5",
        max_tokens=1024,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "question"},
                ],
            }
        ],  # type: ignore[arg-type]
    )
    Message.model_validate(message.model_dump())
    assert (message.usage.cache_creation_input_tokens or 0) > 0
    content = upstream.requests[-1].json()["messages"][0]["content"]
    assert content[0]["cache_control"] == {"type": "ephemeral"}


def test_sdk_types_accept_the_non_streaming_body(gateway: Gateway, upstream: FakeUpstream) -> None:
    _route(upstream, "messages-stream-text.sse")
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "ant/claude-sonnet-4-5", "max_tokens": 10, "messages": USER},
    )
    assert response.status_code == 200
    message = Message.model_validate(response.json())
    assert message.model == "ant/claude-sonnet-4-5"
    assert message.role == "assistant"


def test_anthropic_sdk_lists_models(gateway: Gateway, upstream: FakeUpstream) -> None:
    model = {"id": "claude-x", "object": "model", "created": 1, "owned_by": "a"}
    upstream.route("GET", "/v1/models", Reply.json({"object": "list", "data": [model]}))
    page = gateway.anthropic().models.list()
    assert sorted(m.id for m in page.data) == ["ant/claude-x", "oai/claude-x"]


def test_client_errors_use_the_anthropic_shape(gateway: Gateway) -> None:
    try:
        gateway.anthropic().messages.create(
            model="ant/claude-sonnet-4-5",
            max_tokens=10,
            messages="nope",  # type: ignore[arg-type]
        )
    except anthropic.BadRequestError as exc:
        assert exc.status_code == 400
        assert exc.body["type"] == "error"  # type: ignore[index]
    else:
        raise AssertionError("expected BadRequestError")


def test_known_beta_flags_reach_an_anthropic_upstream_and_nothing_else_does(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(
        f"""
[connections.antbeta]
compat = "anthropic"
base_url = "{upstream.url}"
api_key_env = "TEST_ANT_KEY"
max_retries = 0
anthropic_beta = "prompt-caching-2024-07-31"
"""
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-completion-refusal.json")
    )
    client = gateway.anthropic(
        default_headers={
            "anthropic-beta": "interleaved-thinking-2025-05-14, not-a-real-beta",
            "anthropic-version": "1999-01-01",
        }
    )
    for model in ("ant/claude", "antbeta/claude", "oai/gpt-4o"):
        client.messages.create(model=model, max_tokens=5, messages=USER)  # type: ignore[arg-type]
    plain, configured, openai_upstream = (r.headers for r in upstream.requests)
    assert plain["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert configured["anthropic-beta"] == (
        "interleaved-thinking-2025-05-14,prompt-caching-2024-07-31"
    )
    # The provider speaks its own API version, whatever the client announced.
    assert plain["anthropic-version"] != "1999-01-01"
    assert configured["anthropic-version"] != "1999-01-01"
    # An OpenAI-compatible upstream gets no Anthropic headers at all.
    assert "anthropic-beta" not in openai_upstream
    assert "anthropic-version" not in openai_upstream


def test_a_beta_flag_does_not_read_the_keyring_on_the_event_loop(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import modelport.auth.keys

    readers: list[threading.Thread] = []

    def get_key(name: str, **kwargs: Any) -> str | None:
        readers.append(threading.current_thread())
        return "sk-ant-stored-0123456789" if name == "stored" else None

    monkeypatch.setattr(modelport.auth.keys, "get_key", get_key)
    gateway = make_gateway(
        f"""
[connections.stored]
compat = "anthropic"
base_url = "{upstream.url}"
max_retries = 0
"""
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    client = gateway.anthropic(
        default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"}
    )
    client.messages.create(model="stored/claude", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    # Invented connection names cost no keyring lookup at all.
    for n in range(3):
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model=f"invented{n}/claude", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert upstream.requests[0].headers["x-api-key"] == "sk-ant-stored-0123456789"
    assert upstream.requests[0].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert readers, "the stored key was never read"
    assert gateway.thread not in readers  # the gateway's event loop never waited on the keyring
    assert len(readers) == 1
