from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.errors import ParseError
from modelport.wire._sse import SSEDecoder, SSEEvent, encode_sse
from tests._fixtures import FIXTURES


def _decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def test_data_lines_are_joined_and_fields_parsed() -> None:
    events = _decode([b"event: delta\nid: 7\ndata: a\ndata:b\n\n"])
    assert events == [SSEEvent(data="a\nb", event="delta", id="7")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = _decode([b": keep-alive\nretry: 10\nfoo: bar\ndata: x\n\n: bye\n\n"])
    assert events == [SSEEvent(data="x")]


def test_all_three_line_endings() -> None:
    assert _decode([b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]) == [
        SSEEvent(data="a"),
        SSEEvent(data="b"),
        SSEEvent(data="c"),
    ]


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    # A "\r" ending one chunk and a "\n" starting the next must not make an empty line.
    assert _decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(data="a\nb")]


def test_an_empty_read_keeps_a_pending_carriage_return() -> None:
    assert _decode([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [SSEEvent(data="a\nb")]


def test_event_without_data_is_not_dispatched() -> None:
    assert _decode([b"event: ping\n\n"]) == []


def test_unterminated_last_event_is_discarded() -> None:
    assert _decode([b"data: done\n\ndata: partial"]) == [SSEEvent(data="done")]


def test_bom_is_stripped_from_the_first_line_only() -> None:
    assert _decode([b"\xef\xbb\xbfdata: x\n\n"]) == [SSEEvent(data="x")]


def test_invalid_utf8_is_a_parse_error() -> None:
    decoder = SSEDecoder()
    try:
        decoder.feed(b"data: \xff\xfe\n\n")
    except ParseError as exc:
        assert "UTF-8" in str(exc)
    else:  # pragma: no cover - the assertion below documents the failure
        raise AssertionError("expected ParseError")


def test_encode_sse_round_trips() -> None:
    frame = encode_sse('{"a":1}', event="message_start") + encode_sse(b"[DONE]")
    assert _decode([frame]) == [
        SSEEvent(data='{"a":1}', event="message_start"),
        SSEEvent(data="[DONE]"),
    ]


_SSE_FIXTURES = sorted(FIXTURES.glob("*/*.sse"))


def test_every_sse_fixture_is_found() -> None:
    assert len(_SSE_FIXTURES) >= 20


@settings(max_examples=60, deadline=None)
@given(index=st.integers(min_value=0), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_split_of_a_fixture_gives_the_same_events(index: int, cuts: list[int]) -> None:
    data = _SSE_FIXTURES[index % len(_SSE_FIXTURES)].read_bytes()
    assert _decode(_split(data, cuts)) == _decode([data])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_gives_events_or_parse_error_never_another_exception(
    data: bytes, cuts: list[int]
) -> None:
    try:
        _decode(_split(data, cuts))
    except ParseError:
        pass
