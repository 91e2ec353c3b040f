"""Fixtures for gateway tests: a real uvicorn server on a loopback port.

``gateway_factory(app)`` serves a Starlette app with uvicorn (uvloop,
httptools with the gateway's own protocol and its limits, as ``modelport
serve`` does; ``limits=`` changes them) from a background thread on a free
127.0.0.1 port and stops it after the test. ``upstream`` is a
:class:`~modelport.testing.FakeUpstream`; ``gateway`` puts a gateway with two
connections in front of it: ``oai`` (OpenAI-compatible, ``/v1/chat/completions``)
and ``ant`` (Anthropic, ``/v1/messages``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest
import uvicorn
import uvloop
from starlette.applications import Starlette

from modelport.config import Config, parse_config
from modelport.server._protocol import GatewayProtocol, HttpLimits
from modelport.server.app import create_app
from modelport.testing import FakeUpstream

UPSTREAM_OPENAI_KEY = "sk-upstream-openai-secret-0123456789"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-secret-0123456789"


@dataclass
class Gateway:
    """A running gateway: its app (for ``app.state``), base URL and server."""

    app: Starlette
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[openai.OpenAI | anthropic.Anthropic] = field(default_factory=list)

    def openai(self, api_key: str = "unused", **options: Any) -> openai.OpenAI:
        """An official OpenAI client pointed at this gateway (no retries)."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 10.0)
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **options)
        self.clients.append(client)
        return client

    def anthropic(self, api_key: str = "unused", **options: Any) -> anthropic.Anthropic:
        """An official Anthropic client pointed at this gateway (no retries)."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 10.0)
        client = anthropic.Anthropic(base_url=self.url, api_key=api_key, **options)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)


GatewayFactory = Callable[..., Gateway]


def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(server.serve(sockets=[sock]))
    finally:
        loop.close()


@pytest.fixture
def gateway_factory() -> Iterator[GatewayFactory]:
    """Start ``app`` under uvicorn on a free loopback port; stopped after the test."""
    running: list[Gateway] = []

    def start(app: Starlette, limits: HttpLimits | None = None, **config: Any) -> Gateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config.setdefault("log_config", None)
        config.setdefault("access_log", False)
        config.setdefault("timeout_graceful_shutdown", 5)
        # http="httptools": uvicorn's own protocol, as under a server that is not ours.
        protocol = config.pop("http", None) or GatewayProtocol.with_limits(limits)
        server = uvicorn.Server(
            uvicorn.Config(app, http=protocol, lifespan="on", host="127.0.0.1", **config)
        )
        thread = threading.Thread(target=_serve, args=(server, sock), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.005)
        gateway = Gateway(app=app, url=f"http://127.0.0.1:{port}", server=server, thread=thread)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()


def upstream_config(upstream: FakeUpstream, extra: str = "") -> Config:
    """Connections ``oai`` and ``ant`` pointing at ``upstream``, keys from the environment."""
    return parse_config(
        f"""
[connections.oai]
compat = "openai"
base_url = "{upstream.url}/v1"
api_key_env = "TEST_OAI_KEY"
max_retries = 0

[connections.ant]
compat = "anthropic"
base_url = "{upstream.url}"
api_key_env = "TEST_ANT_KEY"
max_retries = 0
{extra}
"""
    )


@pytest.fixture
def upstream_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OAI_KEY", UPSTREAM_OPENAI_KEY)
    monkeypatch.setenv("TEST_ANT_KEY", UPSTREAM_ANTHROPIC_KEY)


@pytest.fixture
def make_gateway(
    upstream: FakeUpstream, upstream_keys: None, gateway_factory: GatewayFactory
) -> Callable[..., Gateway]:
    """``make_gateway(**create_app_options)``: a gateway in front of ``upstream``."""

    def make(extra_config: str = "", limits: HttpLimits | None = None, **options: Any) -> Gateway:
        options.setdefault("plugin_host", False)
        options.setdefault("ledger", False)
        app = create_app(upstream_config(upstream, extra_config), **options)
        return gateway_factory(app, limits=limits)

    return make


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
