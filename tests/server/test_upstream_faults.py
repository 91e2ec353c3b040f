"""Upstream faults through the real gateway: what the client sees, the status, the ledger row.

Each fault is served by a real server on 127.0.0.1 (the HTTP fake, or a raw
TCP/TLS one for what HTTP cannot express) behind a connection with a 1 s
``timeout`` and no retries, and the gateway is called as a client would call
it, streamed and not. Every answer must name what went wrong, carry the
status the client's SDK maps to the right exception, hold nothing secret (the
upstream key, a whole HTML page, a traceback), come back within a few
seconds, and leave one ledger row with the error's class.

The provider-level behaviour of the same faults is in
``tests/providers/test_adapters.py``; this is the gateway's side of it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelport.config import parse_config
from modelport.ledger import open_ledger
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server._raw_upstream import (
    SSE_HEAD,
    RawUpstream,
    chunk,
    read_request,
    reset,
    self_signed_tls,
)
from tests.server._serve import sse_stream
from tests.server._sse import sse_events
from tests.server.conftest import UPSTREAM_OPENAI_KEY, Gateway, GatewayFactory

USER = [{"role": "user", "content": "hi"}]
_HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    + b"<center><h1>502 Bad Gateway</h1></center>" * 200
    + b"<hr><center>nginx</center></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """One upstream fault: how to serve it, and what the gateway must make of it."""

    name: str
    #: A context manager giving the connection's base URL.
    serve: Callable[[], AbstractContextManager[str]]
    status: int
    error: str  # the ledger's outcome: the modelport error class
    says: str  # a phrase the client's message must hold
    #: Streamed: the answer is a 200 with an in-band error event (the stream had begun).
    in_band: bool = False


@contextmanager
def _fake(*replies: Reply) -> Iterator[str]:
    with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/chat/completions", *replies)
        yield f"{upstream.url}/v1"


@contextmanager
def _raw(handler: Any, **options: Any) -> Iterator[str]:
    with RawUpstream(handler, **options) as upstream:
        yield f"{upstream.url}/v1"


async def _headers_then_silence(reader: Any, writer: Any) -> None:
    await read_request(reader)
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(60)


async def _one_event_then_silence(reader: Any, writer: Any) -> None:
    await read_request(reader)
    body, sizes = sse_stream(["Hel", "lo"])
    writer.write(SSE_HEAD + chunk(body[: sizes[0] + sizes[1]]))
    await writer.drain()
    await asyncio.sleep(60)


async def _reset_before_answering(reader: Any, writer: Any) -> None:
    await read_request(reader)
    reset(writer)


async def _reset_mid_stream(reader: Any, writer: Any) -> None:
    await read_request(reader)
    body, sizes = sse_stream(["Hel", "lo"])
    writer.write(SSE_HEAD + chunk(body[: sizes[0] + sizes[1]]))
    await writer.drain()
    await asyncio.sleep(0.2)
    reset(writer)


async def _plain_answer(reader: Any, writer: Any) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
    await writer.drain()


def _dns_failure() -> AbstractContextManager[str]:
    return nullcontext("http://upstream.invalid/v1")


FAULTS = [
    Fault(
        "accepts but never answers",
        lambda: _fake(Reply(hang=True)),
        502,
        "NetworkError",
        "No response from http://127.0.0.1",
    ),
    Fault(
        "headers, then silence",
        lambda: _raw(_headers_then_silence),
        502,
        "NetworkError",
        "No response from http://127.0.0.1",
    ),
    Fault(
        "one event, then silence",
        lambda: _raw(_one_event_then_silence),
        502,
        "NetworkError",
        "No response from http://127.0.0.1",
        in_band=True,
    ),
    Fault(
        "an HTML 502 page",
        lambda: _fake(Reply(status=502, body=_HTML_502, content_type="text/html")),
        502,
        "UpstreamError",
        "HTTP 502: an HTML page (502 Bad Gateway)",
    ),
    Fault(
        "connection reset before the answer",
        lambda: _raw(_reset_before_answering),
        502,
        "NetworkError",
        "was reset before the answer was complete",
    ),
    Fault(
        "connection reset mid-stream",
        lambda: _raw(_reset_mid_stream),
        502,
        "NetworkError",
        "closed mid-response",
        in_band=True,
    ),
    Fault(
        "a name that does not resolve",
        _dns_failure,
        502,
        "NetworkError",
        "the host name does not resolve",
    ),
    Fault(
        "a self-signed certificate",
        lambda: _raw(_plain_answer, tls=self_signed_tls()),
        502,
        "NetworkError",
        "certificate verify failed",
    ),
    Fault(
        "a 200 with an HTML page",
        lambda: _fake(Reply(status=200, body=b"<html>OK</html>", content_type="text/html")),
        502,
        "ParseError",
        "answered with an HTML page, not the API's answer",
    ),
    Fault(
        "a 200 'JSON' body that is not JSON",
        lambda: _fake(Reply(status=200, body=b"{oops", content_type="application/json")),
        502,
        "ParseError",
        "not JSON",
    ),
    Fault(
        "a stream whose event is not JSON",
        lambda: _fake(Reply(status=200, body=b"data: {oops\n\n", content_type="text/event-stream")),
        502,
        "ParseError",
        "not JSON",
    ),
]


@pytest.fixture(autouse=True)
def _offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``.invalid`` never resolves (RFC 6761): answer so without asking a DNS server,
    so the test stays offline and fast whatever the machine's resolver does."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str | bytes) and str(host).rstrip(".").endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fault_gateway(
    gateway_factory: GatewayFactory, upstream_keys: None, tmp_path: Path
) -> Callable[[str], Gateway]:
    def make(base_url: str) -> Gateway:
        config = parse_config(
            f'[connections.up]\ncompat = "openai"\nbase_url = "{base_url}"\n'
            'api_key_env = "TEST_OAI_KEY"\ntimeout = 1\nmax_retries = 0\n'
        )
        ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
        return gateway_factory(create_app(config, plugin_host=False, ledger=ledger))

    return make


def _no_secrets(text: str) -> None:
    assert UPSTREAM_OPENAI_KEY not in text and UPSTREAM_OPENAI_KEY[:12] not in text
    assert "Traceback" not in text and "<center>" not in text


def _ledger_row(gateway: Gateway) -> Any:
    ledger = gateway.app.state.ledger
    assert ledger.flush(5)
    (row,) = ledger.recent(5)
    return row


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_upstream_fault_is_a_clear_error_and_a_ledger_row(
    fault: Fault, stream: bool, fault_gateway: Callable[[str], Gateway]
) -> None:
    with fault.serve() as base_url:
        gateway = fault_gateway(base_url)
        body: dict[str, Any] = {"model": "up/m", "messages": USER}
        if stream:
            body["stream"] = True
        began = time.monotonic()
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
        elapsed = time.monotonic() - began
    assert elapsed < 5, f"{fault.name}: {elapsed:.1f} s"
    _no_secrets(answer.text)
    if stream and fault.in_band:
        assert answer.status_code == 200
        events = sse_events(answer.content)
        assert events[-1].data != "[DONE]", "a broken stream must not end as if complete"
        error = json.loads(events[-1].data)["error"]
    else:
        assert answer.status_code == fault.status, answer.text
        error = answer.json()["error"]
    assert fault.says in error["message"], error
    assert len(error["message"]) < 600, error["message"]
    row = _ledger_row(gateway)
    assert row.outcome == fault.error
    assert row.error and fault.says in row.error
    _no_secrets(row.error)
    health = httpx.get(f"{gateway.url}/health").text
    _no_secrets(health)


def test_the_openai_sdk_raises_on_each_fault(fault_gateway: Callable[[str], Gateway]) -> None:
    """The official client turns every one into an exception, never a silent empty answer."""
    for fault in FAULTS:
        with fault.serve() as base_url:
            client = fault_gateway(base_url).openai()
            with pytest.raises(openai.APIError):
                client.chat.completions.create(model="up/m", messages=USER)  # type: ignore[arg-type]
            with pytest.raises(openai.APIError):
                for _ in client.chat.completions.create(
                    model="up/m",
                    messages=USER,  # type: ignore[arg-type]
                    stream=True,
                ):
                    pass
