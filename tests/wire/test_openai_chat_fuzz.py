"""Properties of the client decoder: any split, any garbage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.errors import ModelportError, NetworkError, ParseError
from modelport.events import StreamEvent
from modelport.wire.openai_chat import StreamDecoder, decode_completion, decode_response
from tests._fixtures import FIXTURES, fixture_bytes

STREAM_FIXTURES = sorted(
    str(path.relative_to(FIXTURES))
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible")
    for path in (FIXTURES / folder).glob("*.sse")
    if not path.name.startswith("responses-")
)


def _jsonl_as_sse(relative: str) -> bytes:
    lines = [line for line in fixture_bytes(relative).splitlines() if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


BODIES = {relative: fixture_bytes(relative) for relative in STREAM_FIXTURES}
BODIES["deepseek/chat-stream-tool-call-reasoning.jsonl"] = _jsonl_as_sse(
    "deepseek/chat-stream-tool-call-reasoning.jsonl"
)

Outcome = tuple[list[StreamEvent], str | None]


def run(pieces: list[bytes]) -> Outcome:
    """The events and, if it failed, the error (class and message) a split feed produces."""
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


def test_every_stream_fixture_is_split_tested() -> None:
    assert len(BODIES) == 19  # 18 .sse files and the DeepSeek .jsonl
    assert "openrouter/chat-stream-midstream-error.sse" in BODIES


@pytest.mark.parametrize("relative", sorted(BODIES))
def test_any_split_gives_the_same_events(relative: str) -> None:
    body = BODIES[relative]
    whole = run([body])
    assert whole[0], "the fixture must decode to something"

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=40))
    def check(cuts: list[int]) -> None:
        assert run(split(body, cuts)) == whole

    check()


@pytest.mark.parametrize(
    "relative",
    ["openai/chat-stream-parallel-tool-calls.sse", "openrouter/chat-stream-midstream-error.sse"],
)
def test_byte_by_byte_gives_the_same_events(relative: str) -> None:
    body = BODIES[relative]
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


_TOKENS = [
    b"data: ",
    b"data:",
    b"event: error\n",
    b"\n",
    b"\r\n",
    b"\r",
    b": keepalive\n",
    b"[DONE]",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"choices"',
    b'"delta"',
    b'"content"',
    b'"tool_calls"',
    b'"index"',
    b'"error"',
    b'"usage"',
    b"0",
    b"null",
    b'"x"',
    b"\xff",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_token_soup_raises_only_modelport_errors(tokens: list[bytes]) -> None:
    run([b"".join(tokens)])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, _JSON)


_FUNCTION = st.fixed_dictionaries(
    {}, optional={"name": _maybe(st.sampled_from(["f", "g", ""])), "arguments": _maybe(st.text())}
)
_TOOL_CALL = st.fixed_dictionaries(
    {},
    optional={
        "index": _maybe(st.integers(0, 3)),
        "id": _maybe(st.sampled_from(["a", "b", ""])),
        "function": _maybe(_FUNCTION),
    },
)
_DELTA = st.fixed_dictionaries(
    {},
    optional={
        "content": _maybe(st.text(max_size=5)),
        "reasoning_content": _maybe(st.text(max_size=5)),
        "reasoning": _maybe(st.text(max_size=5)),
        "refusal": _maybe(st.text(max_size=5)),
        "tool_calls": _maybe(st.lists(_TOOL_CALL, max_size=3)),
        "function_call": _maybe(_FUNCTION),
        "reasoning_details": _maybe(st.lists(st.dictionaries(st.text(max_size=9), _JSON))),
    },
)
_CHOICE = st.fixed_dictionaries(
    {},
    optional={
        "index": _maybe(st.integers(0, 2)),
        "delta": _maybe(_DELTA),
        "message": _maybe(_DELTA),
        "finish_reason": _maybe(st.sampled_from(["stop", "tool_calls", "length", "weird"])),
    },
)
_USAGE = st.dictionaries(
    st.sampled_from(
        [
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "cost",
            "prompt_cache_hit_tokens",
        ]
    ),
    _maybe(st.integers(0, 100)),
)
_CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "choices": _maybe(st.lists(_CHOICE, max_size=3)),
        "usage": _maybe(_USAGE),
        "error": _maybe(st.fixed_dictionaries({}, optional={"code": _JSON, "message": _JSON})),
        "x_groq": _JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CHUNK | _JSON, max_size=6))
def test_chunk_shaped_garbage_raises_only_modelport_errors(chunks: list[Any]) -> None:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    run([body])
    decoder = StreamDecoder()
    try:
        for value in chunks:
            decoder.feed_json(value)
        decoder.end()
    except ModelportError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {}, optional={"choices": _maybe(st.lists(_CHOICE, max_size=2)), "usage": _maybe(_USAGE)}
    )
    | _JSON
)
def test_completion_shaped_garbage_raises_only_modelport_errors(value: Any) -> None:
    for decode in (
        lambda: decode_response(json.dumps(value).encode()),
        lambda: decode_completion(value),
    ):
        try:
            decode()
        except ModelportError:
            pass
