"""Gemini's generateContent answers: recorded traffic → canonical events, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
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
from modelport.types import Capabilities, ThinkingPart, ToolCall, Usage
from modelport.wire import gemini
from tests._fixtures import fixture_bytes

TEXT = "google/streamGenerateContent-sse-text.sse"
CALL = "google/streamGenerateContent-sse-functionCall.sse"
SIGNED_CALL = "google/streamGenerateContent-sse-functionCall-thoughtSignature.sse"
THINKING = "google/streamGenerateContent-sse-thinking.sse"
ARRAY = "google/streamGenerateContent-json-array-functionCall.json"
PARTIAL = "google/vertex-stream-partialArgs.jsonl"


def partial_args_sse() -> bytes:
    """The Vertex recording as the SSE body it was: its recorder kept only the data payloads."""
    lines = [line for line in fixture_bytes(PARTIAL).splitlines() if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines)


BODIES = {
    TEXT: fixture_bytes(TEXT),
    CALL: fixture_bytes(CALL),
    SIGNED_CALL: fixture_bytes(SIGNED_CALL),
    THINKING: fixture_bytes(THINKING),
    PARTIAL: partial_args_sse(),
}


def decode(body: bytes) -> list[StreamEvent]:
    decoder = gemini.StreamDecoder()
    return decoder.feed(body) + decoder.close()


def chunks(relative: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix(b"data: "))
        for line in BODIES[relative].splitlines()
        if line.startswith(b"data: ")
    ]


def signature_of(relative: str, chunk: int, part: int = 0) -> str:
    return chunks(relative)[chunk]["candidates"][0]["content"]["parts"][part]["thoughtSignature"]


# --- every recorded file, decoded exactly ---------------------------------------------


def test_text_stream() -> None:
    decoder = gemini.StreamDecoder()
    events = decoder.feed(BODIES[TEXT]) + decoder.close()
    assert events == [
        TextEvent(text="The"),
        UsageEvent(input_tokens=15),
        TextEvent(text=" capital of France"),
        TextEvent(text=" is Paris.\n"),
        UsageEvent(input_tokens=13, output_tokens=8),
        FinishEvent(reason="stop"),
    ]
    assert decoder.id == "w1peaMz6INOvnvgPgYfPiQY"


def test_function_call_stream() -> None:
    assert decode(BODIES[CALL]) == [
        ToolCallStartEvent(index=0, id="call_1lpeaMTxIpW1nvgP-O3vwQY_0", name="get_capital"),
        ToolCallDeltaEvent(index=0, arguments='{"country": "France"}'),
        UsageEvent(input_tokens=52, output_tokens=5),
        FinishEvent(reason="tool_calls"),
    ]


def test_function_call_keeps_its_thought_signature() -> None:
    events = decode(BODIES[SIGNED_CALL])
    signature = signature_of(SIGNED_CALL, 0)
    assert signature.startswith("EpwICpkIAXLI2nx") and signature.endswith("k15QuFyU=")
    assert events == [
        ToolCallStartEvent(
            index=0, id="call_QUVVadTSNJ6_qtsPvN7J8Q0_0", name="get_country", signature=signature
        ),
        ToolCallDeltaEvent(index=0, arguments="{}"),
        # 10 candidate tokens and 202 thinking tokens: output counts both.
        UsageEvent(input_tokens=29, output_tokens=212, reasoning_tokens=202),
        FinishEvent(reason="tool_calls"),
    ]
    [call] = aggregate(events, model="gemini-3-pro-preview").tool_calls
    assert call == ToolCall(
        id="call_QUVVadTSNJ6_qtsPvN7J8Q0_0", name="get_country", arguments="{}", signature=signature
    )


def test_thinking_stream() -> None:
    events = decode(BODIES[THINKING])
    recorded = chunks(THINKING)
    thoughts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in recorded[:4]]
    answer = [c["candidates"][0]["content"]["parts"][0]["text"] for c in recorded[4:]]
    signature = signature_of(THINKING, 4)
    assert events[:9] == [
        ReasoningEvent(text=thoughts[0]),
        UsageEvent(input_tokens=34, output_tokens=68, reasoning_tokens=68),
        ReasoningEvent(text=thoughts[1]),
        UsageEvent(input_tokens=34, output_tokens=298, reasoning_tokens=298),
        ReasoningEvent(text=thoughts[2]),
        UsageEvent(input_tokens=34, output_tokens=552, reasoning_tokens=552),
        ReasoningEvent(text=thoughts[3]),
        UsageEvent(input_tokens=34, output_tokens=787, reasoning_tokens=787),
        # The first answer part carries the signature of the thinking before it.
        ReasoningEvent(signature=signature),
    ]
    assert events[9] == TextEvent(text=answer[0])
    assert [e.text for e in events if isinstance(e, TextEvent)] == answer
    assert events[-2:] == [
        UsageEvent(input_tokens=34, output_tokens=469 + 787, reasoning_tokens=787),
        FinishEvent(reason="stop"),
    ]
    response = aggregate(events, model="gemini-2.5-pro")
    assert response.thinking == [ThinkingPart(text="".join(thoughts), signature=signature)]
    assert response.content == "".join(answer)
    assert response.content.startswith("This is a great question! Safely crossing")
    assert response.content.endswith("Always assume a driver might not see you.")
    assert response.usage == Usage(input_tokens=34, output_tokens=1256, reasoning_tokens=787)


def test_streamed_partial_arguments() -> None:
    events = decode(BODIES[PARTIAL])
    signature = chunks(PARTIAL)[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert events == [
        ToolCallStartEvent(
            index=0, id="call_dqHOab6xGLzWodAPkPuViA4_0", name="getWeather", signature=signature
        ),
        ToolCallDeltaEvent(index=0, arguments='{"location":"Boston'),
        ToolCallDeltaEvent(index=0, arguments='"}'),
        ToolCallStartEvent(index=1, id="call_dqHOab6xGLzWodAPkPuViA4_1", name="getWeather"),
        ToolCallDeltaEvent(index=1, arguments='{"location":"San Francisco'),
        ToolCallDeltaEvent(index=1, arguments='"}'),
        UsageEvent(input_tokens=26, output_tokens=23 + 132, reasoning_tokens=132),
        FinishEvent(reason="tool_calls"),
    ]
    calls = aggregate(events, model="gemini-3.1-pro-preview").tool_calls
    assert [(c.name, c.parsed_arguments(), c.signature) for c in calls] == [
        ("getWeather", {"location": "Boston"}, signature),
        ("getWeather", {"location": "San Francisco"}, None),
    ]


def test_json_array_body() -> None:
    raw = fixture_bytes(ARRAY)
    recorded = json.loads(raw)
    thought = recorded[0]["candidates"][0]["content"]["parts"][0]["text"]
    signature = recorded[1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert gemini.decode_response(raw) == [
        ReasoningEvent(text=thought),
        UsageEvent(input_tokens=32, output_tokens=42, reasoning_tokens=42),
        ToolCallStartEvent(
            index=0,
            id="call_OYpyaqycKd2V_uMP65TsgA0_0",
            name="pelican_name_generator",
            signature=signature,
        ),
        ToolCallDeltaEvent(index=0, arguments="{}"),
        UsageEvent(input_tokens=32, output_tokens=54, reasoning_tokens=42),
        FinishEvent(reason="tool_calls"),
    ]


def test_not_found_error() -> None:
    error = gemini.error_from_response(
        404, fixture_bytes("google/error-404-not_found.sorted.json"), {}
    )
    assert isinstance(error, ModelNotFoundError)
    assert error.status == 404
    assert error.message.startswith("Gemini: models/gemini-3.6-flahs is not found for API version")
    assert error.message.endswith("— check the model id (`modelport models` lists them)")


def test_resource_exhausted_takes_its_retry_delay() -> None:
    error = gemini.error_from_response(
        429, fixture_bytes("google/error-429-resource_exhausted.json"), {}
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 34.4
    assert error.message == "Gemini: You exceeded your current quota, please check your plan."


def test_a_retry_after_header_wins_over_retry_info() -> None:
    body = fixture_bytes("google/error-429-resource_exhausted.json")
    error = gemini.error_from_response(429, body, {"Retry-After": "3"})
    assert error.retry_after == 3.0


# --- documented shapes that no recording holds --------------------------------------
# Built from the API reference (GenerateContentResponse, Status, ListModelsResponse).


def _sse(*objects: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)


def _candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "r1"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MAX_TOKENS", "length"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(raw: str, reason: str) -> None:
    events = decode(_sse(_candidate([{"text": "partial"}], finish=raw)))
    assert events == [TextEvent(text="partial"), FinishEvent(reason=reason)]


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    assert decode(_sse(blocked)) == [
        UsageEvent(input_tokens=9),
        FinishEvent(reason="content_filter"),
    ]
    assert gemini.decode_response(json.dumps(blocked).encode())[-1] == FinishEvent(
        reason="content_filter"
    )


def test_a_malformed_function_call_fails_the_turn() -> None:
    chunk = _candidate([], finish="MALFORMED_FUNCTION_CALL")
    chunk["candidates"][0]["finishMessage"] = "Malformed function call: print(x"
    with pytest.raises(UpstreamError) as caught:
        decode(_sse(chunk))
    assert caught.value.status == 502 and caught.value.retryable
    assert "MALFORMED_FUNCTION_CALL: Malformed function call: print(x" in caught.value.message


def test_cached_tokens_are_the_cache_read() -> None:
    chunk = _candidate([{"text": "ok"}], finish="STOP")
    chunk["usageMetadata"] = {
        "promptTokenCount": 2100,
        "cachedContentTokenCount": 2048,
        "toolUsePromptTokenCount": 12,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 40,
        "totalTokenCount": 2155,
    }
    assert decode(_sse(chunk))[1] == UsageEvent(
        input_tokens=2112, output_tokens=43, cache_read_tokens=2048, reasoning_tokens=40
    )


def test_parallel_calls_and_a_call_id_of_googles_own() -> None:
    parts = [
        {"functionCall": {"id": "fc-1", "name": "a", "args": {"x": 1}}, "thoughtSignature": "s1"},
        {"functionCall": {"name": "b", "args": {}}},
    ]
    events = decode(_sse(_candidate(parts, finish="STOP")))
    assert events == [
        ToolCallStartEvent(index=0, id="fc-1", name="a", signature="s1"),
        ToolCallDeltaEvent(index=0, arguments='{"x": 1}'),
        ToolCallStartEvent(index=1, id="call_r1_1", name="b"),
        ToolCallDeltaEvent(index=1, arguments="{}"),
        FinishEvent(reason="tool_calls"),
    ]


def test_a_signature_on_an_empty_text_part_closes_the_thinking() -> None:
    events = decode(
        _sse(
            _candidate([{"text": "Let me think.", "thought": True}]),
            _candidate([{"text": "", "thoughtSignature": "sig"}], finish="STOP"),
        )
    )
    assert events == [
        ReasoningEvent(text="Let me think."),
        ReasoningEvent(signature="sig"),
        FinishEvent(reason="stop"),
    ]
    assert aggregate(events, model="m").thinking == [
        ThinkingPart(text="Let me think.", signature="sig")
    ]


def test_a_stream_without_a_finish_broke_off() -> None:
    body = BODIES[TEXT]
    cut = body.rindex(b"data: ")
    decoder = gemini.StreamDecoder()
    assert decoder.feed(body[:cut])
    with pytest.raises(NetworkError, match="before it finished"):
        decoder.close()


def test_an_error_in_the_stream_after_text() -> None:
    decoder = gemini.StreamDecoder()
    body = _sse(
        _candidate([{"text": "Hel"}]),
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    )
    assert decoder.feed(body) == [TextEvent(text="Hel")]
    with pytest.raises(UpstreamError) as caught:
        decoder.close()
    assert caught.value.status == 503 and caught.value.retryable


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            },
            AuthError,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "The input token count (1200000) exceeds the maximum number of "
                    "tokens allowed (1048576).",
                    "status": "INVALID_ARGUMENT",
                }
            },
            ContextTooLongError,
        ),
        (
            400,
            {"error": {"code": 400, "message": "bad", "status": "FAILED_PRECONDITION"}},
            InvalidRequestError,
        ),
        (
            503,
            {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}},
            UpstreamError,
        ),
    ],
)
def test_error_bodies(status: int, body: dict[str, Any], expected: type[ModelportError]) -> None:
    error = gemini.error_from_response(status, json.dumps(body).encode(), {})
    assert type(error) is expected
    assert error.status == status
    if isinstance(error, ContextTooLongError):
        assert (error.limit, error.actual) == (1048576, 1200000)
    if isinstance(error, AuthError):
        assert "check the API key" in error.message


def test_an_error_body_that_is_not_googles() -> None:
    error = gemini.error_from_response(502, b"<html>Bad Gateway</html>", {})
    assert isinstance(error, UpstreamError)
    assert error.message == "Gemini: HTTP 502: <html>Bad Gateway</html>"


def test_model_list() -> None:
    body = {
        "models": [
            {
                "name": "models/gemini-2.5-flash",
                "displayName": "Gemini 2.5 Flash",
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": [
                    "generateContent",
                    "countTokens",
                    "createCachedContent",
                    "batchGenerateContent",
                ],
                "thinking": True,
            },
            {
                "name": "models/gemini-embedding-001",
                "displayName": "Gemini Embedding 001",
                "inputTokenLimit": 2048,
                "outputTokenLimit": 1,
                "supportedGenerationMethods": ["embedContent", "countTextTokens"],
            },
            {
                "name": "models/imagen-4.0-generate-001",
                "supportedGenerationMethods": ["predict"],
            },
        ]
    }
    models = gemini.decode_models(json.dumps(body).encode(), "gemini")
    assert [(m.id, m.address, m.name) for m in models] == [
        ("gemini-2.5-flash", "gemini/gemini-2.5-flash", "Gemini 2.5 Flash"),
        ("gemini-embedding-001", "gemini/gemini-embedding-001", "Gemini Embedding 001"),
    ]
    assert (models[0].context_window, models[0].max_output_tokens) == (1048576, 65536)
    assert models[0].capabilities == Capabilities(
        tools=True, vision=True, reasoning=True, prompt_cache=True, streaming=True
    )
    assert models[1].capabilities == Capabilities(
        tools=False, vision=False, reasoning=False, prompt_cache=False, streaming=False
    )


# --- any split, any garbage ---------------------------------------------------------


def run(pieces: list[bytes]) -> tuple[list[StreamEvent], str | None]:
    decoder = gemini.StreamDecoder()
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


@pytest.mark.parametrize("relative", sorted(BODIES))
def test_any_split_gives_the_same_events(relative: str) -> None:
    body = BODIES[relative]
    whole = run([body])
    assert whole[0] and whole[1] is None

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=40))
    def check(cuts: list[int]) -> None:
        assert run(split(body, cuts)) == whole

    check()


def test_byte_by_byte_gives_the_same_events() -> None:
    body = BODIES[PARTIAL]
    assert run([body[i : i + 1] for i in range(len(body))]) == run([body])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_are_parse_errors_or_a_broken_stream(pieces: list[bytes]) -> None:
    decoder = gemini.StreamDecoder()
    try:
        for piece in pieces:
            decoder.feed(piece)
        decoder.close()
    except (ParseError, NetworkError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_a_garbage_body_is_a_parse_error(body: bytes) -> None:
    try:
        gemini.decode_response(body)
    except ParseError:
        pass


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_PIECE = st.fixed_dictionaries(
    {},
    optional={
        "jsonPath": st.one_of(
            st.sampled_from(["$.a", "$.a.b", "$.l[0]", "$.l[1]", "$", "x"]), _JSON
        ),
        "stringValue": st.one_of(st.text(max_size=4), _JSON),
        "numberValue": st.one_of(st.integers(), _JSON),
        "willContinue": st.one_of(st.booleans(), _JSON),
    },
)
_PART = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.text(max_size=5), _JSON),
        "thought": st.one_of(st.booleans(), _JSON),
        "thoughtSignature": st.one_of(st.text(max_size=5), _JSON),
        "functionCall": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.sampled_from(["f", ""]), _JSON),
                    "args": _JSON,
                    "partialArgs": st.one_of(st.lists(_PIECE, max_size=3), _JSON),
                    "willContinue": st.one_of(st.booleans(), _JSON),
                },
            ),
            _JSON,
        ),
    },
)
_CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "candidates": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "content": st.fixed_dictionaries(
                            {}, optional={"parts": st.one_of(st.lists(_PART, max_size=3), _JSON)}
                        ),
                        "finishReason": st.one_of(
                            st.sampled_from(["STOP", "SAFETY", "MALFORMED_FUNCTION_CALL"]), _JSON
                        ),
                        "index": st.one_of(st.just(0), _JSON),
                    },
                ),
                max_size=2,
            ),
            _JSON,
        ),
        "usageMetadata": st.one_of(
            st.fixed_dictionaries({}, optional={"promptTokenCount": st.integers()}), _JSON
        ),
        "error": st.one_of(
            st.fixed_dictionaries({}, optional={"code": _JSON, "message": _JSON}), _JSON
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CHUNK, max_size=5))
def test_chunks_of_any_shape_raise_only_modelport_errors(objects: list[dict[str, Any]]) -> None:
    run([_sse(*objects)])
    try:
        gemini.decode_response(json.dumps(objects).encode())
    except ModelportError:
        pass
