"""The Responses API client decoder and request builder, against recorded OpenAI traffic."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import ModelportError, NetworkError, ParseError, RateLimitError
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
    ChatRequest,
    Message,
    Reasoning,
    ThinkingPart,
    ToolCall,
    ToolDefinition,
)
from modelport.wire.openai_responses import StreamDecoder, build_request, decode_response
from tests._fixtures import fixture_bytes

TEXT = "openai/responses-stream-text.sse"
CALL = "openai/responses-stream-function-call.sse"
QUOTA = "openai/responses-stream-error-insufficient_quota.jsonl"


def _jsonl_as_sse(relative: str) -> bytes:
    lines = [line for line in fixture_bytes(relative).splitlines() if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines)


BODIES = {TEXT: fixture_bytes(TEXT), CALL: fixture_bytes(CALL), QUOTA: _jsonl_as_sse(QUOTA)}


def run(pieces: list[bytes]) -> tuple[list[StreamEvent], str | None]:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    try:
        for piece in pieces:
            events += decoder.feed(piece)
        events += decoder.close()
    except ModelportError as exc:
        return events, f"{type(exc).__name__}: {exc}"
    return events, None


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def test_text_stream() -> None:
    decoder = StreamDecoder()
    events = decoder.feed(BODIES[TEXT]) + decoder.close()
    assert events == [
        TextEvent(text="pong"),
        UsageEvent(input_tokens=11, output_tokens=5),
        FinishEvent(reason="stop"),
    ]
    assert decoder.id == "resp_00592e63e61b66660169fab1b9f8e481a2b321356198d7ac1b"


def test_function_call_stream() -> None:
    events, error = run([BODIES[CALL]])
    assert error is None
    assert events[0] == ToolCallStartEvent(
        index=0, id="call_sVidsfFJ6zlzRpelrPkTPlpd", name="multiply"
    )
    deltas = [e.arguments for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert deltas == ['{"', "a", '":', "123", "1", ',"', "b", '":', "233", "1", "}"]
    assert events[-2:] == [
        UsageEvent(input_tokens=58, output_tokens=23),
        FinishEvent(reason="tool_calls"),
    ]
    response = aggregate(events, model="gpt-5.5")
    assert response.tool_calls[0].parsed_arguments() == {"a": 1231, "b": 2331}
    assert response.finish_reason == "tool_calls"


def test_in_band_error_raises_the_matching_class() -> None:
    decoder = StreamDecoder()
    with pytest.raises(RateLimitError, match="exceeded your current quota") as caught:
        decoder.feed(BODIES[QUOTA])
    assert caught.value.status == 429
    assert decoder.feed(b"data: {}\n\n") == []  # nothing after the error


def test_a_stream_cut_before_its_end_is_a_network_error() -> None:
    body = BODIES[TEXT]
    cut = body.index(b"event: response.completed")
    events, error = run([body[:cut]])
    assert events == [TextEvent(text="pong")]
    assert error is not None and error.startswith("NetworkError")


def test_events_before_an_error_in_the_same_read_come_first() -> None:
    body = BODIES[TEXT]
    cut = body.index(b"event: response.output_text.done")
    broken = body[:cut] + b'event: error\ndata: {"type":"error","code":"server_error"}\n\n'
    decoder = StreamDecoder()
    assert decoder.feed(broken) == [TextEvent(text="pong")]
    with pytest.raises(ModelportError) as caught:
        decoder.feed(b"")
    assert caught.value.status == 500


@pytest.mark.parametrize("relative", sorted(BODIES))
def test_any_split_gives_the_same_events(relative: str) -> None:
    body = BODIES[relative]
    whole = run([body])
    assert whole[0] or whole[1]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=40))
    def check(cuts: list[int]) -> None:
        assert run(split(body, cuts)) == whole

    check()


def test_byte_by_byte_gives_the_same_events() -> None:
    body = BODIES[CALL]
    assert run([body[i : i + 1] for i in range(len(body))]) == run([body])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_are_parse_errors_or_nothing(pieces: list[bytes]) -> None:
    decoder = StreamDecoder()
    try:
        for piece in pieces:
            decoder.feed(piece)
    except ParseError:
        return
    try:
        decoder.close()
    except (ParseError, NetworkError):
        pass


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
_TYPES = st.sampled_from(
    [
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
    ]
)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(["message", "function_call", "reasoning"]), _JSON),
        "id": st.one_of(st.sampled_from(["a", "b"]), _JSON),
        "name": st.one_of(st.sampled_from(["f", ""]), _JSON),
        "arguments": st.one_of(st.text(max_size=4), _JSON),
        "encrypted_content": _JSON,
        "summary": _JSON,
        "content": _JSON,
    },
)
_EVENT = st.fixed_dictionaries(
    {"type": st.one_of(_TYPES, _JSON)},
    optional={
        "delta": _JSON,
        "item_id": st.one_of(st.sampled_from(["a", "b"]), _JSON),
        "output_index": st.one_of(st.integers(0, 2), _JSON),
        "summary_index": _JSON,
        "item": st.one_of(_ITEM, _JSON),
        "response": _JSON,
        "error": _JSON,
        "code": _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT, max_size=8))
def test_events_of_any_shape_raise_only_modelport_errors(events: list[dict[str, Any]]) -> None:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    run([body])


def test_a_whole_response_object_gives_the_same_events_as_its_stream() -> None:
    # The response object of the recorded stream's response.completed event is what
    # the non-streaming call answers.
    for relative in (TEXT, CALL):
        body = BODIES[relative].decode()
        data = body.split("event: response.completed\ndata: ", 1)[1].split("\n", 1)[0]
        whole = msgspec.json.encode(json.loads(data)["response"])
        streamed = run([BODIES[relative]])[0]
        joined = aggregate(streamed, model="m", id="r")
        assert aggregate(decode_response(whole), model="m", id="r") == joined


def test_a_failed_response_object_raises() -> None:
    body = b'{"status":"failed","error":{"code":"rate_limit_exceeded","message":"slow"}}'
    with pytest.raises(RateLimitError, match="slow"):
        decode_response(body)
    with pytest.raises(ParseError):
        decode_response(b"<html>")


def test_reasoning_summary_and_encrypted_content_become_a_signed_thinking_block() -> None:
    stream = (
        b'data: {"type":"response.created","response":{"id":"resp_1"}}\n\n'
        b'data: {"type":"response.output_item.added","output_index":0,'
        b'"item":{"type":"reasoning","id":"rs_1","summary":[]}}\n\n'
        b'data: {"type":"response.reasoning_summary_text.delta","item_id":"rs_1",'
        b'"summary_index":0,"delta":"First."}\n\n'
        b'data: {"type":"response.reasoning_summary_text.delta","item_id":"rs_1",'
        b'"summary_index":1,"delta":"Second."}\n\n'
        b'data: {"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning",'
        b'"id":"rs_1","summary":[],"encrypted_content":"gAAAA-opaque"}}\n\n'
        b'data: {"type":"response.output_item.done","output_index":1,"item":{"type":"message",'
        b'"id":"msg_1","content":[{"type":"output_text","text":"whole"}]}}\n\n'
        b'data: {"type":"response.incomplete","response":{"status":"incomplete",'
        b'"incomplete_details":{"reason":"max_output_tokens"}}}\n\n'
    )
    events, error = run([stream])
    assert error is None
    assert events == [
        ReasoningEvent(text="First."),
        ReasoningEvent(text="\n\nSecond."),
        ReasoningEvent(signature="gAAAA-opaque"),
        TextEvent(text="whole"),
        FinishEvent(reason="length"),
    ]
    message = aggregate(events, model="m").to_message()
    assert message.parts[0] == ThinkingPart(text="First.\n\nSecond.", signature="gAAAA-opaque")
    # ... and the signature goes back as the reasoning item's encrypted content.
    items = build_request(
        ChatRequest(model="m", messages=[Message(role="user", content="q"), message]),
        stream=False,
    )["input"]
    assert items[1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "First.\n\nSecond."}],
        "encrypted_content": "gAAAA-opaque",
    }
    assert items[2] == {"role": "assistant", "content": "whole"}


def test_build_request_matches_the_recorded_requests() -> None:
    recorded = json.loads(fixture_bytes("openai/responses-stream-text.request.json"))
    request = ChatRequest(
        model="gpt-5.5",
        messages=[Message(role="user", content="Reply with exactly: pong")],
        reasoning=Reasoning(effort="low"),
    )
    assert build_request(request, stream=True) == recorded

    recorded = json.loads(fixture_bytes("openai/responses-stream-function-call.request.json"))
    tool = recorded["tools"][0]
    request = ChatRequest(
        model="gpt-5.5",
        messages=[Message(role="user", content=recorded["input"][0]["content"])],
        tools=[
            ToolDefinition(
                name=tool["name"], description=tool["description"], parameters=tool["parameters"]
            )
        ],
        reasoning=Reasoning(effort="low"),
    )
    built = build_request(request, stream=True)
    # The Responses API makes a function strict unless told; we say so explicitly.
    assert built["tools"] == [{**tool, "strict": False}]
    assert {**built, "tools": recorded["tools"]} == recorded


def test_build_request_carries_tool_turns_and_vendor_fields() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Multiply."),
            Message(role="assistant", tool_calls=[ToolCall(id="c1", name="f", arguments="{}")]),
            Message(role="tool", tool_call_id="c1", content="42"),
            Message(role="system", content="Mid-conversation note."),
        ],
        max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
        vendor={
            "openai-responses": {
                "store": True,
                "prompt_cache_key": "k",
                "tools": [{"type": "web_search"}],
            },
            "anthropic": {"top_k": 3},
        },
    )
    body = build_request(request, stream=False)
    assert body["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Multiply."},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"role": "system", "content": "Mid-conversation note."},
    ]
    assert body["max_output_tokens"] == 100
    assert body["text"] == {"format": {"type": "json_schema", "name": "n", "schema": {}}}
    assert body["store"] is True and body["prompt_cache_key"] == "k"
    assert body["tools"] == [{"type": "web_search"}]
    assert "top_k" not in body and "stream" not in body
