"""A stream read through the real client, split into HTTP chunks and TCP reads at any byte,
gives the bytes and the events of the whole body; garbage gives a ``ParseError``.

The client takes whatever is buffered in one piece (``_http_direct.take_buffered``)
and waits through aiohttp's ``readany()`` otherwise: writes close together arrive
in one read (the first way), writes apart in several (the second).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.errors import ModelportError, ParseError
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings
from modelport.providers._http_client import HttpClient
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message
from modelport.wire.openai_chat import StreamDecoder
from tests._fixtures import FIXTURES, fixture_bytes

STREAMS = sorted(
    str(path.relative_to(FIXTURES))
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible")
    for path in (FIXTURES / folder).glob("*.sse")
    if not path.name.startswith("responses-")
)
REQUEST = ChatRequest(model="m", messages=[Message(role="user", content="hi")])
_paths = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def _whole(body: bytes) -> list[StreamEvent] | str:
    decoder = StreamDecoder()
    try:
        return [*decoder.feed(body), *decoder.close()]
    except ModelportError as exc:
        return f"{type(exc).__name__}: {exc.message}"


async def _through_the_client(server: FakeUpstream, reply: Reply) -> tuple[bytes, object]:
    path = f"/v{next(_paths)}"
    server.route("POST", f"{path}/chat/completions", reply)
    settings = ConnectionSettings(name="up", compat="openai", base_url=f"{server.url}{path}")
    client = HttpClient()
    provider = OpenAICompatProvider(settings, client=client)
    try:
        async with client.stream("POST", f"{server.url}{path}/chat/completions", json={}) as raw:
            pieces = [piece async for piece in raw.aiter_bytes()]
        events: list[StreamEvent] | str = []
        try:
            events = [event async for event in provider.stream(REQUEST)]
        except ModelportError as exc:
            events = f"{type(exc).__name__}: {exc.message}"
        return b"".join(pieces), events
    finally:
        await client.aclose()


def _sizes(body: bytes, cuts: list[int]) -> list[int]:
    bounds = [0, *sorted(set(cuts)), len(body)]
    return [b - a for a, b in itertools.pairwise(bounds) if b > a]


@given(
    relative=st.sampled_from(STREAMS),
    cuts=st.lists(st.integers(1, 4000), max_size=24),
    apart=st.sampled_from([0.0, 0.0, 0.002]),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_split_gives_the_bytes_and_events_of_the_whole(
    server: FakeUpstream, relative: str, cuts: list[int], apart: float
) -> None:
    body = fixture_bytes(relative)
    sizes = _sizes(body, [cut for cut in cuts if cut < len(body)])
    reply = Reply(body=body, content_type="text/event-stream", chunks=sizes, chunk_delay=apart)
    got, events = asyncio.run(_through_the_client(server, reply))
    assert got == body
    assert events == _whole(body)


@given(garbage=st.binary(min_size=1, max_size=200), cuts=st.lists(st.integers(1, 199), max_size=6))
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_garbage_in_any_split_is_a_parse_error_or_the_whole_s_outcome(
    server: FakeUpstream, garbage: bytes, cuts: list[int]
) -> None:
    body = b"data: " + garbage + b"\n\ndata: [DONE]\n\n"
    sizes = _sizes(body, [cut for cut in cuts if cut < len(body)])
    reply = Reply(body=body, content_type="text/event-stream", chunks=sizes)
    got, events = asyncio.run(_through_the_client(server, reply))
    assert got == body
    assert events == _whole(body)
    if isinstance(events, str):
        assert events.startswith(("ParseError", "UpstreamError", "NetworkError")), events


def test_json_that_is_not_a_chunk_is_a_parse_error(server: FakeUpstream) -> None:
    body = b'data: {"choices": 7}\n\ndata: [DONE]\n\n'
    reply = Reply(body=body, content_type="text/event-stream", chunks=[5, 9])
    _, events = asyncio.run(_through_the_client(server, reply))
    assert isinstance(events, str) and events.startswith(ParseError.__name__)


class _Protocol:
    """What a StreamReader asks of its protocol (aiohttp's interface, not ours)."""

    def __init__(self) -> None:
        self._reading_paused = False
        self.resumed = 0

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, *args: object, **kwargs: object) -> None:
        self.resumed += 1
        self._reading_paused = False


def _state(reader: object) -> tuple[object, ...]:
    return (
        reader._size,  # type: ignore[attr-defined]
        reader._cursor,  # type: ignore[attr-defined]
        list(reader._buffer),  # type: ignore[attr-defined]
        list(reader._http_chunk_splits or ()),  # type: ignore[attr-defined]
        reader._protocol._reading_paused,  # type: ignore[attr-defined]
    )


@given(
    rounds=st.lists(st.lists(st.binary(min_size=0, max_size=9), max_size=6), max_size=5),
    limit=st.sampled_from([4, 16, 2**16]),
)
def test_taking_what_is_buffered_leaves_the_reader_as_readany_does(
    rounds: list[list[bytes]], limit: int
) -> None:
    from aiohttp.streams import StreamReader

    from modelport.providers._http_direct import take_buffered

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ours = StreamReader(_Protocol(), limit, loop=loop)  # type: ignore[arg-type]
        theirs = StreamReader(_Protocol(), limit, loop=loop)  # type: ignore[arg-type]
        for pieces in rounds:
            for reader in (ours, theirs):
                for piece in pieces:  # one HTTP chunk each, as aiohttp's parser feeds them
                    reader.begin_http_chunk_receiving()
                    reader.feed_data(piece)
                    reader.end_http_chunk_receiving()
            if not theirs._buffer:
                continue
            assert take_buffered(ours) == await theirs.readany()
            assert _state(ours) == _state(theirs)

    asyncio.run(run())
