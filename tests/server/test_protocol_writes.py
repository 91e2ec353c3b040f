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
