from __future__ import annotations

import pytest

from modelport.aggregate import Aggregator, aaggregate, aggregate
from modelport.errors import ParseError
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import RedactedThinkingPart, TextPart, ThinkingPart, ToolCall, Usage


def test_text_and_usage_snapshots_take_the_latest() -> None:
    response = aggregate(
        [
            UsageEvent(input_tokens=10, output_tokens=1),
            TextEvent(text="Hel"),
            TextEvent(text="lo"),
            UsageEvent(input_tokens=10, output_tokens=7, reasoning_tokens=2),
            FinishEvent(reason="stop"),
        ],
        model="m",
        id="r1",
    )
    assert response.content == "Hello"
    assert response.usage == Usage(input_tokens=10, output_tokens=7, reasoning_tokens=2)
    assert response.finish_reason == "stop"
    assert (response.id, response.model) == ("r1", "m")


def test_tool_call_fragments_join_by_index_not_by_last_id() -> None:
    events: list[StreamEvent] = [
        ToolCallStartEvent(index=0, id="a", name="weather"),
        ToolCallStartEvent(index=1, id="b", name="stock"),
        ToolCallDeltaEvent(index=0, arguments='{"city": '),
        ToolCallDeltaEvent(index=1, arguments='{"ticker": "AAPL"}'),
        ToolCallDeltaEvent(index=0, arguments='"Paris"}'),
        FinishEvent(reason="stop"),
    ]
    response = aggregate(events, model="m")
    assert response.tool_calls == [
        ToolCall(id="a", name="weather", arguments='{"city": "Paris"}'),
        ToolCall(id="b", name="stock", arguments='{"ticker": "AAPL"}'),
    ]
    assert response.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    # A turn that ended in tool calls is "tool_calls" whatever word the provider used.
    assert response.finish_reason == "tool_calls"


def test_a_call_with_no_arguments_is_still_a_call() -> None:
    response = aggregate([ToolCallStartEvent(index=0, id="x", name="now")], model="m")
    assert response.tool_calls == [ToolCall(id="x", name="now", arguments="{}")]
    assert response.finish_reason == "tool_calls"


def test_length_with_tool_calls_stays_length() -> None:
    response = aggregate(
        [ToolCallStartEvent(index=0, id="x", name="f"), FinishEvent(reason="length")], model="m"
    )
    assert response.finish_reason == "length"


def test_invalid_tool_arguments_are_a_parse_error_naming_the_tool() -> None:
    with pytest.raises(ParseError, match="'lookup'"):
        aggregate(
            [
                ToolCallStartEvent(index=0, id="x", name="lookup"),
                ToolCallDeltaEvent(index=0, arguments='{"q": "unterminated'),
            ],
            model="m",
        )


def test_a_second_start_at_the_same_index_is_a_parse_error() -> None:
    aggregator = Aggregator(model="m")
    aggregator.add(ToolCallStartEvent(index=0, id="a", name="first"))
    with pytest.raises(ParseError, match="'first' already holds"):
        aggregator.add(ToolCallStartEvent(index=0, id="b", name="second"))


def test_fragment_before_start_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        Aggregator(model="m").add(ToolCallDeltaEvent(index=3, arguments="{}"))


def test_thinking_blocks_keep_signatures_and_redactions_in_order() -> None:
    response = aggregate(
        [
            ReasoningEvent(text="Let me "),
            ReasoningEvent(text="think."),
            ReasoningEvent(signature="sig-1"),
            ReasoningEvent(redacted="opaque"),
            ReasoningEvent(text="More."),
            TextEvent(text="Answer"),
        ],
        model="m",
    )
    assert response.reasoning == "Let me think.More."
    assert response.thinking == [
        ThinkingPart(text="Let me think.", signature="sig-1"),
        RedactedThinkingPart(data="opaque"),
        ThinkingPart(text="More."),
    ]
    message = response.to_message()
    assert message.role == "assistant"
    assert message.content == [*response.thinking, TextPart(text="Answer")]


def test_to_message_without_thinking_is_plain_text_with_calls() -> None:
    response = aggregate(
        [TextEvent(text="ok"), ToolCallStartEvent(index=0, id="c", name="f")], model="m"
    )
    message = response.to_message()
    assert message.content == "ok"
    assert message.tool_calls == [ToolCall(id="c", name="f", arguments="{}")]


async def test_async_aggregation_matches_sync() -> None:
    events: list[StreamEvent] = [
        TextEvent(text="a"),
        TextEvent(text="b"),
        FinishEvent(reason="stop"),
    ]

    async def gen():  # type: ignore[no-untyped-def]
        for event in events:
            yield event

    assert (await aaggregate(gen(), model="m", id="x")) == aggregate(events, model="m", id="x")


def test_a_tool_call_cut_off_at_max_tokens_keeps_its_raw_arguments() -> None:
    events: list[StreamEvent] = [
        ToolCallStartEvent(index=0, id="call_1", name="write_file"),
        ToolCallDeltaEvent(index=0, arguments='{"path": "a.txt", "content": "hel'),
        FinishEvent(reason="length"),
    ]
    response = aggregate(events, model="m")
    [call] = response.tool_calls
    assert call.arguments == '{"path": "a.txt", "content": "hel'
    assert response.finish_reason == "length"
    with pytest.raises(ValueError):  # msgspec.DecodeError: incomplete, as the finish says
        call.parsed_arguments()


def test_invalid_arguments_without_a_length_finish_still_raise() -> None:
    events: list[StreamEvent] = [
        ToolCallStartEvent(index=0, id="call_1", name="lookup"),
        ToolCallDeltaEvent(index=0, arguments='{"q": '),
        FinishEvent(reason="tool_calls"),
    ]
    with pytest.raises(ParseError, match="'lookup'"):
        aggregate(events, model="m")


def test_response_events_aggregate_back_to_the_response() -> None:
    from modelport.aggregate import response_events

    events: list[StreamEvent] = [
        ReasoningEvent(text="think"),
        ReasoningEvent(signature="sig"),
        ReasoningEvent(redacted="opaque"),
        TextEvent(text="Hello"),
        ToolCallStartEvent(index=0, id="a", name="f"),
        ToolCallDeltaEvent(index=0, arguments='{"x": 1}'),
        UsageEvent(input_tokens=5, output_tokens=3, cache_read_tokens=1, cost=0.5),
        FinishEvent(reason="tool_calls"),
    ]
    response = aggregate(events, model="m", id="r1")
    assert aggregate(response_events(response), model="m", id="r1") == response
    assert response_events(aggregate([], model="m")) == []
