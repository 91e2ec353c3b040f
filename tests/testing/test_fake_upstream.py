from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import httpx
import pytest

from modelport.errors import RateLimitError
from modelport.events import FinishEvent, TextEvent, UsageEvent
from modelport.providers import Provider
from modelport.testing import (
    FakeProvider,
    FakeReply,
    FakeUpstream,
    Reply,
    fixtures_dir,
)
from modelport.types import ChatRequest, Message, ModelInfo
from tests._fixtures import FIXTURES, fixture_bytes

STREAM_FIXTURE = "anthropic/messages-stream-text.sse"


def _raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes and read until the server closes, to see the exact framing."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    return bytes(received)


def _chunk_sizes(response: bytes) -> tuple[bytes, list[int], bool]:
    """(head, sizes of the chunked-encoding frames, whether the terminating frame came)."""
    head, _, rest = response.partition(b"\r\n\r\n")
    sizes = []
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return head, sizes, True
        sizes.append(size)
        rest = rest[size + 2 :]
    return head, sizes, False


def _post(path: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n"
    return (head + "\r\n").encode()


def test_fixtures_dir_defaults_to_shared_folder_and_honours_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fixtures_dir() == FIXTURES
    assert (fixtures_dir() / STREAM_FIXTURE).is_file()
    monkeypatch.setenv("MODELPORT_FIXTURES", "/somewhere/else")
    assert str(fixtures_dir()) == "/somewhere/else"


def test_reply_fixture_sets_body_and_content_type_by_extension() -> None:
    assert Reply.fixture(STREAM_FIXTURE).content_type == "text/event-stream"
    assert Reply.fixture(STREAM_FIXTURE).body == fixture_bytes(STREAM_FIXTURE)
    assert Reply.fixture("ollama/api-chat-stream.ndjson").content_type == "application/x-ndjson"
    assert Reply.fixture("anthropic/message-text.json").content_type == "application/json"
    assert Reply.fixture("anthropic/message-text.json", status=201).status == 201


def test_reply_pieces_cover_the_body_exactly() -> None:
    body = bytes(range(256)) * 4
    assert Reply(body=body).pieces() == [body]
    assert [len(p) for p in Reply(body=body[:10], chunks=[3, 3]).pieces()] == [3, 3, 4]
    randomly = Reply(body=body, chunks="random", split_seed=3).pieces()
    assert b"".join(randomly) == body and len(randomly) > 5
    assert randomly == Reply(body=body, chunks="random", split_seed=3).pieces()
    assert randomly != Reply(body=body, chunks="random", split_seed=4).pieces()


def test_routes_serve_replies_in_order_and_repeat_the_last(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/x", Reply(body=b"one"), Reply(status=201, body=b"two"))
    with httpx.Client(base_url=upstream.url) as client:
        answers = [client.post("/v1/x") for _ in range(3)]
        get = client.get("/v1/x")
    assert [(r.status_code, r.content) for r in answers] == [
        (200, b"one"),
        (201, b"two"),
        (201, b"two"),
    ]
    assert get.status_code == 404
    assert get.json() == {"error": {"message": "no route for GET /v1/x"}}


def test_route_requires_a_reply(upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError):
        upstream.route("GET", "/x")


def test_requests_are_recorded(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/chat", Reply.json({"ok": True}, headers={"x-extra": "1"}))
    with httpx.Client() as client:
        response = client.post(
            f"{upstream.url}/v1/chat?beta=true&x=1",
            json={"model": "m", "stream": False},
            headers={"Authorization": "Bearer k", "X-Mixed-Case": "v"},
        )
    assert response.json() == {"ok": True}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-extra"] == "1"
    [request] = upstream.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/chat", "beta=true&x=1")
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["x-mixed-case"] == "v"
    assert request.json() == {"model": "m", "stream": False}
    assert request.body == b'{"model":"m","stream":false}'


def test_chunked_request_bodies_are_reassembled(upstream: FakeUpstream) -> None:
    upstream.route("PUT", "/up", Reply(body=b"ok"))

    def parts() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    with httpx.Client() as client:
        assert client.put(f"{upstream.url}/up", content=parts()).content == b"ok"
    assert upstream.requests[0].headers["transfer-encoding"] == "chunked"
    assert upstream.requests[0].body == b"hello world"


def test_whole_body_uses_content_length(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/p", Reply(body=b"abcdef"))
    response = _raw_exchange(upstream.url, _post("/p"))
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 6\r\n" in response
    assert response.endswith(b"\r\n\r\nabcdef")


def test_chunks_are_written_as_separate_frames(upstream: FakeUpstream) -> None:
    body = fixture_bytes(STREAM_FIXTURE)
    upstream.route("POST", "/given", Reply(body=body, chunks=[1, 5, 100]))
    upstream.route("POST", "/random", Reply(body=body, chunks="random", split_seed=11))

    head, sizes, complete = _chunk_sizes(_raw_exchange(upstream.url, _post("/given")))
    assert b"transfer-encoding: chunked" in head
    assert sizes == [1, 5, 100, len(body) - 106] and complete

    _head, sizes, complete = _chunk_sizes(_raw_exchange(upstream.url, _post("/random")))
    expected = Reply(body=body, chunks="random", split_seed=11).pieces()
    assert sizes == [len(p) for p in expected] and complete


async def test_client_sees_the_split_with_chunk_delay(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/s", Reply(body=b"aaabbbccc", chunks=[3, 3], chunk_delay=0.05))
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", f"{upstream.url}/s") as response:
            seen = [piece async for piece in response.aiter_raw()]
    assert seen == [b"aaa", b"bbb", b"ccc"]


def test_drop_after_closes_without_the_terminating_chunk(upstream: FakeUpstream) -> None:
    body = b"x" * 100
    upstream.route("POST", "/drop", Reply(body=body, chunks=[30], drop_after=45))
    _head, sizes, complete = _chunk_sizes(_raw_exchange(upstream.url, _post("/drop")))
    assert sizes == [30, 15] and not complete

    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(f"{upstream.url}/drop")


def test_drop_after_without_chunks_still_drops(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/drop", Reply(body=b"y" * 50, drop_after=10))
    _head, sizes, complete = _chunk_sizes(_raw_exchange(upstream.url, _post("/drop")))
    assert sizes == [10] and not complete


def test_delay_holds_back_the_status_line(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/slow", Reply(body=b"late", delay=0.3))
    started = time.monotonic()
    with httpx.Client() as client:
        assert client.get(f"{upstream.url}/slow").content == b"late"
    assert time.monotonic() - started >= 0.3


async def test_hang_never_answers_and_notices_the_client_leaving(
    upstream: FakeUpstream,
) -> None:
    upstream.route("POST", "/hang", Reply(hang=True))
    async with httpx.AsyncClient(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{upstream.url}/hang")
    [request] = upstream.requests
    assert await request.wait_closed(5)
    assert upstream.open_connections == 0


async def test_keep_alive_reuses_one_connection(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/k", Reply(body=b"whole"), Reply(body=b"streamed", chunks=[2]))
    async with httpx.AsyncClient() as client:
        for _ in range(4):
            response = await client.post(f"{upstream.url}/k", json={})
            assert response.status_code == 200
        assert upstream.open_connections == 1
    assert await upstream.requests[-1].wait_closed(5)
    assert len(upstream.requests) == 4


async def test_many_concurrent_clients(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/c", Reply.fixture(STREAM_FIXTURE, chunks="random", split_seed=1))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as client:
        responses = await asyncio.gather(*(client.post(f"{upstream.url}/c") for _ in range(40)))
    assert {r.content for r in responses} == {fixture_bytes(STREAM_FIXTURE)}


def test_a_subprocess_can_talk_to_it(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/v1/models", Reply.json({"data": [{"id": "m1"}]}))
    code = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1] + '/v1/models').read().decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, upstream.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(result.stdout) == {"data": [{"id": "m1"}]}


def test_stop_closes_open_connections_and_port() -> None:
    server = FakeUpstream().start()
    server.route("GET", "/h", Reply(hang=True))
    url = server.url
    with httpx.Client(timeout=5) as client:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /h HTTP/1.1\r\nhost: x\r\n\r\n")
            deadline = time.monotonic() + 5
            while not server.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop()
            assert sock.recv(10) == b""
        with pytest.raises(httpx.ConnectError):
            client.get(f"{url}/h")
    with pytest.raises(RuntimeError):
        _ = server.url
    server.stop()  # a second stop is harmless


async def test_async_context_manager() -> None:
    async with FakeUpstream() as server:
        server.route("GET", "/a", Reply(body=b"ok"))
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/a")).content == b"ok"


# --- FakeProvider -------------------------------------------------------------


def _request(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="fake-model", messages=[Message(role="user", content=text)])


async def test_fake_provider_is_a_provider_with_models() -> None:
    provider = FakeProvider(models=["a", ModelInfo(id="b", connection="fake", name="B")])
    assert isinstance(provider, Provider)
    models = await provider.list_models()
    assert [(m.id, m.connection) for m in models] == [("a", "fake"), ("b", "fake")]
    assert [m.id for m in await FakeProvider(connection="x").list_models()] == ["fake-model"]


async def test_fake_provider_serves_the_queue_and_records_history() -> None:
    events = [TextEvent(text="Hel"), "lo", UsageEvent(input_tokens=3, output_tokens=2)]
    provider = FakeProvider([*events, FinishEvent(reason="stop")], "second")
    first = [event async for event in provider.stream(_request("one"))]
    assert first == [
        TextEvent(text="Hel"),
        TextEvent(text="lo"),
        UsageEvent(input_tokens=3, output_tokens=2),
        FinishEvent(reason="stop"),
    ]
    second = await provider.complete(_request("two"))
    third = await provider.complete(_request("three"))
    assert (second.content, second.finish_reason) == ("second", "stop")
    assert third.content == "second"  # the last reply repeats
    assert [r.messages[0].text for r in provider.history] == ["one", "two", "three"]


async def test_fake_provider_default_reply_and_add_reply() -> None:
    provider = FakeProvider()
    response = await provider.complete(_request())
    assert response.content == "Hello from FakeProvider"
    assert response.usage.output_tokens == 4
    provider.add_reply("later")
    assert (await provider.complete(_request())).content == "later"


async def test_fake_provider_raises_scripted_errors() -> None:
    provider = FakeProvider(
        RateLimitError("slow down", retry_after=2),
        FakeReply(events=["partial"], error=RateLimitError("mid-stream")),
    )
    stream = provider.stream(_request())
    with pytest.raises(RateLimitError, match="slow down"):
        await anext(stream)
    received = []
    with pytest.raises(RateLimitError, match="mid-stream"):
        async for event in provider.stream(_request()):
            received.append(event)
    assert received == [TextEvent(text="partial")]


async def test_fake_provider_counts_streams_closed_early() -> None:
    provider = FakeProvider(["a", "b", "c"], event_delay=0.01)
    stream = provider.stream(_request())
    assert await anext(stream) == TextEvent(text="a")
    await stream.aclose()
    assert provider.cancelled == 1
    await provider.aclose()
    assert provider.closed


def test_expect_100_continue_is_answered(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/e", Reply(body=b"done"))
    host, port = upstream.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n"
            b"connection: close\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    assert received.endswith(b"\r\n\r\ndone")
    assert upstream.requests[0].body == b"body"


def test_a_stopped_upstream_can_start_again() -> None:
    server = FakeUpstream()
    server.route("GET", "/a", Reply(body=b"ok"))
    for _ in range(2):
        with server, httpx.Client() as client:
            assert client.get(f"{server.url}/a").content == b"ok"
    assert len(server.requests) == 2


def test_a_connection_that_arrives_as_it_stops_is_closed_not_leaked() -> None:
    # Accepted in the stop's own turn, its setup used to find the server closed: asyncio
    # dropped it with its socket open, and the ResourceWarning at the next garbage
    # collection failed an unrelated test (a UI test, in a run under load). Unfixed, most
    # of these rounds leaked.
    for _ in range(30):
        upstream = FakeUpstream().start()
        with socket.create_connection(("127.0.0.1", upstream.port)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                upstream.stop()
                gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == []


def test_the_split_modules_keep_their_import_paths() -> None:
    import modelport.config
    import modelport.config._write
    import modelport.testing
    import modelport.testing._fake_upstream

    for name in ("FakeUpstream", "Reply", "RecordedRequest", "fixtures_dir"):
        assert getattr(modelport.testing, name) is getattr(modelport.testing._fake_upstream, name)
    for name in ("edit_config", "get_value", "set_value", "set_connection", "set_default_model"):
        assert getattr(modelport.config, name) is getattr(modelport.config._write, name)
    assert set(modelport.testing.__all__) >= {"FakeProvider", "FakeUpstream", "Reply"}


def test_it_counts_the_requests_it_is_answering() -> None:
    import concurrent.futures
    import urllib.request

    with FakeUpstream() as upstream:
        upstream.route("GET", "/slow", Reply(body=b"ok", delay=0.3))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(lambda _i: opener.open(f"{upstream.url}/slow").read(), range(4))
            )
        assert answers == [b"ok"] * 4
        assert upstream.peak_in_flight == 4
        assert upstream.in_flight == 0
        upstream.reset_peak()
        assert upstream.peak_in_flight == 0
