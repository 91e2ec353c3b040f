"""StreamDecoder rules, one dialect quirk at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    InvalidRequestError,
    ModelportError,
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
from modelport.wire.openai_chat import StreamDecoder, finish_reason


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> dict:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "choices": [choice], **top}


def sse(*chunks: dict[str, Any] | str) -> bytes:
    frames = [c if isinstance(c, str) else json.dumps(c) for c in chunks]
    return b"".join(f"data: {frame}\n\n".encode() for frame in frames)


def decode(body: bytes) -> list[StreamEvent]:
    decoder = StreamDecoder()
    return decoder.feed(body) + decoder.close()


def calls(*fragments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(fragments)}


# --- text, reasoning, refusal --------------------------------------------------


def test_text_and_empty_content_and_done() -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        "[DONE]",
    )
    assert decode(body) == [TextEvent(text="Hel"), TextEvent(text="lo"), FinishEvent(reason="stop")]


def test_reasoning_sent_twice_by_one_server_counts_once() -> None:
    body = sse(
        chunk({"reasoning_content": "think", "reasoning": "think"}),
        chunk(
            {
                "reasoning": " more",
                "reasoning_details": [{"type": "reasoning.text", "text": " more", "index": 0}],
            }
        ),
        chunk({}, "stop"),
    )
    assert decode(body) == [
        ReasoningEvent(text="think"),
        ReasoningEvent(text=" more"),
        FinishEvent(reason="stop"),
    ]


def test_openrouter_signature_closes_the_thinking_block() -> None:
    detail = {"type": "reasoning.text", "text": "", "signature": "sig==", "index": 0}
    body = sse(chunk({"reasoning": "a"}), chunk({"reasoning_details": [detail]}), chunk({}, "stop"))
    response = aggregate(decode(body), model="m")
    assert [(t.text, t.signature) for t in response.thinking] == [("a", "sig==")]  # type: ignore[union-attr]


def test_refusal_is_text_and_finishes_as_refusal() -> None:
    body = sse(chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop"))
    assert decode(body) == [
        TextEvent(text="I can't"),
        TextEvent(text=" help."),
        FinishEvent(reason="refusal"),
    ]


def test_other_choices_are_ignored() -> None:
    body = sse(
        {
            "choices": [
                {"index": 1, "delta": {"content": "B"}},
                {"index": 0, "delta": {"content": "A"}},
            ]
        },
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]},
        chunk({}, "stop"),
    )
    assert decode(body) == [TextEvent(text="A"), FinishEvent(reason="stop")]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(raw: str, reason: str) -> None:
    assert finish_reason(raw) == reason


def test_repeated_finish_is_reported_once() -> None:
    body = sse(chunk({"content": "x"}, "length"), chunk({}, "length"), "[DONE]")
    assert decode(body) == [TextEvent(text="x"), FinishEvent(reason="length")]


# --- tool calls ----------------------------------------------------------------


def test_calls_are_keyed_by_index_not_by_the_last_id() -> None:
    body = sse(
        chunk(calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}})),
        chunk(calls({"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y"'}})),
        chunk(calls({"index": 0, "function": {"arguments": '{"x":1}'}})),
        chunk(calls({"index": 1, "function": {"arguments": ":2}"}})),
        chunk({}, "tool_calls"),
    )
    response = aggregate(decode(body), model="m")
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("a", "f", '{"x":1}'),
        ("b", "g", '{"y":2}'),
    ]


def test_missing_index_means_position() -> None:
    body = sse(
        chunk(
            calls(
                {"id": "a", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "function": {"name": "g", "arguments": "{}"}},
            )
        ),
        chunk({}, "tool_calls"),
    )
    assert decode(body)[:4] == [
        ToolCallStartEvent(index=0, id="a", name="f"),
        ToolCallDeltaEvent(index=0, arguments="{}"),
        ToolCallStartEvent(index=1, id="b", name="g"),
        ToolCallDeltaEvent(index=1, arguments="{}"),
    ]


def test_whole_calls_all_at_index_zero_are_separate_calls() -> None:
    # Ollama's /v1 sends each call whole, in its own chunk, each at index 0.
    body = sse(
        chunk(calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"n":1}'}})),
        chunk(calls({"index": 0, "id": "b", "function": {"name": "f", "arguments": '{"n":2}'}})),
        chunk({}, "stop"),
    )
    response = aggregate(decode(body), model="m")
    assert [(c.id, c.arguments) for c in response.tool_calls] == [
        ("a", '{"n":1}'),
        ("b", '{"n":2}'),
    ]
    assert response.finish_reason == "tool_calls"


def test_a_repeated_id_and_name_on_every_fragment_is_one_call() -> None:
    fragment = {"index": 0, "id": "a", "type": "function"}
    body = sse(
        chunk(calls({**fragment, "function": {"name": "f", "arguments": '{"a"'}})),
        chunk(calls({**fragment, "function": {"name": "f", "arguments": ":1}"}})),
        chunk({}, "tool_calls"),
    )
    response = aggregate(decode(body), model="m")
    assert [(c.id, c.arguments) for c in response.tool_calls] == [("a", '{"a":1}')]


def test_call_without_arguments_still_exists() -> None:
    body = sse(
        chunk(calls({"index": 0, "id": "a", "function": {"name": "ping"}})), chunk({}, "stop")
    )
    events = decode(body)
    assert events == [
        ToolCallStartEvent(index=0, id="a", name="ping"),
        FinishEvent(reason="tool_calls"),
    ]
    assert aggregate(events, model="m").tool_calls[0].arguments == "{}"


def test_name_arriving_late_holds_the_arguments_back() -> None:
    body = sse(
        chunk(calls({"index": 0, "id": "a", "function": {"arguments": '{"q":'}})),
        chunk(calls({"index": 0, "function": {"name": "search", "arguments": '"x"}'}})),
        chunk({}, "tool_calls"),
    )
    assert decode(body) == [
        ToolCallStartEvent(index=0, id="a", name="search"),
        ToolCallDeltaEvent(index=0, arguments='{"q":'),
        ToolCallDeltaEvent(index=0, arguments='"x"}'),
        FinishEvent(reason="tool_calls"),
    ]


def test_call_that_never_gets_a_name_is_a_parse_error() -> None:
    body = sse(chunk(calls({"index": 0, "function": {"arguments": "{}"}})), chunk({}, "tool_calls"))
    with pytest.raises(ParseError, match="never got a name"):
        decode(body)


def test_missing_id_is_made_up_and_object_arguments_become_json() -> None:
    body = sse(
        chunk(calls({"index": 0, "function": {"name": "f", "arguments": {"a": [1, 2]}}})),
        chunk({}, "tool_calls"),
    )
    assert decode(body)[:2] == [
        ToolCallStartEvent(index=0, id="call_0", name="f"),
        ToolCallDeltaEvent(index=0, arguments='{"a":[1,2]}'),
    ]


def test_legacy_function_call_deltas() -> None:
    body = sse(
        chunk({"function_call": {"name": "f", "arguments": ""}}),
        chunk({"function_call": {"arguments": '{"a":1}'}}),
        chunk({}, "function_call"),
    )
    response = aggregate(decode(body), model="m")
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("f", '{"a":1}')]
    assert response.finish_reason == "tool_calls"


# --- usage ---------------------------------------------------------------------


def test_usage_before_finish_and_after_and_deduplicated() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    body = sse(
        chunk({"content": "a"}, usage=usage),
        chunk({"content": "b"}, usage=usage),
        chunk({}, "stop"),
        {"choices": [], "usage": {**usage, "completion_tokens": 4}},
    )
    assert decode(body) == [
        TextEvent(text="a"),
        UsageEvent(input_tokens=10, output_tokens=3),
        TextEvent(text="b"),
        FinishEvent(reason="stop"),
        UsageEvent(input_tokens=10, output_tokens=4),
    ]


def test_usage_details_from_every_dialect() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": None, "cache_write_tokens": 20},
        "completion_tokens_details": {"reasoning_tokens": 30},
        "prompt_cache_hit_tokens": 60,
        "cost": 0.25,
    }
    body = sse(chunk({}, "stop"), {"choices": [], "usage": usage})
    assert decode(body)[-1] == UsageEvent(
        input_tokens=100,
        output_tokens=50,
        cache_read_tokens=60,
        cache_write_tokens=20,
        reasoning_tokens=30,
        cost=0.25,
    )


def test_groq_usage_from_x_groq() -> None:
    body = sse(chunk({}, "stop", x_groq={"usage": {"prompt_tokens": 5, "completion_tokens": 1}}))
    assert decode(body)[-1] == UsageEvent(input_tokens=5, output_tokens=1)


# --- ends and errors -----------------------------------------------------------


def test_close_without_done_or_finish_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="closed the stream before it finished"):
        decode(sse(chunk({"content": "partial"})))


def test_finish_without_done_is_complete_and_done_without_finish_too() -> None:
    assert decode(sse(chunk({"content": "a"}, "stop"))) == [
        TextEvent(text="a"),
        FinishEvent(reason="stop"),
    ]
    assert decode(sse(chunk({"content": "a"}), "[DONE]")) == [TextEvent(text="a")]


def test_a_last_event_without_its_blank_line_is_still_read() -> None:
    body = b"data: " + json.dumps(chunk({"content": "a"}, "stop")).encode()
    assert decode(body) == [TextEvent(text="a"), FinishEvent(reason="stop")]


def test_truncated_json_at_the_end_is_a_network_error() -> None:
    body = sse(chunk({"content": "a"})) + b'data: {"choices": [{"delta'
    with pytest.raises(NetworkError):
        decode(body)


def test_anything_after_done_is_ignored() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(sse("[DONE]") + b"data: {not json}\n\n") == []
    assert decoder.feed(b"data: also ignored\n\n") == []
    assert decoder.close() == []


def test_keepalive_comments_and_empty_data_are_ignored() -> None:
    body = b": OPENROUTER PROCESSING\n\ndata:\n\n" + sse(chunk({"content": "a"}, "stop"))
    assert decode(body) == [TextEvent(text="a"), FinishEvent(reason="stop")]


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        ({"code": 400, "message": "Token limit reached"}, InvalidRequestError, 400),
        ({"code": "429", "message": "slow down"}, RateLimitError, 429),
        ({"message": "busy", "type": "rate_limit_error", "code": None}, RateLimitError, 429),
        (
            {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"},
            AuthError,
            401,
        ),
        ({"message": "The server had an error", "type": "server_error"}, UpstreamError, 500),
        ({"message": "odd", "code": 99}, UpstreamError, 500),
        ("plain text", UpstreamError, 500),
    ],
)
def test_in_band_errors(error: Any, cls: type[ModelportError], status: int) -> None:
    with pytest.raises(cls) as caught:
        decode(sse({"error": error}))
    assert caught.value.status == status


def test_error_event_type_is_an_error_even_without_an_error_key() -> None:
    with pytest.raises(UpstreamError, match="overloaded"):
        decode(b'event: error\ndata: {"message": "overloaded"}\n\n')


def test_events_before_an_error_in_the_same_feed_come_first() -> None:
    decoder = StreamDecoder()
    body = sse(chunk({"content": "a"}), {"error": {"code": 502, "message": "upstream died"}})
    assert decoder.feed(body) == [TextEvent(text="a")]
    with pytest.raises(UpstreamError, match="upstream died"):
        decoder.feed(b"")
    # The stream is over once the error has been raised.
    assert decoder.feed(sse(chunk({"content": "b"}))) == []


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        "null",
        "[1, 2]",
        '"text"',
        '{"choices": 5}',
        '{"choices": [{"delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": "zero"}]}}]}',
        '{"choices": [{"delta": {"tool_calls": {"index": 0}}}]}',
        '{"choices": [{"index": 0, "finish_reason": 3}]}',
        '{"usage": {"prompt_tokens": "many"}}',
        '{"usage": {"prompt_tokens_details": []}}',
    ],
)
def test_wrong_shapes_are_parse_errors(payload: str) -> None:
    with pytest.raises(ParseError):
        StreamDecoder().feed(f"data: {payload}\n\n".encode())


def test_invalid_utf8_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        StreamDecoder().feed(b"data: \xff\xfe\n\n")


# --- feed_json -----------------------------------------------------------------


def test_feed_json_matches_feed() -> None:
    chunks = [
        chunk({"reasoning_content": "r"}),
        chunk(calls({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}})),
        chunk({}, "tool_calls", usage={"prompt_tokens": 1, "completion_tokens": 2}),
    ]
    decoder = StreamDecoder()
    from_json = [event for c in chunks for event in decoder.feed_json(c)] + decoder.end()
    assert from_json == decode(sse(*chunks))


def test_feed_json_end_does_not_need_a_finish() -> None:
    decoder = StreamDecoder()
    assert decoder.feed_json(chunk({"content": "a"})) == [TextEvent(text="a")]
    assert decoder.end() == []


@pytest.mark.parametrize("value", [[1], "text", {"choices": [{"delta": []}]}, 5])
def test_feed_json_wrong_shapes(value: Any) -> None:
    with pytest.raises(ParseError):
        StreamDecoder().feed_json(value)


def test_feed_json_in_band_error() -> None:
    with pytest.raises(RateLimitError):
        StreamDecoder().feed_json({"error": {"code": 429, "message": "slow"}})


def test_missing_index_means_position_even_without_ids() -> None:
    body = sse(
        chunk(
            calls(
                {"function": {"name": "f", "arguments": '{"a":'}},
                {"function": {"name": "g", "arguments": "{}"}},
            )
        ),
        chunk(calls({"function": {"arguments": "1}"}})),
        chunk({}, "tool_calls"),
    )
    response = aggregate(decode(body), model="m")
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_0", "f", '{"a":1}'),
        ("call_1", "g", "{}"),
    ]
