"""GatewayProtocol writes a response's head together with its first body bytes.

Driven directly over a transport that records each write (one write is one
``send`` system call on a real socket), since a real socket may deliver two
writes in one read anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from modelport.server._protocol import GatewayProtocol
from modelport.server._streaming import BODY_KEY, START_WITH_BODY_EXTENSION


class _Recorder:
    """A transport that keeps what is written."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _app(pause: float) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if pause:
            await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b"hello"})

    return app


async def _writes(app: Any, requests: int = 1) -> list[bytes]:
    config = uvicorn.Config(app, lifespan="off", log_config=None, server_header=False)
    config.load()
    protocol = GatewayProtocol.with_limits()(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = _Recorder()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for _ in range(requests):
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        for _ in range(50):
            await asyncio.sleep(0.005)
            if protocol.cycle is not None and protocol.cycle.response_complete:
                break
    await asyncio.sleep(0.01)
    protocol.connection_lost(None)
    return transport.writes


async def test_an_answer_goes_out_in_one_write() -> None:
    writes = await _writes(_app(0), requests=2)
    assert len(writes) == 2  # one per answer, on one keep-alive connection
    for write in writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n")
        assert write.endswith(b"\r\n\r\nhello")


async def test_a_head_sent_before_a_wait_goes_out_at_once() -> None:
    # An app that sends its head and then waits: the head is not held for the body.
    writes = await _writes(_app(0.05))
    assert len(writes) == 2
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n")
    assert writes[1] == b"hello"


# --- the response head (server/_response_head.py) ---------------------------------------------


def _app_with(headers: list[tuple[bytes, bytes]], body: bytes = b"hello") -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _head_of(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """The head GatewayProtocol writes for ``headers``, and whether it closed the connection."""
    # access_log=False, as `modelport serve` runs (uvicorn's own lines take uvicorn's path).
    config = uvicorn.Config(
        _app_with(headers), lifespan="off", log_config=None, server_header=False, access_log=False
    )
    config.load()
    protocol = GatewayProtocol.with_limits()(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = _Recorder()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    for _ in range(50):
        await asyncio.sleep(0.005)
        if transport.closed or (protocol.cycle is not None and protocol.cycle.response_complete):
            break
    closed = transport.closed
    protocol.connection_lost(None)
    return b"".join(transport.writes).partition(b"\r\n\r\n")[0], closed


async def test_the_head_is_written_as_uvicorn_writes_it() -> None:
    head, closed = await _head_of(
        [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5"), (b"x-tab", b"a\tb")]
    )
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1:] == [b"content-type: text/plain", b"content-length: 5", b"x-tab: a\tb"]
    assert not closed  # kept alive: the length was given
    head, closed = await _head_of([(b"connection", b"Keep-Alive, Close")])
    assert head.endswith(b"connection: Keep-Alive, Close\r\ntransfer-encoding: chunked")
    assert closed


async def test_a_forbidden_byte_in_any_header_is_refused_as_uvicorn_refuses_it(
    caplog: Any,
) -> None:
    good = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    for bad in ((b"x-ok", b"one\r\nx-injected: 1"), (b"x bad", b"v"), (b"x-nul", b"\x00")):
        for headers in ([bad, *good], [*good, bad]):
            head, closed = await _head_of(headers)
            # Nothing of the answer is written and the connection is closed.
            assert head == b"" and closed, (bad, head)
    assert "Invalid HTTP header" in caplog.text


# --- a start message that carries the first body bytes (START_WITH_BODY_EXTENSION) -----------


def _app_starting_with(
    headers: list[tuple[bytes, bytes]], first: bytes, more: list[bytes], seen: list[Any]
) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["extensions"][START_WITH_BODY_EXTENSION] is True
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        start[BODY_KEY] = first
        start["more_body"] = bool(more)
        try:
            await send(start)
        except RuntimeError as exc:
            seen.append(exc)
            raise
        seen.append(len(_transport_of(scope).writes))  # written before send returned
        for index, piece in enumerate(more):
            last = index == len(more) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": not last})

    return app


_TRANSPORTS: dict[int, _Recorder] = {}


def _transport_of(scope: Any) -> _Recorder:
    return _TRANSPORTS[scope["client"][1]]


async def _run(app: Any, access_log: bool = False, method: bytes = b"GET") -> _Recorder:
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, server_header=False, access_log=access_log
    )
    config.load()
    protocol = GatewayProtocol.with_limits()(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = _Recorder()
    _TRANSPORTS[5000] = transport
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(method + b" / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    for _ in range(50):
        await asyncio.sleep(0.005)
        if transport.closed or (protocol.cycle is not None and protocol.cycle.response_complete):
            break
    assert protocol.cycle is not None
    transport.complete = protocol.cycle.response_complete  # type: ignore[attr-defined]
    transport.closed_by_answer = transport.closed  # type: ignore[attr-defined]
    protocol.connection_lost(None)
    return transport


async def test_a_start_with_its_body_is_one_write_at_once_and_completes_the_answer() -> None:
    seen: list[Any] = []
    headers = [(b"content-type", b"application/json"), (b"content-length", b"5")]
    transport = await _run(_app_starting_with(headers, b"hello", [], seen))
    assert seen == [1]  # written inside send(), not held for a later turn of the loop
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello"
    ]
    assert transport.complete and not transport.closed_by_answer  # type: ignore[attr-defined]


async def test_a_start_with_its_body_is_chunked_when_no_length_is_given() -> None:
    seen: list[Any] = []
    headers = [(b"content-type", b"text/event-stream")]
    transport = await _run(_app_starting_with(headers, b"data: 1\n\n", [b"data: 2\n\n"], seen))
    assert seen == [1]
    head, _, body = b"".join(transport.writes).partition(b"\r\n\r\n")
    assert head.endswith(b"transfer-encoding: chunked")
    assert body == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    assert transport.complete  # type: ignore[attr-defined]


async def test_a_start_whose_body_breaks_its_length_is_refused_as_uvicorn_refuses_it() -> None:
    for body, words in ((b"hello!", "longer"), (b"hell", "shorter")):
        seen: list[Any] = []
        headers = [(b"content-length", b"5")]
        await _run(_app_starting_with(headers, body, [], seen))
        assert isinstance(seen[0], RuntimeError) and words in str(seen[0])


async def test_a_start_with_its_body_under_uvicorns_own_access_log_writes_the_body_too() -> None:
    # uvicorn's access log takes uvicorn's send, which knows no body in a start message.
    seen: list[Any] = []
    headers = [(b"content-length", b"5")]
    transport = await _run(_app_starting_with(headers, b"hello", [], seen), access_log=True)
    assert b"".join(transport.writes).endswith(b"\r\n\r\nhello")
    assert transport.complete  # type: ignore[attr-defined]


async def test_a_start_with_its_body_answers_head_without_the_body() -> None:
    seen: list[Any] = []
    headers = [(b"content-length", b"5")]
    transport = await _run(_app_starting_with(headers, b"hello", [], seen), method=b"HEAD")
    assert b"".join(transport.writes).endswith(b"content-length: 5\r\n\r\n")
    assert transport.complete  # type: ignore[attr-defined]
