"""Streaming discipline: no buffering, cancellation, keep-alives, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from modelport.config import Config
from modelport.events import FinishEvent, StreamEvent, TextEvent
from modelport.providers import BaseProvider, ConnectionSettings
from modelport.routing import Router
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest
from tests.server._sse import openai_delta_text, sse_events
from tests.server.conftest import Gateway, GatewayFactory, upstream_config

USER = [{"role": "user", "content": "hi"}]
TEXT_FIXTURE = "openai/chat-stream-text-include-usage.sse"
STREAM_BODY = {"model": "oai/gpt-4o", "messages": USER, "stream": True}


def _slow_reply(chunk_delay: float) -> Reply:
    # One SSE event per write (the fixture's events are < 400 bytes apart).
    return Reply.fixture(TEXT_FIXTURE, chunks=[400] * 100, chunk_delay=chunk_delay)


def test_each_event_is_forwarded_as_it_arrives(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/chat/completions", _slow_reply(0.05))
    started = time.monotonic()
    arrivals = []
    for chunk in gateway.openai().chat.completions.create(
        model="oai/gpt-4o",
        messages=USER,
        stream=True,  # type: ignore[arg-type]
    ):
        ChatCompletionChunk.model_validate(chunk.model_dump())
        arrivals.append(time.monotonic() - started)
    # Forwarded as they come, not gathered: they arrive over about the time the upstream
    # took to write them (21 pauses of 50 ms), however long the call took to begin (on a
    # loaded machine 0.9 s, which failed "the first before a third of the whole").
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals
    assert len({round(t, 2) for t in arrivals}) > 5


OpenStream = Callable[[Gateway, dict[str, object]], socket.socket]


@pytest.fixture
def open_stream() -> Iterator[OpenStream]:
    """``open_stream(gateway, body)``: the request sent over a raw socket (so the test
    controls the close); whatever a failed test left open is closed after it, before a
    later test's garbage collection could fail that test on the leak."""
    with contextlib.ExitStack() as sockets:
        yield lambda gateway, body: sockets.enter_context(_open_stream(gateway, body))


def _open_stream(gateway: Gateway, body: dict[str, object]) -> socket.socket:
    import json

    payload = json.dumps(body).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    return sock


def test_client_disconnect_mid_stream_closes_the_upstream(
    gateway: Gateway, upstream: FakeUpstream, open_stream: OpenStream
) -> None:
    upstream.route("POST", "/v1/chat/completions", _slow_reply(0.5))
    sock = open_stream(gateway, STREAM_BODY)
    received = sock.recv(65536)
    assert b"200 OK" in received
    while b"data: " not in received:
        received += sock.recv(65536)
    request = upstream.requests[-1]
    assert not request.closed.is_set()
    closed_at = time.monotonic()
    sock.close()
    assert request.closed.wait(timeout=2.0), "the upstream request was not cancelled"
    assert time.monotonic() - closed_at < 1.0
    _wait_for(lambda: _metric(gateway, "modelport_gateway_client_disconnects_total") == 1.0)


def test_client_disconnect_before_the_first_token_closes_the_upstream(
    gateway: Gateway, upstream: FakeUpstream, open_stream: OpenStream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply(hang=True))
    sock = open_stream(gateway, STREAM_BODY)
    _wait_for(lambda: len(upstream.requests) == 1)
    request = upstream.requests[-1]
    time.sleep(0.05)
    sock.close()
    assert request.closed.wait(timeout=2.0), "the upstream request was not cancelled"


@pytest.mark.parametrize("http", ["gateway", "httptools"])
def test_client_disconnect_cancels_a_non_streaming_call(
    http: str,
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
    open_stream: OpenStream,
) -> None:
    # Our protocol tells the handler (modelport.disconnect); under uvicorn's own, a
    # task per call waits for the disconnect.
    app = create_app(upstream_config(upstream), plugin_host=False, ledger=False)
    gateway = gateway_factory(app, **({} if http == "gateway" else {"http": http}))
    upstream.route("POST", "/v1/chat/completions", _slow_reply(0.5))
    sock = open_stream(gateway, {**STREAM_BODY, "stream": False})
    _wait_for(lambda: len(upstream.requests) == 1)
    request = upstream.requests[-1]
    time.sleep(0.1)
    sock.close()
    assert request.closed.wait(timeout=2.0), "the upstream request was not cancelled"
    _wait_for(lambda: _metric(gateway, "modelport_gateway_client_disconnects_total") == 1.0)


def test_keepalive_comment_while_the_upstream_is_silent(
    make_gateway: object, upstream: FakeUpstream
) -> None:
    gateway: Gateway = make_gateway(keepalive_interval=0.05)  # type: ignore[operator]
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture(TEXT_FIXTURE, delay=0.4, chunks=[400] * 100, chunk_delay=0.01),
    )
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", json=STREAM_BODY, timeout=10)
    assert raw.status_code == 200
    assert raw.text.startswith(": keep-alive\n\n")
    assert raw.text.count(": keep-alive") >= 3
    assert sse_events(raw.content)[-1].data == "[DONE]"
    # The SDK skips the comments.
    stream = gateway.openai().chat.completions.create(
        model="oai/gpt-4o",
        messages=USER,
        stream=True,  # type: ignore[arg-type]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == openai_delta_text(TEXT_FIXTURE)


@pytest.mark.parametrize("passthrough", ["off", "on"])
def test_anthropic_keepalive_is_a_ping_after_message_start(
    make_gateway: object, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, passthrough: str
) -> None:
    monkeypatch.setenv("MODELPORT_PASSTHROUGH", passthrough)
    gateway: Gateway = make_gateway(keepalive_interval=0.05)  # type: ignore[operator]
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.fixture("anthropic/messages-stream-text.sse", delay=0.3, chunks=[50] * 400),
    )
    raw = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "ant/claude", "max_tokens": 10, "messages": USER, "stream": True},
        timeout=10,
    )
    kinds = [e.event for e in sse_events(raw.content)]
    assert kinds[0] == "message_start"
    if passthrough == "off":
        assert kinds[1] == "ping"
    else:
        # The upstream's own message_start is not here yet: an SSE comment, which every
        # client skips (a ping before message_start makes the Anthropic SDKs raise).
        assert raw.content.startswith(b": keep-alive\n\n")
    assert kinds.count("message_start") == 1
    assert kinds[-1] == "message_stop"
    with gateway.anthropic().messages.stream(
        model="ant/claude",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    assert message.content[0].type == "text"


def test_an_error_after_a_keepalive_is_sent_in_band(
    make_gateway: object, upstream: FakeUpstream
) -> None:
    gateway: Gateway = make_gateway(keepalive_interval=0.05)  # type: ignore[operator]
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "bad key", "type": "x"}}, status=401, delay=0.3),
    )
    # The keep-alive went out first, so the status was 200 by then: the 401 can only
    # travel in band, as the error frame, and the stream never ends as if complete.
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", json=STREAM_BODY, timeout=10)
    assert raw.status_code == 200
    assert raw.text.startswith(": keep-alive\n\n")
    events = [e for e in sse_events(raw.content) if e.data]
    assert len(events) == 1 and "[DONE]" not in raw.text
    assert json.loads(events[0].data)["error"]["message"].startswith("bad key")
    # The SDK raises it from the stream, not as an HTTP status error.
    with pytest.raises(openai.APIError) as caught:
        list(
            gateway.openai().chat.completions.create(
                model="oai/gpt-4o",
                messages=USER,
                stream=True,  # type: ignore[arg-type]
            )
        )
    assert not isinstance(caught.value, openai.APIStatusError)
    assert "bad key" in caught.value.message


def test_graceful_shutdown_lets_a_stream_finish(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/chat/completions", _slow_reply(0.03))
    result: dict[str, object] = {}

    def consume() -> None:
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=STREAM_BODY, timeout=10)
        result["text"] = response.text

    thread = threading.Thread(target=consume)
    thread.start()
    _wait_for(lambda: len(upstream.requests) == 1)
    time.sleep(0.1)
    gateway.server.should_exit = True
    thread.join(timeout=10)
    assert str(result["text"]).endswith("data: [DONE]\n\n")
    gateway.thread.join(timeout=10)
    assert not gateway.thread.is_alive()


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _settled(read: Callable[[], int], *, quiet: float, timeout: float) -> int:
    """``read()`` once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"still changing after {timeout} s: {value}"
        time.sleep(0.05)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


def _metric(gateway: Gateway, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class _CountingProvider(BaseProvider):
    """Yields up to ``total`` 1 KiB text events, counting how many were pulled."""

    def __init__(self, total: int) -> None:
        super().__init__(ConnectionSettings(name="count", compat="count"))
        self.total = total
        self.pulled = 0
        self.closed = threading.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        try:
            for _ in range(self.total):
                self.pulled += 1
                yield TextEvent(text="x" * 1024)
            yield FinishEvent(reason="stop")
        finally:
            self.closed.set()


def test_a_client_that_stops_reading_stops_the_upstream(gateway_factory: GatewayFactory) -> None:
    provider = _CountingProvider(total=200_000)  # ~200 MB if nothing pushed back
    router = Router(Config())
    router.register_provider("count", provider)
    gateway = gateway_factory(create_app(router=router, plugin_host=False, ledger=False))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        host, port = gateway.url.removeprefix("http://").split(":")
        sock.connect((host, int(port)))
        payload = (
            b'{"model": "count/m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
        )
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        _wait_for(lambda: provider.pulled > 0)
        # The socket buffers fill, then the gateway stops pulling; a loaded machine fills
        # them slowly, so wait for the count to hold still before judging it.
        stalled_at = _settled(lambda: provider.pulled, quiet=0.5, timeout=20)
        time.sleep(0.3)
        # The gateway waits for the socket to drain instead of buffering the stream.
        assert provider.pulled == stalled_at
        assert provider.pulled < provider.total // 10, provider.pulled
    assert provider.closed.wait(timeout=3), "the upstream stream was not closed"


async def test_events_of_one_upstream_read_go_out_in_one_write() -> None:
    from modelport._bursts import more_ready
    from modelport.server._streaming import EventStreamResponse
    from modelport.wire import openai_chat_server

    async def two_reads() -> AsyncIterator[StreamEvent]:
        for read in (["a", "b", "c"], ["d", "e"]):
            for position, text in enumerate(read):
                more_ready.set(position < len(read) - 1)
                yield TextEvent(text=text)
        yield FinishEvent(reason="stop")

    def encoder() -> openai_chat_server.StreamEncoder:
        return openai_chat_server.StreamEncoder(model="m", id="chatcmpl-1", created=1)

    writes: list[bytes] = []

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            writes.append(message["body"])  # type: ignore[arg-type]

    async def receive() -> dict[str, object]:
        await asyncio.Event().wait()  # the client never leaves
        return {}

    response = EventStreamResponse(
        two_reads(), encoder(), error_response=openai_chat_server.encode_error, keepalive=b""
    )
    await response({"type": "http"}, receive, send)  # type: ignore[arg-type]
    reference = encoder()
    frames = [reference.encode(TextEvent(text=t)) for t in "abcde"]
    finish = reference.encode(FinishEvent(reason="stop"))
    # The finish event came on its own, so it went on its own; then the closing frames.
    assert writes == [b"".join(frames[:3]), b"".join(frames[3:]), finish, reference.finish()]
