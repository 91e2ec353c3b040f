"""OpenAI SDK → gateway → OpenAI-compatible upstream (recorded fixtures).

The router answers non-streaming requests by aggregating an upstream stream,
so the upstream replays ``.sse`` fixtures in both modes.
"""

from __future__ import annotations

import json

import httpx
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from modelport.testing import FakeUpstream, Reply
from tests.server._sse import fixture_chunks, openai_delta_text, sse_events
from tests.server.conftest import UPSTREAM_OPENAI_KEY, Gateway

USER = [{"role": "user", "content": "hi"}]


def test_non_streaming_tool_call(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-single-tool-call.sse")
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = gateway.openai().chat.completions.create(
        model="oai/gpt-4o-mini",
        messages=USER,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        temperature=0.2,
        stop=["END"],
    )
    ChatCompletion.model_validate(completion.model_dump())
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "call_4XzlGBLtUe9dy3GVNV4jhq7h"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "New York City"}  # type: ignore[union-attr]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (44, 16)
    assert completion.model == "oai/gpt-4o-mini"

    sent = upstream.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
    body = sent.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "required"
    assert body["stop"] == ["END"]
    assert body["temperature"] == 0.2


def test_non_streaming_reasoning_tokens(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "deepseek/chat-stream-reasoning_content.sse"
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(fixture))
    completion = gateway.openai().chat.completions.create(
        model="oai/deepseek-reasoner",
        messages=USER,
        reasoning_effort="low",  # type: ignore[arg-type]
    )
    ChatCompletion.model_validate(completion.model_dump())
    assert completion.choices[0].message.content == openai_delta_text(fixture)
    extra = completion.choices[0].message.model_extra or {}
    assert extra.get("reasoning_content") == openai_delta_text(fixture, "reasoning_content")
    assert completion.usage is not None
    details = completion.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == 198
    assert upstream.requests[-1].json()["reasoning_effort"] == "low"


def test_streaming_text_with_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "openai/chat-stream-text-include-usage.sse"
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture(fixture, chunks="random", split_seed=3)
    )
    stream = gateway.openai().chat.completions.create(
        model="oai/gpt-4o",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == openai_delta_text(fixture)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    expected = fixture_chunks(fixture)[-1]["usage"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == expected["prompt_tokens"]
    assert chunks[-1].usage.completion_tokens == expected["completion_tokens"]
    assert upstream.requests[-1].json()["stream"] is True


def test_streaming_without_include_usage_sends_no_usage_chunk(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    chunks = list(
        gateway.openai().chat.completions.create(
            model="oai/gpt-4o",
            messages=USER,
            stream=True,  # type: ignore[arg-type]
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_streaming_parallel_tool_calls(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "openai/chat-stream-parallel-tool-calls-split-args.sse"
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture(fixture, chunks="random", split_seed=11)
    )
    stream = gateway.openai().chat.completions.create(
        model="oai/gpt-4o",
        messages=USER,
        stream=True,  # type: ignore[arg-type]
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        ChatCompletionChunk.model_validate(chunk.model_dump())
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert calls[0]["id"] == "call_NS4iQj14cDFwc0BnrKqDHavt"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Mexico City"}
    assert len(calls) == 2
    assert json.loads(calls[1]["arguments"]) == {}


def test_streaming_reasoning_content(gateway: Gateway, upstream: FakeUpstream) -> None:
    fixture = "deepseek/chat-stream-reasoning_content.sse"
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture(fixture, chunks="random", split_seed=5)
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "oai/deepseek-reasoner", "messages": USER, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read()
    events = sse_events(body)
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert reasoning == openai_delta_text(fixture, "reasoning_content")
    assert text == openai_delta_text(fixture)


def test_response_format_and_vendor_options_reach_the_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    schema = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    gateway.openai().chat.completions.create(
        model="oai/gpt-5-nano",
        messages=USER,  # type: ignore[arg-type]
        response_format=schema,  # type: ignore[arg-type]
        seed=7,
    )
    body = upstream.requests[-1].json()
    assert body["response_format"] == schema
    assert body["seed"] == 7


def test_models_lists_every_connection(gateway: Gateway, upstream: FakeUpstream) -> None:
    # Both fake connections share one upstream, so both list from /v1/models.
    model = {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"}
    upstream.route("GET", "/v1/models", Reply.json({"object": "list", "data": [model]}))
    page = gateway.openai().models.list()
    ids = sorted(m.id for m in page)
    assert ids == ["ant/gpt-4o", "oai/gpt-4o"]
    assert {m.owned_by for m in page} == {"ant", "oai"}
