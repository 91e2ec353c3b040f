"""Slow and idle clients against a real ``modelport serve`` process.

* A client that reads a long stream at a trickle holds the upstream back: the
  gateway's memory stays flat and the upstream can get only as far ahead of
  the client as the socket buffers between them hold (uvicorn's ``send`` waits
  while the client's socket is full, so the gateway stops reading the upstream,
  and aiohttp stops reading its socket once its own small buffer is full).
* A thousand connections that send nothing do not slow anyone else down.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.testing import FakeUpstream, Reply
from tests.server._raw_upstream import SSE_HEAD, RawUpstream, chunk, read_request
from tests.server._serve import ServeProcess

USER = [{"role": "user", "content": "hi"}]
_EVENT = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":"' + b"x" * 900 + b'"},"finish_reason":null}]}\n\n'
)


class _Firehose:
    """An upstream that streams as fast as its socket lets it, for ever, counting bytes."""

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, reader: Any, writer: Any) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        frame = chunk(_EVENT * 16)  # ~15 KB per write
        while True:
            writer.write(frame)
            await writer.drain()  # waits while the gateway does not read
            self.sent += len(frame)


def _home(tmp_path: Path, base_url: str, timeout: int = 30) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{base_url}"\n'
        f"timeout = {timeout}\nmax_retries = 0\n"
    )
    return home


def _request(text: str) -> bytes:
    body = text.encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )


@pytest.mark.timeout(120)
def test_a_client_reading_at_a_trickle_holds_the_upstream_back(tmp_path: Path) -> None:
    firehose = _Firehose()
    with RawUpstream(firehose) as upstream:
        gateway = ServeProcess.start(_home(tmp_path, f"{upstream.url}/v1"), "--no-access-log")
        try:
            baseline = gateway.rss_mb()
            with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                body = json.dumps({"model": "up/m", "stream": True, "messages": USER})
                sock.sendall(_request(body))
                received = 0
                samples: list[tuple[float, int, int, float]] = []
                began = time.monotonic()
                while time.monotonic() - began < 8:  # ~300 KB/s: 16 KiB every 50 ms
                    data = sock.recv(16 * 1024)
                    assert data, "the gateway closed the stream"
                    received += len(data)
                    time.sleep(0.05)
                    if not samples or time.monotonic() - samples[-1][0] >= 1:
                        sent, rss = firehose.sent, gateway.rss_mb()
                        samples.append((time.monotonic(), sent, received, rss))
        finally:
            gateway.terminate()
            gateway.wait(30)
    _, sent, got, rss = samples[-1]
    ahead = (sent - got) / 1e6
    growth = max(s[3] for s in samples) - baseline
    # Unheld, the upstream would have pushed gigabytes in 8 s; here it stays within the
    # socket buffers on both sides plus aiohttp's and uvicorn's small ones.
    assert ahead < 32, f"the upstream got {ahead:.1f} MB ahead of the client"
    # Its first call costs the gateway some memory (an HTTP session, the ledger); the
    # stream itself, flowing at the client's pace, costs none that grows.
    assert growth < 25, f"the gateway's RSS grew {growth:.1f} MB"
    streaming = samples[-1][3] - samples[0][3]
    assert streaming < 8, f"the gateway's RSS grew {streaming:.1f} MB while the client read"
    # And it keeps pace with the client, no more: over the last 4 s it sent about what was read.
    first = samples[len(samples) // 2]
    assert (sent - first[1]) < (got - first[2]) + 8e6, samples


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-files limit ({hard}) is below the {wanted} this test needs")
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _latencies(url: str, count: int) -> list[float]:
    """``count`` chat completions, each on a new connection (accepting must keep up too)."""
    body = {"model": "up/m", "messages": USER}
    times = []
    for _ in range(count):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            began = time.perf_counter()
            answer = await client.post("/v1/chat/completions", json=body)
            times.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
    return times


@pytest.mark.timeout(120)
async def test_1000_idle_connections_do_not_starve_other_clients(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-completion-cached-tokens.json")
    )
    _raise_fd_limit(4096)  # ours and, inherited, the gateway's: 1,000 sockets each
    home = _home(tmp_path, f"{upstream.url}/v1")
    gateway = await asyncio.to_thread(ServeProcess.start, home, "--no-access-log")
    idle: list[socket.socket] = []
    try:
        await _latencies(gateway.url, 10)  # warm up
        alone = await _latencies(gateway.url, 30)
        fds_alone = gateway.open_fds()
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", gateway.port)))
        # Accepted: each is an open socket in the gateway (give or take one closing client),
        # once its loop has taken them from the backlog (slower on a loaded machine).
        deadline = time.monotonic() + 20
        while gateway.open_fds() < fds_alone + 990:
            assert time.monotonic() < deadline, (fds_alone, gateway.open_fds())
            await asyncio.sleep(0.05)
        crowded = await _latencies(gateway.url, 30)
        health = httpx.get(f"{gateway.url}/health", timeout=5)
        assert health.status_code == 200
    finally:
        for sock in idle:
            sock.close()
        gateway.terminate()
        await asyncio.to_thread(gateway.wait, 30)
    alone_p50, crowded_p50 = statistics.median(alone), statistics.median(crowded)
    assert crowded_p50 < max(3 * alone_p50, 0.05), (alone_p50, crowded_p50)
    assert max(crowded) < 1.0, max(crowded)
