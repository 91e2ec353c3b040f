"""Server side out, client side back in: what the gateway says, the adapter understands."""

from __future__ import annotations

import json
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
    ModelportError,
    NetworkError,
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
from modelport.types import ChatResponse, ToolCall, Usage
from modelport.wire.openai_chat import (
    StreamDecoder,
    build_request,
    decode_response,
    error_from_response,
)
from modelport.wire.openai_chat_server import (
    StreamEncoder,
    encode_error,
    encode_response,
    parse_request,
)
from tests._fixtures import FIXTURES

# --- events → StreamEncoder → StreamDecoder ---------------------------------------------

_TEXT = st.text(max_size=12)
_ARGS = st.text(min_size=1, max_size=12)
_USAGE = st.builds(
    UsageEvent,
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**6),
    cache_write_tokens=st.integers(0, 10**6),
    reasoning_tokens=st.integers(0, 10**6),
    cost=st.none() | st.floats(0, 100, allow_nan=False),
)


@st.composite
def event_sequences(draw: st.DrawFn) -> list[StreamEvent]:
    """A plausible stream: reasoning and text, tool calls that start before their
    fragments, usage snapshots anywhere, and maybe a finish at the end."""
    events: list[StreamEvent] = []
    started: list[int] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["text", "reasoning", "start", "delta", "usage"]))
        if kind == "text":
            events.append(TextEvent(text=draw(_TEXT)))
        elif kind == "reasoning":
            events.append(ReasoningEvent(text=draw(_TEXT)))
        elif kind == "start":
            index = len(started)
            call_id = draw(st.text(min_size=1, max_size=8))
            name = draw(st.text(min_size=1, max_size=8))
            events.append(ToolCallStartEvent(index=index, id=call_id, name=name))
            started.append(index)
        elif kind == "delta" and started:
            index = draw(st.sampled_from(started))
            events.append(ToolCallDeltaEvent(index=index, arguments=draw(_ARGS)))
        elif kind == "usage":
            events.append(draw(_USAGE))
    if draw(st.booleans()):
        reason = draw(
            st.sampled_from(["stop", "length", "tool_calls", "content_filter", "refusal"])
        )
        events.append(FinishEvent(reason=reason))
    return events


def expected_after_round_trip(events: list[StreamEvent], include_usage: bool) -> list[StreamEvent]:
    """What an OpenAI client reading our stream can know: empty text says nothing, the
    usage arrives once at the end, ``refusal`` reads as ``stop``, and a turn with calls
    that says ``stop`` is a ``tool_calls`` turn."""
    out: list[StreamEvent] = []
    usage: UsageEvent | None = None
    finished = False
    has_calls = any(isinstance(e, ToolCallStartEvent) for e in events)
    for event in events:
        if isinstance(event, TextEvent | ReasoningEvent) and not event.text:
            continue
        if isinstance(event, UsageEvent):
            usage = event
            continue
        if isinstance(event, FinishEvent):
            reason = "stop" if event.reason == "refusal" else event.reason
            if reason == "stop" and has_calls:
                reason = "tool_calls"
            out.append(FinishEvent(reason=reason))
            finished = True
            continue
        out.append(event)
    if not finished:
        out.append(FinishEvent(reason="tool_calls" if has_calls else "stop"))
    if include_usage:
        out.append(usage or UsageEvent())
    return out


@settings(max_examples=200, deadline=None)
@given(event_sequences(), st.booleans(), st.lists(st.integers(0, 4000), max_size=10))
def test_events_survive_encoder_and_decoder(
    events: list[StreamEvent], include_usage: bool, cuts: list[int]
) -> None:
    encoder = StreamEncoder(model="m", include_usage=include_usage)
    body = encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()
    bounds = [0, *sorted({c for c in cuts if c < len(body)}), len(body)]
    decoder = StreamDecoder()
    decoded: list[StreamEvent] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        decoded += decoder.feed(body[start:end])
    decoded += decoder.close()
    assert decoded == expected_after_round_trip(events, include_usage)


@settings(max_examples=100, deadline=None)
@given(event_sequences())
def test_responses_survive_encode_response_and_decode_response(events: list[StreamEvent]) -> None:
    events = [e for e in events if not isinstance(e, ToolCallDeltaEvent)]
    original = aggregate(events, model="m", id="resp_1")
    back = aggregate(decode_response(encode_response(original)), model="m", id="resp_1")
    assert back.content == original.content
    assert back.reasoning == original.reasoning
    assert back.tool_calls == original.tool_calls
    assert back.usage == original.usage
    expected_finish = original.finish_reason or "stop"
    if expected_finish == "refusal" and not original.content:
        expected_finish = "stop"  # a refusal with no words reads as a plain stop
    if expected_finish in ("stop", "refusal") and original.tool_calls:
        expected_finish = "tool_calls"  # calls outrank both, as in every decoder
    assert back.finish_reason == expected_finish


def test_response_with_tool_arguments_round_trips() -> None:
    original = ChatResponse(
        id="r",
        model="m",
        content="Checking.",
        tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": [1, 2]}')],
        usage=Usage(input_tokens=3, output_tokens=4, cache_write_tokens=1, cost=0.5),
        finish_reason="tool_calls",
    )
    back = aggregate(decode_response(encode_response(original)), model="m", id="r")
    assert back == original


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        AuthError("Bad key"),
        RateLimitError("Slow down", retry_after=4),
        ContextTooLongError("Prompt is too long", limit=4096, actual=5000),
        InvalidRequestError("Bad field"),
        ModelNotFoundError("No such model"),
        UpstreamError("Down", status=503),
        NetworkError("Unreachable"),
    ],
)
def test_errors_survive_the_gateway(error: ModelportError) -> None:
    status, body, headers = encode_error(error)
    expected = UpstreamError if isinstance(error, NetworkError) else type(error)
    back = error_from_response(status, body, headers)
    assert type(back) is expected
    assert back.message.startswith(error.message)
    assert back.retry_after == error.retry_after
    in_band = StreamEncoder(model="m").error(error)
    with pytest.raises(expected) as caught:
        StreamDecoder().feed(in_band)
    assert caught.value.message.startswith(error.message)


def test_context_numbers_survive_the_gateway() -> None:
    status, body, headers = encode_error(ContextTooLongError("Too long", limit=4096, actual=5000))
    back = error_from_response(status, body, headers)
    assert isinstance(back, ContextTooLongError)
    assert (back.limit, back.actual) == (4096, 5000)


# --- parse_request → build_request ---------------------------------------------------

REQUEST_FIXTURES = sorted(
    path
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible", "vllm")
    for path in (FIXTURES / folder).glob("*.request.json")
    if "messages" in json.loads(path.read_text())
)


def _normalise_message(message: dict[str, Any]) -> dict[str, Any]:
    """What must survive of a message (thinking has no slot on the way out)."""
    out = {k: v for k, v in message.items() if k not in ("reasoning", "reasoning_content")}
    if out.get("role") == "developer":
        out["role"] = "system"
    content = out.get("content")
    if isinstance(content, list) and len(content) == 1 and content[0].get("type") == "text":
        out["content"] = content[0]["text"]
    if content is None and not out.get("tool_calls"):
        out["content"] = ""
    return out


def _normalise_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = dict(tool["function"])  # strict included: it survives the trip
    if not function.get("description"):
        function.pop("description", None)
    return {"type": "function", "function": function}


@pytest.mark.parametrize("path", REQUEST_FIXTURES, ids=lambda p: p.name)
def test_build_request_of_parse_request_keeps_what_matters(path: Any) -> None:
    original = json.loads(path.read_text())
    stream = bool(original.get("stream"))
    rebuilt = build_request(parse_request(path.read_bytes()), stream=stream)
    assert rebuilt["messages"] == [_normalise_message(m) for m in original["messages"]]
    assert rebuilt.get("tools", []) == [_normalise_tool(t) for t in original.get("tools", [])]
    ignored = {"messages", "tools", "stream", "stream_options"}
    for key, value in original.items():
        if key not in ignored:
            assert rebuilt[key] == value, key
    assert rebuilt.get("stream", False) == stream
    if stream:
        assert rebuilt["stream_options"] == {"include_usage": True}
