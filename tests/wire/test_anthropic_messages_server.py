"""The Anthropic Messages server side, checked with the official SDK's own types and stream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    ConfigError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    ParseError,
    PluginError,
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
from modelport.types import (
    ChatResponse,
    ImagePart,
    Message,
    ModelInfo,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)
from modelport.wire import anthropic_messages as client
from modelport.wire import anthropic_messages_server as server
from tests._fixtures import fixture_bytes

try:  # Newer SDKs run on the httpx2 fork and refuse httpx objects.
    import httpx2 as sdk_httpx
except ImportError:  # pragma: no cover - older SDKs
    import httpx as sdk_httpx

STREAM_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)

# --- parse_request ----------------------------------------------------------


def test_parse_a_realistic_request() -> None:
    request = server.parse_request(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Big doc", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look:"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "AA==",
                            },
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "RRR"},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_9", "name": "look", "input": {"q": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_9",
                            "content": [{"type": "text", "text": "no such file"}],
                            "is_error": True,
                        },
                        {"type": "text", "text": "Try again"},
                    ],
                },
            ],
            "tools": [
                {
                    "name": "look",
                    "description": "Look things up",
                    "input_schema": {"type": "object"},
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
            ],
            "tool_choice": {"type": "tool", "name": "look"},
            "stop_sequences": ["###"],
            "temperature": 0.5,
            "top_p": 0.8,
            "top_k": 40,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "metadata": {"user_id": "abc"},
            "service_tier": "standard_only",
            "stream": True,
        }
    )
    assert request.model == "claude-sonnet-4-5"
    assert request.max_tokens == 1024
    assert request.messages == [
        Message(
            role="system",
            content=[TextPart(text="Be brief."), TextPart(text="Big doc", cache=True)],
        ),
        Message(
            role="user",
            content=[
                TextPart(text="Look:"),
                ImagePart(data="AA==", media_type="image/jpeg"),
                ImagePart(url="https://x/y.png"),
            ],
        ),
        Message(
            role="assistant",
            content=[
                ThinkingPart(text="hmm", signature="sig"),
                RedactedThinkingPart(data="RRR"),
                TextPart(text="Checking."),
            ],
            tool_calls=[ToolCall(id="toolu_9", name="look", arguments='{"q":1}')],
        ),
        Message(
            role="tool",
            tool_call_id="toolu_9",
            content=[TextPart(text="Error: "), TextPart(text="no such file")],
        ),
        Message(role="user", content=[TextPart(text="Try again")]),
    ]
    assert request.tools == [
        ToolDefinition(
            name="look", description="Look things up", parameters={"type": "object"}, cache=True
        )
    ]
    assert request.tool_choice == ToolChoice.tool("look")
    assert request.stop == ["###"]
    assert (request.temperature, request.top_p) == (0.5, 0.8)
    assert request.reasoning == Reasoning(budget_tokens=2000)
    assert request.metadata == {"user_id": "abc"}
    assert request.vendor == {
        "anthropic": {
            "top_k": 40,
            "service_tier": "standard_only",
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        },
        # metadata.user_id is OpenAI's `user`.
        "openai": {"user": "abc"},
        "openai-responses": {"user": "abc"},
    }


def test_parse_reads_a_tools_strict_flag() -> None:
    request = server.parse_request(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"name": "a", "input_schema": {"type": "object"}, "strict": True},
                {"name": "b", "input_schema": {"type": "object"}, "strict": False},
                {"name": "c", "input_schema": {"type": "object"}},
            ],
        }
    )
    assert [(tool.name, tool.strict) for tool in request.tools] == [
        ("a", True),
        ("b", False),
        ("c", None),
    ]
    assert request.vendor == {}


def test_parse_bytes_and_plain_strings() -> None:
    request = server.parse_request(
        b'{"model":"m","max_tokens":5,"system":"S","messages":[{"role":"user","content":"hi"}]}'
    )
    assert request.messages == [
        Message(role="system", content="S"),
        Message(role="user", content="hi"),
    ]
    assert request.vendor == {} and request.reasoning is None


USER_X = {"role": "user", "content": "x"}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": "9", "messages": []}, "max_tokens"),
        (
            {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
            r">= 1 - at `\$.max_tokens`",
        ),
        # Numbers out of range stop at the edge, naming the field (not forwarded upstream).
        (
            {"model": "m", "max_tokens": 10**400, "messages": [{"role": "user", "content": "x"}]},
            r"<= 2147483647 - at `\$.max_tokens`",
        ),
        (
            {"model": "m", "max_tokens": 9, "temperature": 1.5, "messages": [USER_X]},
            r"<= 1.0 - at `\$.temperature`",
        ),
        ({"model": "m", "max_tokens": 9, "top_p": -1, "messages": [USER_X]}, r"\$.top_p"),
        ({"model": "m", "max_tokens": 9, "top_k": 10**30, "messages": [USER_X]}, r"\$.top_k"),
        (
            {
                "model": "m",
                "max_tokens": 9,
                "thinking": {"type": "enabled", "budget_tokens": 10**400},
                "messages": [USER_X],
            },
            "budget_tokens",
        ),
        ({"model": "m" * 257, "max_tokens": 9, "messages": [USER_X]}, r"length <= 256"),
        ({"model": "m", "max_tokens": 9, "messages": []}, "at least one"),
        ({"model": "m", "max_tokens": 9, "messages": [{"role": "tool", "content": "x"}]}, "role"),
        (
            {
                "model": "m",
                "max_tokens": 9,
                "messages": [{"role": "user", "content": [{"type": "document"}]}],
            },
            "document",
        ),
        (
            {
                "model": "m",
                "max_tokens": 9,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "sometimes"},
            },
            "sometimes",
        ),
        (b"{nope", "not valid JSON"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_requests_are_refused(body: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        server.parse_request(body)


# --- the stream encoder -----------------------------------------------------

SCRIPT: list[StreamEvent] = [
    ReasoningEvent(text="Let me "),
    ReasoningEvent(text="think."),
    ReasoningEvent(signature="SIG=="),
    ReasoningEvent(redacted="REDACTED=="),
    TextEvent(text="Calling "),
    TextEvent(text='two tools "now".'),
    ToolCallStartEvent(index=0, id="toolu_a", name="get_weather"),
    ToolCallDeltaEvent(index=0, arguments='{"city": '),
    ToolCallDeltaEvent(index=0, arguments='"Paris"}'),
    ToolCallStartEvent(index=1, id="toolu_b", name="ping"),
    FinishEvent(reason="tool_calls"),
    UsageEvent(input_tokens=120, output_tokens=33, cache_read_tokens=100, cache_write_tokens=5),
]


def encode(events: list[StreamEvent], **options: Any) -> bytes:
    encoder = server.StreamEncoder(model="claude-test", id="msg_test", **options)
    return encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()


def frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in data.decode().split("\n\n"):
        if frame:
            event, payload = frame.split("\n")
            out.append((event.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


def test_every_frame_is_a_valid_sdk_event_with_matching_names() -> None:
    parsed = frames(encode(SCRIPT, input_tokens=120))
    for name, payload in parsed:
        event = STREAM_EVENT.validate_python(payload)
        assert event.type == name
    assert [name for name, _ in parsed] == [
        "message_start",
        *["content_block_start", "content_block_delta", "content_block_delta"],
        *["content_block_delta", "content_block_stop"],  # signature, then stop
        *["content_block_start", "content_block_stop"],  # redacted
        *["content_block_start", "content_block_delta", "content_block_delta"],
        "content_block_stop",
        *["content_block_start", "content_block_delta", "content_block_delta"],
        "content_block_stop",
        *["content_block_start", "content_block_stop"],  # tool call without arguments
        "message_delta",
        "message_stop",
    ]
    indices = [p["index"] for n, p in parsed if n == "content_block_start"]
    assert indices == [0, 1, 2, 3, 4]
    delta = parsed[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 15,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100,
        "output_tokens": 33,
    }


def _sdk_client(body: bytes) -> anthropic.AsyncAnthropic:
    def handler(request: Any) -> Any:
        return sdk_httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return anthropic.AsyncAnthropic(
        api_key="test",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=sdk_httpx.AsyncClient(transport=sdk_httpx.MockTransport(handler)),
    )


async def test_the_official_sdk_reads_the_stream() -> None:
    sdk = _sdk_client(encode(SCRIPT, input_tokens=120))
    async with sdk.messages.stream(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        text = [chunk async for chunk in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(text) == 'Calling two tools "now".'
    assert message.id == "msg_test" and message.model == "claude-test"
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "SIG=="},
        {"type": "redacted_thinking", "data": "REDACTED=="},
        {"type": "text", "text": 'Calling two tools "now".'},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "ping", "input": {}},
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 15
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.cache_creation_input_tokens == 5
    assert message.usage.output_tokens == 33


async def test_the_official_sdk_raises_on_the_error_frame() -> None:
    encoder = server.StreamEncoder(model="m")
    body = (
        encoder.start()
        + encoder.encode(TextEvent(text="partial"))
        + encoder.error(UpstreamError("Overloaded", status=529))
    )
    assert b"message_stop" not in body
    sdk = _sdk_client(body)
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        async with sdk.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            async for _ in stream:
                pass


def test_error_frame_decodes_to_the_same_class() -> None:
    encoder = server.StreamEncoder(model="m")
    decoder = client.StreamDecoder()
    decoder.feed(encoder.start())
    with pytest.raises(RateLimitError, match="slow down"):
        decoder.feed(encoder.error(RateLimitError("slow down", retry_after=3)))


def test_stop_reasons_and_defaults() -> None:
    for reason, wire_reason in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("refusal", "refusal"),
        ("content_filter", "refusal"),
    ]:
        parsed = frames(encode([TextEvent(text="x"), FinishEvent(reason=reason)]))  # type: ignore[arg-type]
        assert parsed[-2][1]["delta"]["stop_reason"] == wire_reason
    # Without a finish event: end_turn, or tool_use once a call was made.
    assert frames(encode([]))[-2][1]["delta"]["stop_reason"] == "end_turn"
    calls = [ToolCallStartEvent(index=0, id="t", name="f")]
    assert frames(encode(calls))[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_start_frame_carries_id_model_and_input_tokens() -> None:
    [(name, payload)] = frames(server.StreamEncoder(model="m", input_tokens=42).start())
    event = STREAM_EVENT.validate_python(payload)
    assert isinstance(event, anthropic.types.RawMessageStartEvent)
    assert event.message.id.startswith("msg_") and event.message.model == "m"
    assert event.message.usage.input_tokens == 42 and event.message.content == []


def test_start_frame_reports_the_upstream_usage_already_seen() -> None:
    # The gateway encodes the first events before it asks for start(): a leading
    # usage snapshot (Anthropic's message_start) must appear in our message_start.
    encoder = server.StreamEncoder(model="m")
    encoder.encode(UsageEvent(input_tokens=1500, cache_read_tokens=1000, output_tokens=1))
    [(name, payload)] = frames(encoder.start())
    usage = STREAM_EVENT.validate_python(payload).message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (500, 1000)


# --- round trips ------------------------------------------------------------

_TEXT = st.text(min_size=1, max_size=12)


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[StreamEvent], Usage, str]:
    events: list[StreamEvent] = []
    calls = 0
    for kind in draw(st.lists(st.sampled_from(["text", "think", "redacted", "call"]), max_size=8)):
        if kind == "text":
            events += [TextEvent(text=t) for t in draw(st.lists(_TEXT, min_size=1, max_size=3))]
        elif kind == "think":
            events += [ReasoningEvent(text=t) for t in draw(st.lists(_TEXT, max_size=3))]
            if draw(st.booleans()):
                events.append(ReasoningEvent(signature=draw(_TEXT)))
        elif kind == "redacted":
            events.append(ReasoningEvent(redacted=draw(_TEXT)))
        else:
            events.append(ToolCallStartEvent(index=calls, id=f"toolu_{calls}", name=draw(_TEXT)))
            pieces = draw(st.lists(_TEXT, max_size=3))
            events += [ToolCallDeltaEvent(index=calls, arguments=p) for p in pieces]
            calls += 1
    counts = st.integers(0, 10_000)
    cache_read, cache_write, uncached, output = (draw(counts) for _ in range(4))
    usage = Usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "refusal"]))
    tail: list[StreamEvent] = [UsageEvent(**msgspec_fields(usage)), FinishEvent(reason=finish)]  # type: ignore[arg-type]
    if draw(st.booleans()):
        tail.reverse()
    return events + tail, usage, finish


def msgspec_fields(usage: Usage) -> dict[str, Any]:
    return {f: getattr(usage, f) for f in usage.__struct_fields__}


@settings(max_examples=150, deadline=None)
@given(event_sequences(), st.lists(st.integers(0, 10_000), max_size=6))
def test_events_survive_encoder_then_decoder(
    case: tuple[list[StreamEvent], Usage, str], cuts: list[int]
) -> None:
    events, usage, finish = case
    data = encode(events)
    for _, payload in frames(data):
        STREAM_EVENT.validate_python(payload)
    decoder = client.StreamDecoder()
    decoded: list[StreamEvent] = []
    start = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        decoded += decoder.feed(data[start:cut])
        start = cut
    decoded += decoder.feed(data[start:]) + decoder.close()

    def content(seq: list[StreamEvent]) -> list[StreamEvent]:
        return [e for e in seq if not isinstance(e, UsageEvent | FinishEvent)]

    assert content(decoded) == content(events)
    assert [e for e in decoded if isinstance(e, UsageEvent)][-1].to_usage() == usage
    # A turn that ended in tool calls decodes as tool_calls whatever the stop word.
    called = any(isinstance(e, ToolCallStartEvent) for e in events)
    expected = "tool_calls" if finish == "stop" and called else finish
    assert [e for e in decoded if isinstance(e, FinishEvent)] == [FinishEvent(reason=expected)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "messages-stream-thinking-signature.sse",
        "messages-stream-text-and-two-tool_use.sse",
        "messages-stream-redacted_thinking.sse",
        "messages-stream-cache-read.sse",
        "messages-stream-two-tool_use-empty-input.sse",
    ],
)
def test_recorded_streams_survive_decode_encode_decode(name: str) -> None:
    first = client.StreamDecoder()
    events = first.feed(fixture_bytes(f"anthropic/{name}")) + first.close()
    second = client.StreamDecoder()
    again = second.feed(encode(events)) + second.close()
    assert aggregate(again, model="m", id="r") == aggregate(events, model="m", id="r")


# --- whole responses and errors ---------------------------------------------

RESPONSE = ChatResponse(
    id="resp_1",
    model="claude-test",
    content="Here.",
    reasoning="thought",
    thinking=[ThinkingPart(text="thought", signature="S1"), RedactedThinkingPart(data="R1")],
    tool_calls=[ToolCall(id="toolu_1", name="f", arguments='{"a": [1, 2]}')],
    usage=Usage(input_tokens=50, output_tokens=7, cache_read_tokens=20, cache_write_tokens=10),
    finish_reason="tool_calls",
)


def test_encode_response_is_an_sdk_message() -> None:
    message = anthropic.types.Message.model_validate_json(server.encode_response(RESPONSE))
    assert message.id.startswith("msg_") and message.model == "claude-test"
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "thinking", "thinking": "thought", "signature": "S1"},
        {"type": "redacted_thinking", "data": "R1"},
        {"type": "text", "text": "Here."},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}},
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 7)
    assert message.usage.cache_read_input_tokens == 20
    assert message.usage.cache_creation_input_tokens == 10


def test_encode_response_round_trips_through_decode_response() -> None:
    again = aggregate(
        client.decode_response(server.encode_response(RESPONSE)), model="claude-test", id="resp_1"
    )
    assert again.content == RESPONSE.content
    assert again.thinking == RESPONSE.thinking
    assert [(c.id, c.name, c.parsed_arguments()) for c in again.tool_calls] == [
        ("toolu_1", "f", {"a": [1, 2]})
    ]
    assert again.usage == RESPONSE.usage and again.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("error", "status", "kind", "read_back"),
    [
        (AuthError("no key", status=401), 401, "authentication_error", AuthError),
        (AuthError("forbidden", status=403), 403, "permission_error", AuthError),
        (RateLimitError("slow", retry_after=2.5), 429, "rate_limit_error", RateLimitError),
        (InvalidRequestError("bad"), 400, "invalid_request_error", InvalidRequestError),
        (
            ContextTooLongError("prompt is too long: 208310 tokens > 200000 maximum"),
            400,
            "invalid_request_error",
            ContextTooLongError,
        ),
        (
            InvalidRequestError("huge", status=413),
            413,
            "invalid_request_error",
            InvalidRequestError,
        ),
        (UpstreamError("slow", status=504), 504, "timeout_error", UpstreamError),
        (ModelNotFoundError("who?"), 404, "not_found_error", ModelNotFoundError),
        (UpstreamError("busy", status=529), 529, "overloaded_error", UpstreamError),
        (UpstreamError("boom", status=500), 500, "api_error", UpstreamError),
        (UpstreamError("teapot", status=418), 502, "api_error", UpstreamError),
        (NetworkError("refused"), 502, "api_error", UpstreamError),
        (ParseError("garbage"), 502, "api_error", UpstreamError),
        (PluginError("crashed"), 502, "api_error", UpstreamError),
        (ConfigError("bad config"), 500, "api_error", UpstreamError),
    ],
)
def test_encode_error(
    error: ModelportError, status: int, kind: str, read_back: type[ModelportError]
) -> None:
    got_status, body, headers = server.encode_error(error)
    assert got_status == status
    parsed = anthropic.types.ErrorResponse.model_validate_json(body)
    assert parsed.error.type == kind and parsed.error.message == error.message
    assert headers["content-type"] == "application/json"
    assert headers.get("retry-after") == ("3" if isinstance(error, RateLimitError) else None)
    # What the gateway sends, our own client reads back as the same kind of error.
    again = client.error_from_response(status, body, headers)
    assert type(again) is read_back
    assert error.message in again.message


# --- what schemathesis found (tests/server/test_schemathesis.py) ---------------


def _request(*blocks: Any, **fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": list(blocks)}],
        **fields,
    }


def test_max_tokens_written_with_a_fraction_is_a_count() -> None:
    request = server.parse_request(
        {**_request({"type": "text", "text": "x"}), "max_tokens": 1024.0}
    )
    assert request.max_tokens == 1024 and isinstance(request.max_tokens, int)
    with pytest.raises(InvalidRequestError, match="whole number"):
        server.parse_request({**_request({"type": "text", "text": "x"}), "max_tokens": 2.5})


def test_a_block_ignores_fields_of_other_block_kinds() -> None:
    # Each block reads its own fields: "data" means nothing to a text block or a url source.
    request = server.parse_request(
        _request(
            {"type": "text", "text": "hi", "data": [1], "source": 5, "citations": None},
            {"type": "image", "source": {"type": "url", "url": "https://x/a.png", "data": []}},
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "text", "text": "ok", "id": 3}],
            },
        )
    )
    assert request.messages == [
        Message(role="tool", content=[TextPart(text="ok")], tool_call_id="t"),
        Message(role="user", content=[TextPart(text="hi"), ImagePart(url="https://x/a.png")]),
    ]


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"type": "text"}, "`text`"),
        ({"type": "thinking", "signature": "s"}, "`thinking`"),
        ({"type": "redacted_thinking"}, "`data`"),
        ({"type": "tool_use", "id": "t", "name": "f", "input": [1]}, r"input"),
        ({"type": "image", "source": {"type": "url"}}, "`url`"),
        ({"type": "image", "source": {"type": "file", "file_id": "f"}}, "'file'"),
        (
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]},
            "tool_use",
        ),
    ],
)
def test_malformed_blocks_are_refused(block: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        server.parse_request(_request(block))


def test_system_blocks_must_be_text() -> None:
    with pytest.raises(InvalidRequestError, match="'image'"):
        server.parse_request(
            _request({"type": "text", "text": "x"}, system=[{"type": "image", "source": {}}])
        )


def test_encode_models_is_the_sdk_model_page() -> None:
    models = [
        ModelInfo(id="claude-x", connection="ant", name="Claude X", context_window=200_000),
        ModelInfo(id="m", connection="local", max_output_tokens=4096),
    ]
    page = json.loads(server.encode_models(models))
    infos = [anthropic.types.ModelInfo.model_validate(item) for item in page["data"]]
    assert [(i.id, i.display_name, i.type, i.lifecycle) for i in infos] == [
        ("ant/claude-x", "Claude X", "model", "active"),
        ("local/m", "m", "model", "active"),
    ]
    assert infos[0].max_input_tokens == 200_000 and infos[1].max_tokens == 4096
    assert (page["has_more"], page["first_id"], page["last_id"]) == (
        False,
        "ant/claude-x",
        "local/m",
    )
    empty = json.loads(server.encode_models([]))
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
