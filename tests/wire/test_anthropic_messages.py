"""The Anthropic Messages client side: recorded streams and bodies → canonical events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    NetworkError,
    ParseError,
    RateLimitError,
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
from modelport.types import Capabilities, ChatResponse, Usage
from modelport.wire import anthropic_messages as wire
from tests._fixtures import FIXTURES, fixture_bytes

STREAMS = sorted(path.name for path in (FIXTURES / "anthropic").glob("*.sse"))
MESSAGES = sorted(
    path.name
    for path in (FIXTURES / "anthropic").glob("message-*.json")
    if not path.name.endswith(".request.json")
)


def decode_stream(data: bytes, cuts: list[int] | None = None) -> list[StreamEvent]:
    decoder = wire.StreamDecoder()
    events: list[StreamEvent] = []
    start = 0
    for cut in sorted(cuts or []):
        events += decoder.feed(data[start:cut])
        start = cut
    events += decoder.feed(data[start:])
    return events + decoder.close()


def stream_response(name: str) -> ChatResponse:
    return aggregate(decode_stream(fixture_bytes(f"anthropic/{name}")), model="m")


# --- an independent reading of the recorded streams -------------------------


def _oracle(name: str) -> dict[str, Any]:
    """What a stream says, read with nothing but ``json`` (no code shared with the decoder)."""
    frames = fixture_bytes(f"anthropic/{name}").decode().split("\n\n")
    payloads = [
        json.loads(line[len("data: ") :])
        for frame in frames
        for line in frame.splitlines()
        if line.startswith("data: ")
    ]
    text, thinking, signatures, redacted = [], [], [], []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, int] = {}
    stop_reason = None
    for payload in payloads:
        kind = payload["type"]
        if kind == "message_start":
            usage.update({k: v for k, v in payload["message"]["usage"].items() if v is not None})
        elif kind == "content_block_start":
            block = payload["content_block"]
            if block["type"] == "tool_use":
                calls[payload["index"]] = {"id": block["id"], "name": block["name"], "args": ""}
            elif block["type"] == "redacted_thinking":
                redacted.append(block["data"])
        elif kind == "content_block_delta":
            delta = payload["delta"]
            if delta["type"] == "text_delta":
                text.append(delta["text"])
            elif delta["type"] == "thinking_delta":
                thinking.append(delta["thinking"])
            elif delta["type"] == "signature_delta":
                signatures.append(delta["signature"])
            elif delta["type"] == "input_json_delta" and payload["index"] in calls:
                calls[payload["index"]]["args"] += delta["partial_json"]
        elif kind == "message_delta":
            usage.update({k: v for k, v in payload["usage"].items() if v is not None})
            stop_reason = payload["delta"]["stop_reason"]
    return {
        "text": "".join(text),
        "thinking": "".join(thinking),
        "signatures": signatures,
        "redacted": redacted,
        "calls": [
            (call["id"], call["name"], json.loads(call["args"] or "{}"))
            for _, call in sorted(calls.items())
        ],
        "usage": usage,
        "stop_reason": stop_reason,
    }


@pytest.mark.parametrize("name", STREAMS)
def test_every_stream_agrees_with_an_independent_reading(name: str) -> None:
    response = stream_response(name)
    expected = _oracle(name)
    assert response.content == expected["text"]
    assert response.reasoning == expected["thinking"]
    assert [p.signature for p in response.thinking if hasattr(p, "signature")] == expected[
        "signatures"
    ]
    assert [p.data for p in response.thinking if hasattr(p, "data")] == expected["redacted"]
    assert [
        (call.id, call.name, call.parsed_arguments()) for call in response.tool_calls
    ] == expected["calls"]
    usage = expected["usage"]
    cache_read = usage["cache_read_input_tokens"]
    cache_write = usage["cache_creation_input_tokens"]
    assert response.usage == Usage(
        input_tokens=usage["input_tokens"] + cache_read + cache_write,
        output_tokens=usage["output_tokens"],
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    assert (
        response.finish_reason
        == {"end_turn": "stop", "tool_use": "tool_calls"}[expected["stop_reason"]]
    )


# --- the recorded streams, one by one ---------------------------------------


def test_text_stream() -> None:
    events = decode_stream(fixture_bytes("anthropic/messages-stream-text.sse"))
    assert events == [
        UsageEvent(input_tokens=10, output_tokens=2),
        TextEvent(text="Hello"),
        UsageEvent(input_tokens=10, output_tokens=4),
        FinishEvent(reason="stop"),
    ]


def test_text_and_two_tool_calls_use_call_ordinals() -> None:
    events = decode_stream(fixture_bytes("anthropic/messages-stream-text-and-two-tool_use.sse"))
    starts = [e for e in events if isinstance(e, ToolCallStartEvent)]
    # Content blocks 1 and 2 are the first and second *calls*.
    assert starts == [
        ToolCallStartEvent(index=0, id="toolu_01YUs66wivdF51ENZFX8gX9S", name="get_weather"),
        ToolCallStartEvent(index=1, id="toolu_01NRtod2L7M7TBDj9GCzsZCx", name="get_time"),
    ]
    assert {e.index for e in events if isinstance(e, ToolCallDeltaEvent)} == {0, 1}
    response = aggregate(events, model="m")
    assert [c.parsed_arguments() for c in response.tool_calls] == [
        {"location": "New York, NY", "unit": "fahrenheit"},
        {"timezone": "America/New_York"},
    ]
    assert response.content.startswith("Certainly! I'd be happy to help you with information")
    assert response.usage == Usage(input_tokens=514, output_tokens=165)
    assert response.finish_reason == "tool_calls"


def test_tool_calls_with_empty_input_still_yield_calls() -> None:
    response = stream_response("messages-stream-two-tool_use-empty-input.sse")
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("toolu_01LtHJmixrs9NcWQkK8hu8hj", "pelican_name_generator", {}),
        ("toolu_01N8a4jWyf116qKTMqKKmjyt", "pelican_name_generator", {}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(input_tokens=542, output_tokens=62)


def test_thinking_with_signature() -> None:
    response = stream_response("messages-stream-thinking-signature.sse")
    assert response.content == (
        '1. **Pouch** - references their iconic bill pouch\n2. **Pelé** - playful take on "pelican"'
    )
    assert response.reasoning.startswith("The user wants two names for a pet pelican")
    [part] = response.thinking
    assert part.text == response.reasoning
    assert part.signature is not None and part.signature.startswith("EuYDCmMIDBgC")
    assert len(part.signature) == 656


def test_thinking_then_tool_call() -> None:
    response = stream_response("messages-stream-thinking-then-tool_use.sse")
    assert response.content == ""
    assert response.reasoning.startswith("The user wants me to:\n1. Use the fixed_version tool")
    assert response.thinking[0].signature.startswith("EoQDCm0IDhgC")  # type: ignore[union-attr]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", "{}")
    ]
    assert response.usage == Usage(input_tokens=598, output_tokens=92)


def test_redacted_thinking() -> None:
    events = decode_stream(fixture_bytes("anthropic/messages-stream-redacted_thinking.sse"))
    redacted = [e.redacted for e in events if isinstance(e, ReasoningEvent)]
    assert [len(r or "") for r in redacted] == [744, 296]
    assert redacted[1] is not None and redacted[1].endswith("RYdZ1J0GAE=")
    response = aggregate(events, model="m")
    assert response.content.startswith("I notice that you've sent what appears to be some")
    assert response.content.endswith(
        "How can I assist you today with a legitimate task or question?"
    )


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        (
            "messages-stream-cache-creation.sse",
            Usage(input_tokens=1169, output_tokens=201, cache_write_tokens=1165),
        ),
        (
            "messages-stream-cache-read.sse",
            Usage(input_tokens=1169, output_tokens=221, cache_read_tokens=1165),
        ),
    ],
)
def test_cache_usage_counts_into_input(name: str, usage: Usage) -> None:
    response = stream_response(name)
    assert response.usage == usage
    assert response.content.startswith("Here are concise summaries of the three articles:")


def test_server_tools_are_not_client_calls() -> None:
    response = stream_response("messages-stream-server-tool-code-execution.sse")
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.content.startswith("I'll calculate that expression for you right away!")
    assert response.content.endswith("✅ Final Answer: **-428,330,955.97745**")
    assert response.reasoning == "Let me calculate this mathematical expression."
    assert response.usage == Usage(input_tokens=4714, output_tokens=304)


def test_message_delta_usage_merges_instead_of_adding() -> None:
    frames = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"usage":{"input_tokens":7,"cache_read_input_tokens":3,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
        b'"usage":{"output_tokens":9}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{},'
        b'"usage":{"output_tokens":12}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    events = decode_stream(frames)
    usages = [e for e in events if isinstance(e, UsageEvent)]
    assert usages[-1] == UsageEvent(input_tokens=10, output_tokens=12, cache_read_tokens=3)
    assert FinishEvent(reason="length") in events


def test_tool_input_given_whole_at_block_start() -> None:
    frames = (
        b'data: {"type":"message_start","message":{"id":"m"}}\n\n'
        b'data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use",'
        b'"id":"t1","name":"f","input":{"a":1}}}\n\n'
        b'data: {"type":"content_block_stop","index":0}\n\n'
        b'data: {"type":"message_stop"}\n\n'
    )
    response = aggregate(decode_stream(frames), model="m")
    assert [(c.id, c.parsed_arguments()) for c in response.tool_calls] == [("t1", {"a": 1})]


@pytest.mark.parametrize(
    ("kind", "cls", "status"),
    [
        ("overloaded_error", UpstreamError, 529),
        ("rate_limit_error", RateLimitError, 429),
        ("api_error", UpstreamError, 500),
        ("authentication_error", AuthError, 401),
        ("invalid_request_error", InvalidRequestError, 400),
    ],
)
def test_in_band_error_raises_its_class(kind: str, cls: type[Exception], status: int) -> None:
    decoder = wire.StreamDecoder()
    decoder.feed(fixture_bytes("anthropic/messages-stream-text.sse").split(b"event: ping")[0])
    frame = (
        (
            'event: error\ndata: {"type":"error","error":{"details":null,"type":"KIND",'
            '"message":"Overloaded"},"request_id":"req_1"}\n\n'
        )
        .replace("KIND", kind)
        .encode()
    )
    with pytest.raises(cls) as caught:
        decoder.feed(frame)
    assert type(caught.value) is cls
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert "Overloaded" in str(caught.value)


def test_stream_cut_short_raises_network_error() -> None:
    data = fixture_bytes("anthropic/messages-stream-text.sse")
    decoder = wire.StreamDecoder()
    decoder.feed(data[: data.index(b"event: message_stop")])
    with pytest.raises(NetworkError, match="closed the stream before it finished"):
        decoder.close()


@pytest.mark.parametrize(
    "frame",
    [
        b"data: {not json}\n\n",
        b'data: {"type":"content_block_delta","index":5,"delta":{"type":"text_delta"}}\n\n',
        b'data: {"type":"content_block_start","index":0}\n\n',
        b'data: {"type":"content_block_start","index":"zero","content_block":{"type":"text"}}\n\n',
        b'data: {"type":"message_start"}\n\n',
        b"data: [1, 2]\n\n",
        b"data: \xff\xfe\n\n",
    ],
)
def test_malformed_frames_raise_parse_error(frame: bytes) -> None:
    with pytest.raises(ParseError):
        wire.StreamDecoder().feed(frame)


# --- any split, any garbage -------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_any_split_gives_the_same_events(name: str, data: st.DataObject) -> None:
    raw = fixture_bytes(f"anthropic/{name}")
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert decode_stream(raw, cuts) == decode_stream(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_raise_parse_error_or_nothing(raw: bytes, cuts: list[int]) -> None:
    decoder = wire.StreamDecoder()
    start = 0
    try:
        for cut in sorted(c for c in cuts if c <= len(raw)):
            decoder.feed(raw[start:cut])
            start = cut
        decoder.feed(raw[start:])
        decoder.close()
    except (ParseError, NetworkError):
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["content_block_start", "content_block_delta", "content_block_stop"]
                ),
                "index": st.integers(0, 2) | st.none() | st.text(max_size=2),
            },
            optional={
                "content_block": st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "thinking", "tool_use", "x"])},
                    optional={"id": st.text(max_size=3), "name": st.text(max_size=3)},
                ),
                "delta": st.fixed_dictionaries(
                    {"type": st.sampled_from(["text_delta", "input_json_delta"])},
                    optional={"text": st.text(max_size=3), "partial_json": st.integers()},
                ),
            },
        ),
        max_size=6,
    )
)
def test_wrongly_shaped_events_raise_parse_error_only(events: list[dict[str, Any]]) -> None:
    decoder = wire.StreamDecoder()
    try:
        for event in events:
            decoder.feed(b"data: " + json.dumps(event).encode() + b"\n\n")
    except ParseError:
        pass


# --- non-streaming bodies ---------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_body_decodes(name: str) -> None:
    body = json.loads(fixture_bytes(f"anthropic/{name}"))
    response = aggregate(wire.decode_response(fixture_bytes(f"anthropic/{name}")), model="m")
    blocks = body["content"]
    assert response.content == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert response.reasoning == "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        (b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"
    ]
    usage = body["usage"]
    assert response.usage.input_tokens == (
        usage["input_tokens"]
        + usage.get("cache_read_input_tokens", 0)
        + usage.get("cache_creation_input_tokens", 0)
    )
    assert response.usage.output_tokens == usage["output_tokens"]


def test_message_with_thinking_keeps_signature() -> None:
    response = aggregate(
        wire.decode_response(fixture_bytes("anthropic/message-thinking.json")), model="m"
    )
    assert response.content == "The letter 'r' appears 3 times in the word \"strawberry\"."
    [part] = response.thinking
    assert part.text.startswith("Let me count the number of times the letter 'r' appears")
    assert part.signature is not None and part.signature.startswith("ErUBCkYIARgCIkB")
    assert response.usage == Usage(input_tokens=52, output_tokens=215)
    assert response.finish_reason == "stop"


def test_message_with_redacted_thinking() -> None:
    body = fixture_bytes("anthropic/message-redacted_thinking.sorted.json")
    response = aggregate(wire.decode_response(body), model="m")
    data = [b["data"] for b in json.loads(body)["content"] if b["type"] == "redacted_thinking"]
    assert data and [p.data for p in response.thinking] == data  # type: ignore[union-attr]
    assert response.content.startswith("I notice that your message appears to contain")


def test_message_cache_fields() -> None:
    creation = aggregate(
        wire.decode_response(fixture_bytes("anthropic/message-cache-creation.json")), model="m"
    )
    read = aggregate(
        wire.decode_response(fixture_bytes("anthropic/message-cache-read.json")), model="m"
    )
    assert creation.usage == Usage(input_tokens=1167, output_tokens=187, cache_write_tokens=1163)
    assert read.usage == Usage(input_tokens=1167, output_tokens=202, cache_read_tokens=1163)


def test_message_tool_use_without_arguments() -> None:
    body = fixture_bytes("anthropic/message-tool_use-no-args.json")
    response = aggregate(wire.decode_response(body), model="m")
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("toolu_01LRmxn9vGM1d2DZSDBowdZ1", "updateIssueList", {})
    ]
    assert response.finish_reason == "tool_calls"


def test_message_and_stream_agree() -> None:
    streamed = stream_response("messages-stream-thinking-long.sse")
    body = {
        "id": "msg_x",
        "content": [
            {
                "type": "thinking",
                "thinking": streamed.reasoning,
                "signature": streamed.thinking[0].signature,
            },  # type: ignore[union-attr]
            {"type": "text", "text": streamed.content},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 43, "output_tokens": 282},
    }
    assert aggregate(wire.decode_response(json.dumps(body).encode()), model="m", id="r") == (
        aggregate(
            decode_stream(fixture_bytes("anthropic/messages-stream-thinking-long.sse")),
            model="m",
            id="r",
        )
    )


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"content": 5}', b'{"content":[{"type":"tool_use"}]}']
)
def test_malformed_message_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        wire.decode_response(body)


# --- errors -----------------------------------------------------------------


def test_recorded_error_bodies() -> None:
    invalid = wire.error_from_response(
        400, fixture_bytes("anthropic/error-400-invalid_request_error.sorted.json"), {}
    )
    assert type(invalid) is InvalidRequestError
    assert "does not support effort level 'xhigh'" in invalid.message
    missing = wire.error_from_response(
        404, fixture_bytes("anthropic/error-404-not_found_error.sorted.json"), {}
    )
    assert type(missing) is ModelNotFoundError
    assert "claude-sonet-4-5" in missing.message and missing.status == 404


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (401, "authentication_error", AuthError),
        (403, "permission_error", AuthError),
        (404, "not_found_error", ModelNotFoundError),
        (413, "request_too_large", InvalidRequestError),
        (429, "rate_limit_error", RateLimitError),
        (500, "api_error", UpstreamError),
        (529, "overloaded_error", UpstreamError),
    ],
)
def test_error_statuses(status: int, kind: str, cls: type[Exception]) -> None:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": "boom"}}).encode()
    error = wire.error_from_response(status, body, {"retry-after": "7"})
    assert type(error) is cls
    assert error.status == status
    if cls is RateLimitError:
        assert error.retry_after == 7
    if status == 529:
        assert error.retryable


def test_prompt_too_long_is_context_error() -> None:
    body = (
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"prompt is too long: 208310 tokens > 200000 maximum"}}'
    )
    error = wire.error_from_response(400, body, {})
    assert isinstance(error, ContextTooLongError)
    assert (error.limit, error.actual) == (200000, 208310)


def test_error_body_that_is_not_json() -> None:
    error = wire.error_from_response(502, b"<html>Bad Gateway</html>", {})
    assert type(error) is UpstreamError and "Bad Gateway" in error.message


def test_decode_models() -> None:
    body = json.dumps(
        {
            "data": [
                {
                    "id": "claude-sonnet-4-5-20250929",
                    "display_name": "Claude Sonnet 4.5",
                    "created_at": "2025-09-29T00:00:00Z",
                    "type": "model",
                }
            ],
            "has_more": False,
            "first_id": "claude-sonnet-4-5-20250929",
            "last_id": "claude-sonnet-4-5-20250929",
        }
    ).encode()
    [model] = wire.decode_models(body, "anthropic")
    assert model.address == "anthropic/claude-sonnet-4-5-20250929"
    assert model.name == "Claude Sonnet 4.5"
    assert model.capabilities == Capabilities(vision=True, prompt_cache=True)
    with pytest.raises(ParseError):
        wire.decode_models(b'{"data": 1}', "anthropic")


def test_fixture_list_is_complete() -> None:
    assert len(STREAMS) == 10 and len(MESSAGES) == 7
    assert all(Path(FIXTURES / "anthropic" / name).exists() for name in STREAMS)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    frames = (
        b'data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}\n\n'
        b'data: {"type":"message_delta","delta":{"stop_reason":"'
        + stop_reason.encode()
        + b'"}}\n\n'
        b'data: {"type":"message_stop"}\n\n'
    )
    assert decode_stream(frames)[-1] == FinishEvent(reason=finish)  # type: ignore[arg-type]
    body = b'{"content":[],"stop_reason":"' + stop_reason.encode() + b'"}'
    assert wire.decode_response(body) == [FinishEvent(reason=finish)]  # type: ignore[arg-type]


# --- an in-band error, wherever the reads split ------------------------------------------

OVERLOADED = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"Overloaded"}}\n\n'
)


def decode_until_error(data: bytes, cuts: list[int]) -> tuple[list[StreamEvent], str]:
    """The events a caller sees before the stream fails, and the failure's class."""
    decoder = wire.StreamDecoder()
    events: list[StreamEvent] = []
    start = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            events += decoder.feed(data[start:cut])
            start = max(start, cut)
        events += decoder.close()
    except Exception as exc:
        return events, type(exc).__name__
    return events, "none"


def _frames(name: str) -> list[bytes]:
    raw = fixture_bytes(f"anthropic/{name}")
    return [frame + b"\n\n" for frame in raw.split(b"\n\n") if frame.strip()]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_an_error_mid_stream_gives_the_same_events_then_error_for_any_split(
    data: st.DataObject,
) -> None:
    frames = _frames("messages-stream-text.sse")
    position = data.draw(st.integers(1, len(frames) - 1))
    raw = b"".join(frames[:position]) + OVERLOADED + b"".join(frames[position:])
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert decode_until_error(raw, cuts) == decode_until_error(raw, [])
    assert decode_until_error(raw, [])[1] == "UpstreamError"


@pytest.mark.parametrize("cut", ["none", "between", "inside"])
def test_an_overload_before_any_content_reaches_the_caller_as_no_events(cut: str) -> None:
    # 529 right after message_start: nothing went out, so the call can be retried.
    start = _frames("messages-stream-text.sse")[0]
    assert b"message_start" in start
    raw = start + OVERLOADED
    cuts = {"none": [], "between": [len(start)], "inside": [len(start) - 5, len(start) + 7]}
    events, error = decode_until_error(raw, cuts[cut])
    assert (events, error) == ([], "UpstreamError")


def test_message_start_usage_comes_out_with_the_first_content() -> None:
    frames = _frames("messages-stream-text.sse")
    decoder = wire.StreamDecoder()
    assert decoder.feed(frames[0]) == []  # message_start alone: usage held back
    rest = decoder.feed(b"".join(frames[1:])) + decoder.close()
    assert isinstance(rest[0], UsageEvent)
    assert isinstance(rest[1], TextEvent)


def test_a_message_with_only_a_start_and_stop_still_reports_usage() -> None:
    frames = (
        b'data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":4}}}\n\n'
        b'data: {"type":"message_stop"}\n\n'
    )
    assert decode_stream(frames) == [UsageEvent(input_tokens=4, output_tokens=0)]


@pytest.mark.parametrize("stop_reason", ["end_turn", "stop_sequence"])
def test_a_turn_with_tool_calls_finishes_with_tool_calls(stop_reason: str) -> None:
    frames = (
        b'data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}\n\n'
        b'data: {"type":"content_block_start","index":0,"content_block":'
        b'{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}\n\n'
        b'data: {"type":"content_block_delta","index":0,"delta":'
        b'{"type":"input_json_delta","partial_json":"{}"}}\n\n'
        b'data: {"type":"content_block_stop","index":0}\n\n'
        b'data: {"type":"message_delta","delta":{"stop_reason":"'
        + stop_reason.encode()
        + b'"}}\n\n'
        b'data: {"type":"message_stop"}\n\n'
    )
    assert decode_stream(frames)[-1] == FinishEvent(reason="tool_calls")
    body = (
        b'{"content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}],'
        b'"stop_reason":"' + stop_reason.encode() + b'"}'
    )
    assert wire.decode_response(body)[-1] == FinishEvent(reason="tool_calls")
