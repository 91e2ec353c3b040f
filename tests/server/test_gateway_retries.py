"""Retries and the ledger through the running gateway, where the other gateway tests turn them off.

The shared fixtures run with ``max_retries = 0`` and no ledger, so that each test
sees one upstream request and nothing written; these connections retry, and
these gateways keep a ledger.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from modelport.testing import FakeUpstream, Reply
from tests.server._sse import sse_events
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]
OPENAI_STREAM = "openai/chat-stream-text-include-usage.sse"
ANTHROPIC_STREAM = "anthropic/messages-stream-text.sse"
# Quick to retry: the gateway honours the upstream's own pause.
BUSY = {"retry-after-ms": "20"}


def _retrying(upstream: FakeUpstream) -> str:
    return f"""
[connections.oair]
compat = "openai"
base_url = "{upstream.url}/v1"
api_key_env = "TEST_OAI_KEY"
max_retries = 2

[connections.antr]
compat = "anthropic"
base_url = "{upstream.url}"
api_key_env = "TEST_ANT_KEY"
max_retries = 2
"""


def _overloaded_then(fixture: str, path: str) -> tuple[Reply, ...]:
    if path == "/v1/messages":
        busy = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
        return (
            Reply.json(busy, status=529, headers=BUSY),
            Reply.json(busy, status=503, headers=BUSY),
            Reply.fixture(fixture),
        )
    busy = {"error": {"message": "busy", "type": "server_error"}}
    return (
        Reply.json(busy, status=503, headers=BUSY),
        Reply.json(busy, status=502, headers=BUSY),
        Reply.fixture(fixture),
    )


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["oair/gpt-4o", "antr/claude"])
def test_the_gateway_retries_an_overloaded_upstream_for_both_sdks(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, stream: bool, model: str
) -> None:
    gateway = make_gateway(_retrying(upstream))
    fixture = ANTHROPIC_STREAM if model.startswith("antr") else OPENAI_STREAM
    path = "/v1/messages" if model.startswith("antr") else "/v1/chat/completions"
    upstream.route("POST", path, *_overloaded_then(fixture, path))
    # The OpenAI client on either model, then the Anthropic client on either model.
    answer = gateway.openai().chat.completions.create(
        model=model,
        messages=USER,  # type: ignore[arg-type]
        stream=stream,  # type: ignore[arg-type]
    )
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)  # type: ignore[union-attr]
    else:
        text = answer.choices[0].message.content or ""  # type: ignore[union-attr]
    assert text
    assert len(upstream.requests) == 3  # two refusals, then the answer
    upstream.route("POST", path, *_overloaded_then(fixture, path))
    client = gateway.anthropic()
    if stream:
        with client.messages.stream(model=model, max_tokens=5, messages=USER) as events:  # type: ignore[arg-type]
            message = events.get_final_message()
    else:
        message = client.messages.create(model=model, max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert message.content and message.stop_reason is not None
    assert len(upstream.requests) == 6


def test_the_gateway_gives_up_after_the_connections_retries(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(_retrying(upstream))
    busy = {"error": {"message": "still busy", "type": "server_error"}}
    upstream.route("POST", "/v1/chat/completions", Reply.json(busy, status=503, headers=BUSY))
    with pytest.raises(openai.InternalServerError, match="still busy"):
        gateway.openai().chat.completions.create(model="oair/gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert len(upstream.requests) == 3  # max_retries = 2: three attempts


def test_a_stream_that_broke_after_it_began_is_not_retried(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(_retrying(upstream))
    dropped = Reply.fixture(OPENAI_STREAM, chunks=[400] * 30, drop_after=1200)
    upstream.route("POST", "/v1/chat/completions", dropped, Reply.fixture(OPENAI_STREAM))
    raw = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "oair/gpt-4o", "messages": USER, "stream": True},
        timeout=10,
    )
    frames = [json.loads(e.data) for e in sse_events(raw.content) if e.data.startswith("{")]
    assert any(f.get("choices") and f["choices"][0]["delta"].get("content") for f in frames)
    assert "error" in frames[-1] and "[DONE]" not in raw.text  # never ends as if complete
    assert len(upstream.requests) == 1  # text had gone out: a retry would repeat it
    # An Anthropic client on the same model: the same in-band end, no second attempt.
    upstream.route("POST", "/v1/chat/completions", dropped, Reply.fixture(OPENAI_STREAM))
    with pytest.raises(anthropic.APIError):
        with gateway.anthropic().messages.stream(
            model="oair/gpt-4o",
            max_tokens=5,
            messages=USER,  # type: ignore[arg-type]
        ) as events:
            events.get_final_message()
    assert len(upstream.requests) == 2


# --- the ledger sees a client that leaves ---------------------------------------------------


def _recorded(ledger: Any, count: int, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(ledger.recent(100)) < count:
        assert time.monotonic() < deadline, "ledger records missing"
        ledger.flush(timeout=1)
    return ledger.recent(100)


def _send(gateway: Gateway, body: dict[str, Any]) -> socket.socket:
    payload = json.dumps(body).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    return sock


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_is_recorded_as_cancelled(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, stream: bool
) -> None:
    gateway = make_gateway(_retrying(upstream), ledger=None)  # None: the configured ledger
    ledger = gateway.app.state.ledger
    slow = Reply.fixture(
        OPENAI_STREAM, chunks=[400] * 30, chunk_delay=0.1, delay=0 if stream else 0.5
    )
    upstream.route("POST", "/v1/chat/completions", slow)
    # Closed on a failure too: a socket left to the garbage collector fails a later test.
    with contextlib.closing(
        _send(gateway, {"model": "oair/gpt-4o", "messages": USER, "stream": stream})
    ) as sock:
        if stream:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # the stream is under way
        else:
            deadline = time.monotonic() + 5
            while not upstream.requests:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    assert upstream.requests[0].closed.wait(timeout=5), "the upstream call was not cancelled"
    (record,) = _recorded(ledger, 1)
    assert (record.connection, record.model, record.api) == ("oair", "gpt-4o", "openai")
    assert record.outcome == "cancelled" and record.request_id
    assert len(upstream.requests) == 1  # a client leaving is not a failure to retry
