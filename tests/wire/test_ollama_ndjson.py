"""Ollama's native /api/chat and /api/tags: recorded and documented traffic → canonical values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import (
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    NetworkError,
    ParseError,
    UpstreamError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import (
    Capabilities,
    ChatRequest,
    ImagePart,
    Message,
    Reasoning,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)
from modelport.wire import ollama_ndjson as wire
from tests._fixtures import fixture_bytes

STREAMS = [
    "ollama/api-chat-stream.ndjson",
    "ollama/api-chat-stream-tools.docs-example.ndjson",
    "ollama/api-generate-stream.ndjson",
]


def decode_stream(data: bytes, cuts: list[int] | None = None) -> list[StreamEvent]:
    decoder = wire.StreamDecoder()
    events: list[StreamEvent] = []
    start = 0
    for cut in sorted(cuts or []):
        events += decoder.feed(data[start:cut])
        start = cut
    events += decoder.feed(data[start:])
    return events + decoder.close()


def _without_ids(events: list[StreamEvent]) -> list[StreamEvent]:
    return [
        ToolCallStartEvent(index=e.index, id="?", name=e.name)
        if isinstance(e, ToolCallStartEvent)
        else e
        for e in events
    ]


# --- recorded and documented streams ----------------------------------------


def test_chat_stream() -> None:
    raw = fixture_bytes("ollama/api-chat-stream.ndjson")
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    response = aggregate(decode_stream(raw), model="llama3")
    assert response.content == "".join(line["message"]["content"] for line in lines)
    assert response.content.startswith("Why did the OpenTelemetry agent go to therapy?")
    assert response.content.endswith(" face!)")
    assert response.usage == Usage(input_tokens=17, output_tokens=50)
    assert response.finish_reason == "stop"
    assert response.tool_calls == []


def test_chat_stream_with_tools() -> None:
    events = decode_stream(fixture_bytes("ollama/api-chat-stream-tools.docs-example.ndjson"))
    [start] = [e for e in events if isinstance(e, ToolCallStartEvent)]
    assert start.index == 0 and start.name == "get_weather"
    assert start.id.startswith("call_") and len(start.id) > len("call_") + 8
    assert [e for e in events if isinstance(e, ToolCallDeltaEvent)] == [
        ToolCallDeltaEvent(index=0, arguments='{"city":"Tokyo"}')
    ]
    response = aggregate(events, model="llama3.2")
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("get_weather", {"city": "Tokyo"})
    ]
    # done_reason says "stop", but the turn ended in a call.
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(input_tokens=169, output_tokens=15)


def test_tool_call_ids_differ_on_every_turn() -> None:
    raw = fixture_bytes("ollama/api-chat-stream-tools.docs-example.ndjson")
    ids = {e.id for _ in range(20) for e in decode_stream(raw) if isinstance(e, ToolCallStartEvent)}
    assert len(ids) == 20


def test_legacy_generate_stream_reads_its_response_field() -> None:
    raw = fixture_bytes("ollama/api-generate-stream.ndjson")
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    response = aggregate(decode_stream(raw), model="llama3")
    assert response.content == "".join(line["response"] for line in lines)
    assert response.content.startswith("A joke about OpenTelemetry! Here's one:")
    assert response.usage == Usage(input_tokens=17, output_tokens=71)
    assert response.finish_reason == "stop"


def test_thinking_and_several_calls_in_one_line() -> None:
    lines = [
        {"message": {"role": "assistant", "content": "", "thinking": "Hmm, "}, "done": False},
        {"message": {"role": "assistant", "content": "", "thinking": "two calls."}, "done": False},
        {
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "a", "arguments": {"x": 1}}},
                    {"function": {"name": "b", "arguments": {}}},
                    {"function": {"name": "c", "arguments": '{"y": 2}'}},
                ],
            },
            "done": False,
        },
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]
    raw = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    events = decode_stream(raw)
    assert events[:2] == [ReasoningEvent(text="Hmm, "), ReasoningEvent(text="two calls.")]
    response = aggregate(events, model="m")
    assert response.reasoning == "Hmm, two calls."
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("a", {"x": 1}),
        ("b", {}),
        ("c", {"y": 2}),
    ]
    assert len({c.id for c in response.tool_calls}) == 3
    assert [e.index for e in events if isinstance(e, ToolCallStartEvent)] == [0, 1, 2]
    assert events[-2:] == [UsageEvent(), FinishEvent(reason="tool_calls")]


def test_length_finish() -> None:
    raw = b'{"message":{"content":"a"},"done":false}\n{"done":true,"done_reason":"length"}\n'
    assert decode_stream(raw)[-1] == FinishEvent(reason="length")


def test_last_line_without_newline() -> None:
    raw = b'{"message":{"content":"a"},"done":false}\r\n{"done":true}'
    assert decode_stream(raw) == [TextEvent(text="a"), UsageEvent(), FinishEvent(reason="stop")]


def test_in_band_error_raises() -> None:
    decoder = wire.StreamDecoder()
    decoder.feed(b'{"message":{"content":"a"},"done":false}\n')
    with pytest.raises(UpstreamError, match="out of memory"):
        decoder.feed(b'{"error":"model runner has unexpectedly stopped: out of memory"}\n')


def test_stream_without_done_line_is_a_network_error() -> None:
    raw = fixture_bytes("ollama/api-chat-stream.ndjson")
    decoder = wire.StreamDecoder()
    decoder.feed(raw[: raw.rindex(b"\n{")])
    with pytest.raises(NetworkError, match="closed the stream before it finished"):
        decoder.close()


@pytest.mark.parametrize(
    "line",
    [b"{nope}\n", b"[1]\n", b'{"message": "x"}\n', b'{"done": "yes"}\n', b"\xff\n"],
)
def test_garbage_is_a_parse_error(line: bytes) -> None:
    with pytest.raises(ParseError):
        wire.StreamDecoder().feed(line)


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_split_gives_the_same_events(name: str, data: st.DataObject) -> None:
    raw = fixture_bytes(name)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert _without_ids(decode_stream(raw, cuts)) == _without_ids(decode_stream(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_random_bytes_raise_parse_error_or_nothing(raw: bytes, cuts: list[int]) -> None:
    decoder = wire.StreamDecoder()
    start = 0
    try:
        for cut in sorted(c for c in cuts if c <= len(raw)):
            decoder.feed(raw[start:cut])
            start = cut
        decoder.feed(raw[start:])
        decoder.close()
    except (ParseError, NetworkError, UpstreamError, ModelNotFoundError):
        pass


# --- non-streaming ----------------------------------------------------------


def test_chat_response() -> None:
    response = aggregate(wire.decode_response(fixture_bytes("ollama/api-chat.json")), model="m")
    assert response.content == (
        "A joke about OpenTelemetry!\n\nWhy did the OpenTelemetry agent go to therapy?\n\n"
        'Because it was struggling to "instrument" its feelings and had a lot of "traces" of '
        'anxiety!\n\n(Sorry, I know it\'s a bit of a "stretch", but I hope it brings a smile to '
        "your face!)"
    )
    assert response.usage == Usage(input_tokens=17, output_tokens=66)
    assert response.finish_reason == "stop"


def test_chat_response_with_tool_call() -> None:
    body = fixture_bytes("ollama/api-chat-tools.docs-example.json")
    response = aggregate(wire.decode_response(body), model="m")
    [call] = response.tool_calls
    assert call.id.startswith("call_") and call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Tokyo"}
    assert response.usage == Usage(input_tokens=169, output_tokens=18)
    assert response.finish_reason == "tool_calls"


def test_chat_response_to_a_tools_request_answered_in_text() -> None:
    body = fixture_bytes("ollama/api-chat-tools-request-text-answer.json")
    response = aggregate(wire.decode_response(body), model="m")
    assert response.content.startswith("This is a simple example, but in a real-world scenario")
    assert response.tool_calls == [] and response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=44, output_tokens=113)


def test_decode_response_garbage() -> None:
    with pytest.raises(ParseError):
        wire.decode_response(b"<html>")


def test_decode_models() -> None:
    models = wire.decode_models(fixture_bytes("ollama/api-tags.docs-example.json"), "local")
    assert [(m.address, m.name) for m in models] == [
        ("local/deepseek-r1:latest", "deepseek-r1:latest (7.6B, Q4_K_M)"),
        ("local/llama3.2:latest", "llama3.2:latest (3.2B, Q4_K_M)"),
    ]
    body = b'{"models":[{"name":"qwen3:8b","capabilities":["completion","tools","thinking"]}]}'
    [model] = wire.decode_models(body, "local")
    assert model.name == "qwen3:8b"
    assert model.capabilities == Capabilities(tools=True, vision=False, reasoning=True)
    with pytest.raises(ParseError):
        wire.decode_models(b'{"models": {}}', "local")


# --- errors -----------------------------------------------------------------


def test_missing_model_says_how_to_pull_it() -> None:
    body = b'{"error":"model \'llama3.1:8b\' not found, try pulling it first"}'
    error = wire.error_from_response(404, body, {})
    assert isinstance(error, ModelNotFoundError)
    assert "ollama pull llama3.1:8b" in error.message
    assert error.status == 404


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, b'{"error":"invalid options"}', InvalidRequestError),
        (500, b'{"error":"llama runner process has terminated"}', UpstreamError),
        (502, b"Bad Gateway", UpstreamError),
        (400, b'{"error":"input length exceeds the context length"}', ContextTooLongError),
    ],
)
def test_error_statuses(status: int, body: bytes, cls: type[Exception]) -> None:
    error = wire.error_from_response(status, body, {})
    assert type(error) is cls and error.status == status


# --- requests ---------------------------------------------------------------

CONVERSATION = ChatRequest(
    model="llama3.1:8b",
    messages=[
        Message(role="system", content="You are terse.", cache=True),
        Message(
            role="user",
            content=[
                TextPart(text="What is this, and the weather and time in Paris?"),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png", cache=True),
            ],
        ),
        Message(
            role="assistant",
            content=[ThinkingPart(text="Two tools.", signature="sig"), TextPart(text="Checking.")],
            tool_calls=[
                ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="call_2", name="get_time", arguments="{}"),
            ],
        ),
        Message(role="tool", tool_call_id="call_1", content="18C"),
        Message(role="tool", tool_call_id="call_2", content="14:05"),
    ],
    tools=[
        ToolDefinition(
            name="get_weather",
            description="Weather",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            cache=True,
        )
    ],
    tool_choice=ToolChoice(mode="required"),
    temperature=0.2,
    top_p=0.9,
    max_tokens=256,
    stop=["END"],
    reasoning=Reasoning(effort="high"),
    response_format={
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    },
    vendor={
        "ollama": {"options": {"num_ctx": 8192}, "keep_alive": "5m"},
        "anthropic": {"top_k": 1},
    },
    extra={"raw": False},
)


def test_golden_conversation() -> None:
    assert wire.build_request(CONVERSATION, stream=True) == {
        "model": "llama3.1:8b",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": "What is this, and the weather and time in Paris?",
                "images": ["iVBORw0KGgo="],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "thinking": "Two tools.",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "18C", "tool_name": "get_weather"},
            {"role": "tool", "content": "14:05", "tool_name": "get_time"},
        ],
        "stream": True,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "options": {
            "temperature": 0.2,
            "top_p": 0.9,
            "num_predict": 256,
            "stop": ["END"],
            "num_ctx": 8192,
        },
        "format": {"type": "object"},
        "think": "high",
        "keep_alive": "5m",
        "raw": False,
    }


@pytest.mark.parametrize(("name", "stream"), [("api-chat", False), ("api-chat-stream", True)])
def test_recorded_request_shapes(name: str, stream: bool) -> None:
    recorded = json.loads(fixture_bytes(f"ollama/{name}.request.json"))
    request = ChatRequest(
        model=recorded["model"],
        messages=[Message(role=m["role"], content=m["content"]) for m in recorded["messages"]],
        # The recorder's client sent its empty defaults; they pass through `extra`.
        extra={"format": "", "options": {}, "keep_alive": None},
    )
    assert wire.build_request(request, stream=stream) == recorded


def test_recorded_tool_history_request() -> None:
    recorded = json.loads(fixture_bytes("ollama/api-chat-tools-request-text-answer.request.json"))
    request = ChatRequest(
        model="llama3.1",
        messages=[
            Message(
                role="assistant",
                tool_calls=[
                    ToolCall(
                        id="call_x",
                        name="get_current_weather",
                        arguments='{"location": "San Francisco"}',
                    )
                ],
            ),
            Message(
                role="tool",
                tool_call_id="call_x",
                content="The weather in San Francisco is 70 degrees and sunny.",
            ),
        ],
        extra={"tools": [], "format": "", "options": {}, "keep_alive": None},
    )
    body = wire.build_request(request, stream=False)
    # We also name the tool that answered, which the recorded client left out.
    assert body["messages"][1].pop("tool_name") == "get_current_weather"
    assert body == recorded


@pytest.mark.parametrize(
    ("reasoning", "think"),
    [
        (Reasoning(budget_tokens=1000), True),
        (Reasoning(effort="minimal"), "low"),
        (Reasoning(effort="low"), "low"),
        (Reasoning(effort="medium"), "medium"),
    ],
)
def test_think(reasoning: Reasoning, think: Any) -> None:
    request = ChatRequest(model="m", messages=[], reasoning=reasoning)
    assert wire.build_request(request, stream=False)["think"] == think


def test_json_object_format_and_plain_defaults() -> None:
    request = ChatRequest(model="m", messages=[], response_format={"type": "json_object"})
    assert wire.build_request(request, stream=False) == {
        "model": "m",
        "messages": [],
        "stream": False,
        "format": "json",
    }


def test_image_urls_are_refused() -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", content=[ImagePart(url="https://x/y.png")])]
    )
    with pytest.raises(InvalidRequestError, match="cannot fetch images by URL"):
        wire.build_request(request, stream=False)


def test_invalid_tool_arguments_are_refused() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="assistant", tool_calls=[ToolCall(id="c", name="f", arguments="{")])
        ],
    )
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        wire.build_request(request, stream=False)
