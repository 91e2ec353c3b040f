"""The same-format passthrough against the decode-encode path, on every recorded stream.

For each recorded OpenAI-compatible and Anthropic answer, split at any byte
boundaries, the relay (:mod:`modelport.wire.relay`) and the decode-encode path
(the provider's decoder, then the server's encoder) must give a client the same
content, reasoning, tool calls, finish and usage (read back with the client
side's own decoder), fail with the same error where the recording ends in one,
and give the ledger the same usage.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import ModelportError
from modelport.events import StreamEvent, TextEvent, UsageEvent
from modelport.types import ChatResponse
from modelport.wire import (
    anthropic_messages,
    anthropic_messages_server,
    openai_chat,
    openai_chat_server,
)
from modelport.wire.relay import AnthropicRelay, OpenAIRelay
from tests._fixtures import FIXTURES

ADDRESS = "conn/some-model"
RID = "chatcmpl-gateway0000"

#: Recorded answers of several choices: the passthrough never takes them (n > 1).
_NOT_RELAYED = {"openai/chat-stream-n3-multiple-choices.sse"}


def _names(*patterns: str) -> list[str]:
    found = sorted(
        str(path.relative_to(FIXTURES))
        for pattern in patterns
        for path in FIXTURES.glob(pattern)
        if not path.name.endswith(".request.json")
    )
    return [name for name in found if name not in _NOT_RELAYED]


OPENAI_STREAMS = _names(
    "openai/chat-stream-*.sse",
    "openai-compatible/*.sse",
    "openrouter/chat-stream-*.sse",
    "deepseek/chat-stream-*.sse",
)
OPENAI_ANSWERS = _names(
    "openai/chat-completion-*.json", "deepseek/chat-completion-*.json", "vllm/chat-completion.json"
)
ANTHROPIC_STREAMS = _names("anthropic/messages-stream-*.sse")
ANTHROPIC_ANSWERS = _names("anthropic/message-*.json")


def test_every_recorded_answer_is_covered() -> None:
    assert len(OPENAI_STREAMS) >= 15 and len(ANTHROPIC_STREAMS) >= 10
    assert len(OPENAI_ANSWERS) >= 7 and len(ANTHROPIC_ANSWERS) >= 6


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


def _relay(
    relay: Any, pieces: list[bytes], encoder: Any
) -> tuple[bytes, list[StreamEvent], Exception | None]:
    """What the client gets, what the ledger sees, and the error that ended it.

    A failure is written as the gateway writes it: the API's own error frame.
    """
    out: list[bytes] = []
    events: list[StreamEvent] = []
    try:
        for piece in pieces:
            for item in relay.feed(piece):
                (out if type(item) is bytes else events).append(item)  # type: ignore[arg-type]
        for item in relay.close():
            (out if type(item) is bytes else events).append(item)  # type: ignore[arg-type]
    except ModelportError as exc:
        return b"".join(out) + encoder.error(exc), events, exc
    return b"".join(out), events, None


def _canonical(
    decoder: Any, encoder: Any, pieces: list[bytes]
) -> tuple[bytes, list[StreamEvent], Exception | None]:
    out = [encoder.start()]
    events: list[StreamEvent] = []
    try:
        for piece in pieces:
            for event in decoder.feed(piece):
                events.append(event)
                out.append(encoder.encode(event))
        for event in decoder.close():
            events.append(event)
            out.append(encoder.encode(event))
    except ModelportError as exc:
        out.append(encoder.error(exc))
        return b"".join(out), events, exc
    out.append(encoder.finish())
    return b"".join(out), events, None


def _as_client(decoder: Any, body: bytes) -> tuple[ChatResponse, Exception | None]:
    """What a client reads from ``body`` (decoded with the API's own decoder)."""
    events: list[StreamEvent] = []
    try:
        events.extend(decoder.feed(body))
        events.extend(decoder.close())
    except ModelportError as exc:
        return aggregate(events, model=ADDRESS), exc
    return aggregate(events, model=ADDRESS), None


def _same_answer(relayed: ChatResponse, canonical: ChatResponse) -> None:
    if relayed.finish_reason == "refusal" and canonical.finish_reason == "stop":
        # The one difference, and the passthrough's is the upstream's own: the OpenAI
        # encoder has no refusal field to write, so the decode-encode path sends a refusal
        # as content with finish_reason "stop"; relayed, the `refusal` field reaches the client.
        relayed = msgspec.structs.replace(relayed, finish_reason="stop")
    assert relayed.content == canonical.content
    assert relayed.reasoning == canonical.reasoning
    assert [(c.id, c.name, c.arguments) for c in relayed.tool_calls] == [
        (c.id, c.name, c.arguments) for c in canonical.tool_calls
    ]
    assert relayed.finish_reason == canonical.finish_reason
    assert relayed.usage == canonical.usage


def _ledger_usage(events: list[StreamEvent]) -> UsageEvent | None:
    found = [e for e in events if type(e) is UsageEvent]
    return found[-1] if found else None


def _same_failure(relayed: Exception | None, canonical: Exception | None) -> None:
    assert type(relayed) is type(canonical)
    if canonical is not None:
        assert str(relayed) == str(canonical)


_CUTS = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)


@pytest.mark.parametrize("name", OPENAI_STREAMS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=_CUTS, include_usage=st.booleans())
def test_openai_stream_relayed_as_decoded(name: str, cuts: list[int], include_usage: bool) -> None:
    pieces = _split((FIXTURES / name).read_bytes(), cuts)
    relay = OpenAIRelay(model=ADDRESS, response_id=RID, include_usage=include_usage)
    encoder = openai_chat_server.StreamEncoder(model=ADDRESS, id=RID, include_usage=include_usage)
    relayed, seen, relay_error = _relay(relay, pieces, encoder)
    encoder = openai_chat_server.StreamEncoder(model=ADDRESS, id=RID, include_usage=include_usage)
    written, decoded, error = _canonical(openai_chat.StreamDecoder(), encoder, pieces)
    _same_failure(relay_error, error)
    assert _ledger_usage(seen) == _ledger_usage(decoded)
    client, client_error = _as_client(openai_chat.StreamDecoder(), relayed)
    expected, expected_error = _as_client(openai_chat.StreamDecoder(), written)
    _same_failure(client_error, expected_error)
    _same_answer(client, expected)
    if relayed and error is None:
        # Every chunk names the address the client asked for and the gateway's id.
        assert relayed.count(b'"model":"conn/some-model"') == relayed.count(b'"object"')
        assert relayed.count(RID.encode()) == relayed.count(b'"object"')
        if not include_usage:
            assert b'"usage":{' not in relayed


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=_CUTS)
def test_anthropic_stream_relayed_as_decoded(name: str, cuts: list[int]) -> None:
    pieces = _split((FIXTURES / name).read_bytes(), cuts)
    encoder = anthropic_messages_server.StreamEncoder(model=ADDRESS, id=RID)
    relay = AnthropicRelay(model=ADDRESS, response_id=RID)
    relayed, seen, relay_error = _relay(relay, pieces, encoder)
    written, decoded, error = _canonical(anthropic_messages.StreamDecoder(), encoder, pieces)
    _same_failure(relay_error, error)
    assert _ledger_usage(seen) == _ledger_usage(decoded)
    client, client_error = _as_client(anthropic_messages.StreamDecoder(), relayed)
    expected, expected_error = _as_client(anthropic_messages.StreamDecoder(), written)
    _same_failure(client_error, expected_error)
    _same_answer(client, expected)
    start = anthropic_messages.StreamDecoder()
    start.feed(relayed)
    assert (start.id, start.model) == (RID, ADDRESS)


@pytest.mark.parametrize("name", OPENAI_ANSWERS)
def test_openai_answer_relayed_as_decoded(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    items = OpenAIRelay(model=ADDRESS, response_id=RID, include_usage=False).answer(body)
    relayed = items[-1]
    assert isinstance(relayed, bytes)
    events = openai_chat.decode_response(body)
    canonical = openai_chat_server.encode_response(aggregate(events, model=ADDRESS, id=RID))
    _same_answer(
        aggregate(openai_chat.decode_response(relayed), model=ADDRESS),
        aggregate(openai_chat.decode_response(canonical), model=ADDRESS),
    )
    assert _ledger_usage(items[:-1]) == _ledger_usage(events)  # type: ignore[arg-type]
    assert TextEvent(text="") in items or not any(isinstance(e, TextEvent) for e in events)
    assert f'"id":"{RID}"'.encode() in relayed and b'"model":"conn/some-model"' in relayed


@pytest.mark.parametrize("name", ANTHROPIC_ANSWERS)
def test_anthropic_answer_relayed_as_decoded(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    items = AnthropicRelay(model=ADDRESS, response_id=RID).answer(body)
    relayed = items[-1]
    assert isinstance(relayed, bytes)
    events = anthropic_messages.decode_response(body)
    canonical = anthropic_messages_server.encode_response(aggregate(events, model=ADDRESS, id=RID))
    _same_answer(
        aggregate(anthropic_messages.decode_response(relayed), model=ADDRESS),
        aggregate(anthropic_messages.decode_response(canonical), model=ADDRESS),
    )
    assert _ledger_usage(items[:-1]) == _ledger_usage(events)  # type: ignore[arg-type]
    assert f'"id":"{RID}"'.encode() in relayed and b'"model":"conn/some-model"' in relayed


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "model": "some-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


_CALL = {
    "tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a":1}'}}]
}


@pytest.mark.parametrize(
    ("chunks", "finish"),
    [
        # Ollama ends a turn that called tools with "stop"; the SDKs' users test for tool_calls.
        ([_chunk(_CALL), _chunk({}, "stop")], b'"finish_reason":"tool_calls"'),
        ([_chunk({"content": "hi"}), _chunk({}, "eos")], b'"finish_reason":"stop"'),
        ([_chunk({"content": "hi"}), _chunk({}, "max_tokens")], b'"finish_reason":"length"'),
    ],
)
def test_a_finish_reason_is_written_as_the_decode_encode_path_writes_it(
    chunks: list[bytes], finish: bytes
) -> None:
    body = b"".join(chunks) + b"data: [DONE]\n\n"
    encoder = openai_chat_server.StreamEncoder(model=ADDRESS, id=RID)
    relay = OpenAIRelay(model=ADDRESS, response_id=RID, include_usage=False)
    relayed, _, _ = _relay(relay, [body], encoder)
    written, _, _ = _canonical(openai_chat.StreamDecoder(), encoder, [body])
    assert finish in relayed and finish in written


@pytest.mark.parametrize("relay_class", [OpenAIRelay, AnthropicRelay])
@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=300), cuts=_CUTS)
def test_garbage_fails_with_a_modelport_error_never_a_traceback(
    relay_class: Any, garbage: bytes, cuts: list[int]
) -> None:
    options = {"include_usage": False} if relay_class is OpenAIRelay else {}
    relay = relay_class(model=ADDRESS, response_id=RID, **options)
    try:
        for piece in _split(garbage, cuts):
            relay.feed(piece)
        relay.close()
    except ModelportError:
        pass


@pytest.mark.parametrize(
    ("relay", "decoder"),
    [
        (OpenAIRelay(model=ADDRESS, response_id=RID, include_usage=False), openai_chat),
        (AnthropicRelay(model=ADDRESS, response_id=RID), anthropic_messages),
    ],
)
def test_a_stream_that_is_not_json_fails_as_the_decoder_says(relay: Any, decoder: Any) -> None:
    body = b"data: {oops\n\n"
    expected = _canonical(
        decoder.StreamDecoder(), openai_chat_server.StreamEncoder(model=ADDRESS), [body]
    )[2]
    relayed = _relay(relay, [body], openai_chat_server.StreamEncoder(model=ADDRESS))[2]
    assert expected is not None
    _same_failure(relayed, expected)
