"""The asyncio task gauge that the soak (``make soak``) reads for leaks at rest."""

from __future__ import annotations

import threading
import time

import httpx

from modelport.testing import FakeUpstream, Reply
from tests.server._metrics import scrape_metrics
from tests.server._serve import sse_stream
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def _tasks(gateway: Gateway) -> float:
    return scrape_metrics(gateway, at_rest=False)["modelport_gateway_asyncio_tasks"]


def test_the_task_gauge_counts_streams_in_flight_and_falls_back_at_rest(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    body, sizes = sse_stream([f"t{i} " for i in range(10)])
    slow = Reply(body=body, chunks=sizes, chunk_delay=0.15, content_type="text/event-stream")
    upstream.route("POST", "/v1/chat/completions", slow)
    at_rest = _tasks(gateway)
    assert at_rest >= 1  # at least the one answering /metrics

    def stream() -> None:
        request = {"model": "oai/m", "messages": USER, "stream": True}
        httpx.post(f"{gateway.url}/v1/chat/completions", json=request, timeout=30)

    threads = [threading.Thread(target=stream) for _ in range(10)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(upstream.requests) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Each stream: its request's task (under GatewayProtocol a timer, not a task, sends
    # its keep-alives and the protocol reports its client leaving).
    assert _tasks(gateway) >= at_rest + 10
    for thread in threads:
        thread.join(timeout=30)
    deadline = time.monotonic() + 5
    while _tasks(gateway) > at_rest:
        assert time.monotonic() < deadline, "tasks left behind after the streams ended"
        time.sleep(0.05)
