"""The official ``openai`` SDK's ``client.responses`` → gateway → OpenAI-compatible and
Anthropic upstreams (recorded fixtures). The plugin's model is in
``tests/plugin_host/test_gateway.py``; Codex's own requests in ``test_coding_agents.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelport.config import parse_config
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server._sse import anthropic_deltas, openai_delta_text, sse_events
from tests.server.conftest import Gateway, GatewayFactory

TEXT = "openai/chat-stream-text-include-usage.sse"
TOOL = "openai/chat-stream-single-tool-call.sse"
THINKING = "anthropic/messages-stream-thinking-signature.sse"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _chat(upstream: FakeUpstream, fixture: str, seed: int = 1) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture(fixture, chunks="random", split_seed=seed),
    )


def _raw_events(gateway: Gateway, body: dict[str, Any], **headers: str) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", f"{gateway.url}/v1/responses", json={**body, "stream": True}, headers=headers
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        raw = response.read()
    events = []
    for event in sse_events(raw):
        payload = json.loads(event.data)
        assert payload["type"] == event.event
        events.append(payload)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_stream_of_text_through_the_sdk_helper(gateway: Gateway, upstream: FakeUpstream) -> None:
    _chat(upstream, TEXT)
    client = gateway.openai()
    with client.responses.stream(model="oai/gpt-4o", input="Weather in SF?") as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert response.output_text == openai_delta_text(TEXT)
    assert response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens == 14
    assert response.model == "oai/gpt-4o"
    sent = upstream.requests[-1].json()
    assert sent["messages"] == [{"role": "user", "content": "Weather in SF?"}]


def test_create_streamed_and_not(gateway: Gateway, upstream: FakeUpstream) -> None:
    _chat(upstream, TEXT)
    client = gateway.openai()
    stream = client.responses.create(
        model="oai/gpt-4o", input="Weather in SF?", instructions="Be brief.", stream=True
    )
    deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas) == openai_delta_text(TEXT)

    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-completion-tool-call.json")
    )
    response = client.responses.create(model="oai/gpt-4o", input="Weather in SF?")
    assert response.id.startswith("resp_") and response.object == "response"
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.status == "completed" and json.loads(call.arguments)
    sent = upstream.requests[0].json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_function_tool_turn_and_both_ways_to_continue_it(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _chat(upstream, TOOL)
    client = gateway.openai()
    first = client.responses.create(
        model="oai/gpt-4o", input="Weather in Paris?", tools=[WEATHER], stream=False
    )
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "New York City"}
    assert upstream.requests[0].json()["tools"][0]["function"]["name"] == "get_weather"

    _chat(upstream, TEXT, seed=2)
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "22 C"}
    # 1. Naming the kept response.
    second = client.responses.create(
        model="oai/gpt-4o", previous_response_id=first.id, input=[output], tools=[WEATHER]
    )
    assert second.output_text == openai_delta_text(TEXT)
    # 2. Sending the items back, as a client with store off does.
    client.responses.create(
        model="oai/gpt-4o",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            output,
        ],
        tools=[WEATHER],
        store=False,
    )
    by_id, by_items = (r.json()["messages"] for r in upstream.requests[1:])
    assert by_id == by_items
    assert by_id[1]["tool_calls"][0]["id"] == call.call_id
    assert by_id[2] == {"role": "tool", "content": "22 C", "tool_call_id": call.call_id}


def test_store_false_keeps_nothing(gateway: Gateway, upstream: FakeUpstream) -> None:
    _chat(upstream, TEXT)
    client = gateway.openai()
    first = client.responses.create(model="oai/gpt-4o", input="hi", store=False)
    with pytest.raises(openai.BadRequestError, match="not found"):
        client.responses.create(model="oai/gpt-4o", input="more", previous_response_id=first.id)
    assert len(upstream.requests) == 1


def test_reasoning_from_an_anthropic_model_round_trips_encrypted(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/messages", Reply.fixture(THINKING, chunks="random", split_seed=3))
    client = gateway.openai()
    with client.responses.stream(
        model="ant/claude-sonnet-4-5",
        input="hi",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    ) as stream:
        response = stream.get_final_response()
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and message.type == "message"
    assert reasoning.summary[0].text == anthropic_deltas(THINKING, "thinking_delta")
    assert reasoning.encrypted_content == anthropic_deltas(THINKING, "signature_delta")
    assert response.output_text == anthropic_deltas(THINKING, "text_delta")
    first = upstream.requests[0].json()
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    client.responses.create(
        model="ant/claude-sonnet-4-5",
        input=[
            {"role": "user", "content": "hi"},
            *[item.model_dump(exclude_none=True) for item in response.output],
            {"role": "user", "content": "and?"},
        ],
        store=False,
    )
    assistant = upstream.requests[1].json()["messages"][1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": anthropic_deltas(THINKING, "thinking_delta"),
        "signature": anthropic_deltas(THINKING, "signature_delta"),
    }


def test_errors_as_the_sdk_expects(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nowhere/x", input="hi")
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "slow down", "type": "requests"}}, 429),
    )
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.responses.create(model="oai/gpt-4o", input="hi", stream=True)
    with pytest.raises(openai.BadRequestError, match="input"):
        client.responses.create(model="oai/gpt-4o", input=[{"type": "item_reference", "id": "x"}])


def test_a_stream_that_breaks_ends_with_error_and_response_failed(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture(TEXT, chunks=[700, 10_000], drop_after=900),
    )
    events = _raw_events(gateway, {"model": "oai/gpt-4o", "input": "hi"})
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    assert events[-1]["response"]["status"] == "failed"
    assert events[-2]["code"] == "upstream_unreachable"
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_accept_encoding_zstd_gzip_is_answered_plainly(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _chat(upstream, TEXT)
    events = _raw_events(
        gateway, {"model": "oai/gpt-4o", "input": "hi"}, **{"accept-encoding": "zstd,gzip"}
    )
    assert events[-1]["type"] == "response.completed"
    response = httpx.post(
        f"{gateway.url}/v1/responses",
        json={"model": "oai/gpt-4o", "input": "hi"},
        headers={"accept-encoding": "zstd,gzip"},
    )
    assert response.status_code == 200 and "content-encoding" not in response.headers
    assert response.json()["output"][0]["content"][0]["text"] == openai_delta_text(TEXT)


def test_kept_responses_survive_a_restart_in_the_ledger_database(
    upstream: FakeUpstream, upstream_keys: None, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    config = parse_config(
        f"""
database_url = "sqlite:///{tmp_path / "usage.db"}"

[connections.oai]
compat = "openai"
base_url = "{upstream.url}/v1"
max_retries = 0
"""
    )
    _chat(upstream, TEXT)
    first_gateway = gateway_factory(create_app(config, plugin_host=False))
    first = first_gateway.openai().responses.create(model="oai/gpt-4o", input="hi")
    first_gateway.stop()

    _chat(upstream, TEXT, seed=4)
    second_gateway = gateway_factory(create_app(config, plugin_host=False))
    second_gateway.openai().responses.create(
        model="oai/gpt-4o", input="and then?", previous_response_id=first.id
    )
    messages = upstream.requests[-1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == openai_delta_text(TEXT)
