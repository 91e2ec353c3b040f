"""The Responses API, server side: requests in, events out, and back through the client side."""

from __future__ import annotations

import json
import typing
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
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
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    Usage,
)
from modelport.wire import openai_responses
from modelport.wire.openai_responses_server import (
    StreamEncoder,
    ToolNames,
    encode_error,
    encode_response,
    parse_request,
)
from tests._fixtures import fixture_bytes

INCLUDE = {"include": ["reasoning.encrypted_content"]}
#: The SDK's event model for each event type (its union, by its discriminator).
_EVENT_MODELS = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}

# --- events → StreamEncoder → the client-side decoder, and the SDK ---------------------

_TEXT = st.text(max_size=10)
_USAGE = st.builds(
    UsageEvent,
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**6),
    cache_write_tokens=st.integers(0, 10**6),
    reasoning_tokens=st.integers(0, 10**6),
)


@st.composite
def event_sequences(draw: st.DrawFn) -> list[StreamEvent]:
    """Text, reasoning (some closed by a signature), calls whose fragments interleave,
    usage anywhere, maybe a finish."""
    events: list[StreamEvent] = []
    started: list[int] = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["text", "reasoning", "signed", "start", "delta", "usage"]))
        if kind == "text":
            events.append(TextEvent(text=draw(_TEXT)))
        elif kind == "reasoning":
            events.append(ReasoningEvent(text=draw(_TEXT)))
        elif kind == "signed":
            events.append(
                ReasoningEvent(text=draw(_TEXT), signature=draw(st.text(min_size=1, max_size=6)))
            )
        elif kind == "start":
            name = draw(st.sampled_from(["f", "g", "shell"]))
            events.append(
                ToolCallStartEvent(index=len(started), id=f"call_{len(started)}", name=name)
            )
            started.append(len(started))
        elif kind == "delta" and started:
            index = draw(st.sampled_from(started))
            events.append(
                ToolCallDeltaEvent(index=index, arguments=draw(st.text(min_size=1, max_size=6)))
            )
        elif kind == "usage":
            events.append(draw(_USAGE))
    if draw(st.booleans()):
        reason = draw(
            st.sampled_from(["stop", "length", "tool_calls", "content_filter", "refusal"])
        )
        events.append(FinishEvent(reason=reason))
    return events


def expected_after_round_trip(events: list[StreamEvent]) -> list[StreamEvent]:
    """What a Responses client can know: empty text says nothing; a call that got no
    fragments has ``{}``; usage and the finish come at the end; ``refusal`` reads as
    ``stop``."""
    out: list[StreamEvent] = []
    usage = UsageEvent()
    finish = None
    argued: set[int] = set()
    calls: list[int] = []
    for event in events:
        match event:
            case TextEvent(text=""):
                continue
            case ReasoningEvent(text=text, signature=signature):
                if text:
                    out.append(ReasoningEvent(text=text))
                if signature is not None:
                    out.append(ReasoningEvent(signature=signature))
            case UsageEvent():
                usage = event
            case FinishEvent(reason=reason):
                finish = reason
            case ToolCallStartEvent(index=index):
                calls.append(index)
                out.append(event)
            case ToolCallDeltaEvent(index=index):
                argued.add(index)
                out.append(event)
            case _:
                out.append(event)
    out += [ToolCallDeltaEvent(index=i, arguments="{}") for i in calls if i not in argued]
    if finish in (None, "stop", "refusal", "tool_calls"):
        finish = "tool_calls" if calls else "stop"
    return [*out, usage, FinishEvent(reason=finish)]


def _encode_all(events: list[StreamEvent], request: dict[str, Any] | None = None) -> bytes:
    encoder = StreamEncoder(model="m", id="resp_1", request=request)
    body = b"".join(encoder.encode(e) for e in events)
    return encoder.start() + body + encoder.finish()


@settings(max_examples=200, deadline=None)
@given(event_sequences(), st.lists(st.integers(0, 6000), max_size=10))
def test_events_survive_encoder_and_decoder(events: list[StreamEvent], cuts: list[int]) -> None:
    body = _encode_all(events, INCLUDE)
    bounds = [0, *sorted({c for c in cuts if c < len(body)}), len(body)]
    decoder = openai_responses.StreamDecoder()
    decoded: list[StreamEvent] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        decoded += decoder.feed(body[start:end])
    decoded += decoder.close()
    assert decoded == expected_after_round_trip(events)
    assert decoder.id == "resp_1"


def _sdk_events(body: bytes) -> list[Any]:
    from modelport.wire._sse import SSEDecoder

    decoder = SSEDecoder()
    events = []
    for sse in decoder.feed(body) + decoder.close():
        payload = json.loads(sse.data)
        assert payload["type"] == sse.event
        # Validated strictly, every field the SDK's model requires.
        events.append(_EVENT_MODELS[payload["type"]].model_validate(payload))
    return events


@settings(max_examples=150, deadline=None)
@given(event_sequences())
def test_the_sdk_accumulates_every_stream_to_the_same_answer(events: list[StreamEvent]) -> None:
    # The official SDK's own accumulator (what client.responses.stream() runs) checks
    # the lifecycle: items added before their deltas, ids that stay the same.
    body = _encode_all(events, INCLUDE)
    state = ResponseStreamState(input_tools=[], text_format=openai.omit)
    final = None
    for event in _sdk_events(body):
        for out in state.handle_event(event):
            if out.type in ("response.completed", "response.incomplete"):
                final = out.response
    assert final is not None
    expected = aggregate([e for e in events if not isinstance(e, ToolCallDeltaEvent)], model="m")
    assert final.output_text == expected.content
    calls = [item for item in final.output if item.type == "function_call"]
    assert [c.call_id for c in calls] == [c.id for c in expected.tool_calls]


def test_namespaced_and_custom_tools_are_called_back_by_their_own_names() -> None:
    request = {
        "tools": [
            {"type": "custom", "name": "apply_patch"},
            {
                "type": "namespace",
                "name": "crm",
                "description": "",
                "tools": [
                    {"type": "function", "name": "lookup", "parameters": {"type": "object"}},
                ],
            },
        ],
    }
    events: list[StreamEvent] = [
        ToolCallStartEvent(index=0, id="c0", name="crm__lookup"),
        ToolCallDeltaEvent(index=0, arguments='{"q": 1}'),
        ToolCallStartEvent(index=1, id="c1", name="apply_patch"),
        ToolCallDeltaEvent(index=1, arguments='{"input": "*** Begin Patch"}'),
    ]
    body = _encode_all(events, request)
    done = [e.item for e in _sdk_events(body) if e.type == "response.output_item.done"]
    assert (done[0].type, done[0].namespace, done[0].name) == ("function_call", "crm", "lookup")
    assert (done[1].type, done[1].name, done[1].input) == (
        "custom_tool_call",
        "apply_patch",
        "*** Begin Patch",
    )
    whole = json.loads(encode_response(aggregate(events, model="m", id="resp_2"), request=request))
    assert [(i["type"], i.get("namespace"), i["name"]) for i in whole["output"]] == [
        ("function_call", "crm", "lookup"),
        ("custom_tool_call", None, "apply_patch"),
    ]


def test_a_long_namespaced_name_is_shortened_and_mapped_back() -> None:
    names = ToolNames()
    flat = names.add("n" * 40, "f" * 40, "function")
    assert len(flat) == 64 and names.original(flat) == ("n" * 40, "f" * 40, "function")


def test_encrypted_content_only_when_included() -> None:
    events: list[StreamEvent] = [ReasoningEvent(text="hm", signature="sig"), TextEvent(text="a")]
    with_it = [
        e
        for e in _sdk_events(_encode_all(events, INCLUDE))
        if e.type == "response.output_item.done"
    ]
    without = [e for e in _sdk_events(_encode_all(events)) if e.type == "response.output_item.done"]
    assert with_it[0].item.encrypted_content == "sig"
    assert without[0].item.encrypted_content is None
    assert with_it[0].item.summary[0].text == "hm"


def test_a_redacted_block_round_trips_through_the_client() -> None:
    response = ChatResponse(
        id="resp_3", model="m", thinking=[RedactedThinkingPart(data="opaque")], content="ok"
    )
    body = json.loads(encode_response(response, request=INCLUDE))
    reasoning, message = body["output"]
    chat = parse_request(
        {"model": "m", "input": [{"role": "user", "content": "q"}, reasoning, message]}
    )
    assert chat.messages[1].content == [RedactedThinkingPart(data="opaque"), TextPart(text="ok")]


def test_length_and_content_filter_end_incomplete() -> None:
    for reason, detail in (("length", "max_output_tokens"), ("content_filter", "content_filter")):
        last = _sdk_events(_encode_all([TextEvent(text="a"), FinishEvent(reason=reason)]))[-1]
        assert last.type == "response.incomplete"
        assert last.response.incomplete_details.reason == detail


# --- whole responses and errors -----------------------------------------------------------


def test_a_whole_response_round_trips_through_the_client_decoder() -> None:
    original = ChatResponse(
        id="resp_4",
        model="m",
        content="Checking.",
        reasoning="think",
        thinking=[ThinkingPart(text="think", signature="sig")],
        tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": [1, 2]}')],
        usage=Usage(
            input_tokens=3,
            output_tokens=4,
            cache_read_tokens=1,
            cache_write_tokens=1,
            reasoning_tokens=2,
        ),
        finish_reason="tool_calls",
    )
    body = encode_response(original, request=INCLUDE)
    back = aggregate(openai_responses.decode_response(body), model="m", id="resp_4")
    assert back == original
    assert json.loads(body)["usage"]["total_tokens"] == 7


@pytest.mark.parametrize(
    "error",
    [
        AuthError("Bad key"),
        RateLimitError("Slow down", retry_after=4),
        ModelNotFoundError("No"),
        InvalidRequestError("Bad field"),
        UpstreamError("Down", status=503),
    ],
)
def test_errors_survive_the_gateway(error: ModelportError) -> None:
    status, body, headers = encode_error(error)
    back = openai_responses.error_from_response(status, body, headers)
    assert type(back) is type(error) and back.message.startswith(error.message)
    in_band = StreamEncoder(model="m", id="resp_5").error(error)
    kinds = [e.type for e in _sdk_events(in_band)]
    assert kinds == ["error", "response.failed"]
    with pytest.raises(ModelportError) as caught:
        openai_responses.StreamDecoder().feed(in_band)
    assert caught.value.message.startswith(error.message)


# --- parsing requests ---------------------------------------------------------------------


def _recorded(relative: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(relative))["body"]


def test_a_recorded_codex_request() -> None:
    body = _recorded("clients/codex-tool/2-responses-tool-output.json")
    chat = parse_request(body)
    roles = [m.role for m in chat.messages]
    assert roles[:2] == ["system", "system"]  # Codex's developer messages
    assert roles[-2:] == ["assistant", "tool"]
    call = chat.messages[-2].tool_calls[0]
    assert (call.name, json.loads(call.arguments)) == (
        "exec_command",
        {"cmd": "echo recorded-tool-call"},
    )
    names = [tool.name for tool in chat.tools]
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names
    passthrough = chat.vendor["openai-responses"]
    assert passthrough["tools"] == [t for t in body["tools"] if t["type"] == "web_search"]
    assert len(passthrough["tools"]) == 1
    assert passthrough["include"] == ["reasoning.encrypted_content"]
    assert passthrough["prompt_cache_key"] == body["prompt_cache_key"]
    assert passthrough["client_metadata"] == body["client_metadata"]
    assert passthrough["reasoning"] == {"summary": "auto"}
    assert "store" not in passthrough and "stream" not in passthrough
    assert chat.vendor["openai"] == {"parallel_tool_calls": True}
    assert chat.tool_choice == ToolChoice(mode="auto")
    assert chat.reasoning is None


def test_instructions_and_a_string_input() -> None:
    chat = parse_request(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": "hi",
            "reasoning": {"effort": "xhigh"},
            "max_output_tokens": 64.0,
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
        }
    )
    assert [(m.role, m.content) for m in chat.messages] == [("system", "Be brief."), ("user", "hi")]
    assert chat.vendor["openai"]["reasoning_effort"] == "xhigh" and chat.reasoning is None
    assert chat.max_tokens == 64
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {}},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "m", "input": []}, "at least one item"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input_file",
        ),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "role"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "whole number"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "call_id"),
        ({"model": "m", "input": [{"content": "no role, no type"}]}, "needs a `type`"),
        ({"model": "m", "input": "x", "tools": [{"name": "f"}]}, "every tool needs a `type`"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": [{"role": "assistant", "content": [{"type": "x"}]}]}, "'x'"),
    ],
)
def test_bad_requests_name_their_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_request(body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(
                [
                    "message",
                    "function_call",
                    "function_call_output",
                    "reasoning",
                    "custom_tool_call",
                    "web_search_call",
                ]
            ),
            _JSON,
        ),
        "role": st.one_of(st.sampled_from(["user", "assistant", "developer", "system"]), _JSON),
        "content": _JSON,
        "call_id": _JSON,
        "name": _JSON,
        "arguments": _JSON,
        "output": _JSON,
        "summary": _JSON,
        "encrypted_content": _JSON,
    },
)
_BODY = st.fixed_dictionaries(
    {"model": st.one_of(st.just("m"), _JSON)},
    optional={
        "input": st.one_of(st.lists(_ITEM, max_size=4), _JSON),
        "instructions": _JSON,
        "tools": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["function", "namespace", "custom", "web_search"])},
                    optional={"name": _JSON, "tools": _JSON, "parameters": _JSON},
                ),
                max_size=3,
            ),
            _JSON,
        ),
        "tool_choice": _JSON,
        "reasoning": _JSON,
        "text": _JSON,
        "max_output_tokens": _JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(_BODY)
def test_any_body_is_a_request_or_an_invalid_request_error(body: dict[str, Any]) -> None:
    try:
        parse_request(body)
    except InvalidRequestError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_are_a_request_or_an_invalid_request_error(body: bytes) -> None:
    try:
        parse_request(body)
    except InvalidRequestError:
        pass
