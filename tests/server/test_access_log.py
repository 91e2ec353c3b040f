"""The access log: structured records through logging, or `modelport serve`'s batched lines."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.server.access_log import (
    BufferedAccessLog,
    access_fields,
    access_line,
    access_message,
)
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def test_access_log_is_structured(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelport.access")
    httpx.get(f"{gateway.url}/health?token=abc")
    # The line is written once the response has gone out, so it may trail the client.
    deadline = time.monotonic() + 10
    while not any(r.name == "modelport.access" for r in caplog.records):
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.01)
    record = next(r for r in caplog.records if r.name == "modelport.access")
    fields = record.access  # type: ignore[attr-defined]
    assert fields["method"] == "GET" and fields["path"] == "/health"
    assert fields["status"] == 200 and fields["route"] == "/health"
    assert fields["duration_ms"] >= 0
    assert "abc" not in record.getMessage()


def test_serve_access_log_writes_the_same_line_in_batches(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelport.access")  # as `modelport serve` sets it
    stream = io.StringIO()
    gateway = make_gateway(access_log=BufferedAccessLog(stream, max_lines=1000, interval=0.2))
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER)  # type: ignore[arg-type]
    httpx.get(f"{gateway.url}/health?token=abc", headers={"x-api-key": "sk-secret-header"})
    # Held, then written by the timer (or the lifespan's flush at shutdown).
    deadline = time.monotonic() + 10
    while stream.getvalue().count("\n") < 2:
        assert time.monotonic() < deadline, "the access lines were never written"
        time.sleep(0.02)
    lines = stream.getvalue().splitlines()
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO modelport\.access: method=POST "
    assert re.match(pattern, lines[0]), lines[0]
    assert "route=/v1/chat/completions status=200" in lines[0]
    assert "model=oai/gpt-4o" in lines[0]
    assert "path=/health route=/health status=200" in lines[1]
    assert "abc" not in stream.getvalue() and "sk-secret" not in stream.getvalue()
    # Whatever is still held when the gateway stops is written then.
    httpx.get(f"{gateway.url}/health")
    gateway.stop()
    assert stream.getvalue().count("\n") == 3


def test_serve_access_log_follows_the_loggers_level(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="modelport.access")
    stream = io.StringIO()
    gateway = make_gateway(access_log=BufferedAccessLog(stream))
    assert httpx.get(f"{gateway.url}/health").status_code == 200
    gateway.stop()
    assert stream.getvalue() == ""


@settings(max_examples=300)
@given(
    path=st.text(max_size=600),
    model=st.none() | st.text(max_size=600),
    error=st.none() | st.sampled_from(["RateLimitError", "ClientDisconnected"]),
    client=st.none() | st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(0, 65535)),
    status=st.sampled_from([200, 404, 499, 500]),
    seconds=st.floats(0, 100, allow_nan=False),
)
def test_the_buffered_line_is_the_logged_message(
    path: str,
    model: str | None,
    error: str | None,
    client: tuple[str, int] | None,
    status: int,
    seconds: float,
) -> None:
    # The buffered log writes its line straight; it must be the message log_access logs.
    state: dict[str, object] = {}
    if model is not None:
        state["model"] = model
    if error is not None:
        state["error"] = error
    scope = {"method": "POST", "path": path, "client": client, "state": state}
    expected = access_message(access_fields(scope, "/v1/chat/completions", status, seconds))
    assert access_line(scope, "/v1/chat/completions", status, seconds) == expected
