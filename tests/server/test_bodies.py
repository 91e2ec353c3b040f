"""Request bodies in flight are bounded: past the budget a large body waits outside (503).

Each body in flight costs several times its size until its call ends (read,
parsed, encoded again for the upstream); sixty 31 MB bodies at once once took
7 GB. The guard counts every body from its request's start to its end.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from modelport.testing import FakeUpstream, Reply
from tests.server._metrics import scrape_metrics
from tests.server.conftest import Gateway
from tests.server.test_protocol import _config, _rss, _serve

ANSWER = "openai/chat-completion-cached-tokens.json"
MIB = 1024 * 1024


def _body(size: int, model: str = "oai/m") -> bytes:
    """A chat request of ``size`` bytes (a long user message)."""
    head = b'{"model":"%s","max_tokens":5,"messages":[{"role":"user","content":"' % model.encode()
    tail = b'"}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _concurrently(count: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    results: list[httpx.Response | None] = [None] * count

    def run(n: int) -> None:
        results[n] = call(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_large_bodies_past_the_budget_are_told_to_retry(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(max_bodies_in_flight=3 * MIB)
    # The upstream takes a while, so the bodies stay in flight together.
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(ANSWER, delay=1.0))
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json", delay=1.0))
    body = _body(MIB)
    headers = {"content-type": "application/json"}

    def post(n: int) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions", content=body, headers=headers, timeout=30
        )

    responses = _concurrently(10, post)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) in (2, 3) and set(statuses) == {200, 503}, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "server_error" and "retry" in busy.text
    # The budget is given back when each call ends: the gauge is at zero, a body fits again.
    assert scrape_metrics(gateway)["modelport_gateway_request_body_bytes_in_flight"] == 0
    assert post(0).status_code == 200
    # Small bodies are never turned away; an Anthropic client gets its own error shape.
    small = json.dumps({"model": "oai/m", "messages": [{"role": "user", "content": "hi"}]})

    def mixed(n: int) -> httpx.Response:
        if n < 4:
            anthropic = _body(MIB, model="ant/m")
            return httpx.post(
                f"{gateway.url}/v1/messages", content=anthropic, headers=headers, timeout=30
            )
        return httpx.post(
            f"{gateway.url}/v1/chat/completions", content=small, headers=headers, timeout=30
        )

    responses = _concurrently(10, mixed)
    assert all(r.status_code == 200 for r in responses[4:])
    refused = [r for r in responses[:4] if r.status_code == 503]
    assert refused and refused[0].json()["type"] == "error"


def test_a_chunked_body_is_counted_as_it_arrives(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(max_bodies_in_flight=3 * MIB)
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(ANSWER, delay=1.0))
    body = _body(MIB)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    def post(n: int) -> httpx.Response:
        # A generator body: httpx sends it chunked, with no Content-Length.
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            content=pieces(),
            headers={"content-type": "application/json"},
            timeout=30,
        )

    statuses = sorted(r.status_code for r in _concurrently(8, post))
    assert 200 in statuses and 503 in statuses, statuses
    assert scrape_metrics(gateway)["modelport_gateway_request_body_bytes_in_flight"] == 0


def test_sixty_31_mb_bodies_at_once_stay_within_the_budget(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(ANSWER, delay=2.0))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    body = _body(31 * MIB)
    with _serve(tmp_path, _config(upstream), (hard, hard)) as serve:
        before = _rss(serve.process.pid)
        peak = before
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss(serve.process.pid))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()

        def post(n: int) -> httpx.Response:
            return httpx.post(
                f"{serve.url}/v1/chat/completions",
                content=body,
                headers={"content-type": "application/json"},
                timeout=120,
            )

        try:
            responses = _concurrently(60, post)
        finally:
            done.set()
            watcher.join()
        time.sleep(1)
        after = _rss(serve.process.pid)
        statuses = [r.status_code for r in responses]
        print(
            f"60 x 31 MB: {statuses.count(200)} served, {statuses.count(503)} told to retry; "
            f"RSS {before >> 20} MB -> peak {peak >> 20} MB -> {after >> 20} MB after"
        )
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 1
        # The default budget, 256 MiB, holds 8 such bodies at once (a few more may come
        # in later, as the first calls end); each costs a few times its size.
        assert statuses.count(200) <= 16, statuses.count(200)
        assert peak - before < 1_500 * MIB, (before >> 20, peak >> 20)
        assert after - before < 1_000 * MIB, (before >> 20, after >> 20)
