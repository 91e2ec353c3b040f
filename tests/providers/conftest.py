"""What the provider tests share: providers, a client, a closed port, raw servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from modelport.events import StreamEvent
from modelport.providers._http import HttpProvider
from modelport.providers._http_client import HttpClient
from modelport.testing import FakeUpstream
from tests.providers._adapters import Adapter

#: ``make_provider(**settings)``: a provider of the test's adapter on its upstream.
ProviderFactory = Callable[..., HttpProvider]
#: ``await raw_server(answer)``: the loopback port of a server that writes ``answer``.
RawServer = Callable[..., Awaitable[int]]


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.fixture
async def make_provider(adapter: Adapter, upstream: FakeUpstream) -> AsyncIterator[ProviderFactory]:
    """Providers of ``adapter`` (each test module says which) on ``upstream``, closed after."""
    made: list[HttpProvider] = []

    def make(**overrides: Any) -> HttpProvider:
        provider = adapter.provider(upstream.url, **overrides)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(timeout=5)
    yield http
    await http.aclose()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    """Servers that answer any connection with fixed bytes and close: answers no HTTP
    server of ours would give (a short body, a banner, plain HTTP on a TLS port)."""
    servers: list[asyncio.Server] = []

    async def serve(answer: bytes, *, read_request: bool = True) -> int:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if read_request:
                await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()
