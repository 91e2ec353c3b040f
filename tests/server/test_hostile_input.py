"""What a stranger sends cannot forge log lines, crash a handler or swell what the gateway keeps.

Each case was found by probing a running gateway the way an attacker would:
control characters in a path or model name, JSON nested a thousand levels deep,
a model name of megabytes, numbers with hundreds of digits.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from modelport.server.access_log import BufferedAccessLog
from modelport.testing import FakeUpstream, Reply
from tests.server._metrics import scrape_metrics
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}
OPENAI_ANSWER = "openai/chat-completion-cached-tokens.json"
#: For calls that move megabytes through the test's own gateway and upstream: ~1 s each
#: at load 8 on 2 cores, and one took past httpx's default 5 s in a random-order run.
MEGABYTES_TIMEOUT = 60


def _raw_request(gateway: Gateway, head: bytes) -> bytes:
    """Send ``head`` as is (no client library re-encodes it); the status line comes back."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        return sock.recv(65536)


def _written_lines(stream: io.StringIO, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < count:
        assert time.monotonic() < deadline, stream.getvalue()
        time.sleep(0.02)
    return stream.getvalue().splitlines()


def test_control_characters_in_a_path_or_model_cannot_forge_a_log_line(
    make_gateway: Callable[..., Gateway],
    upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="modelport.access")
    stream = io.StringIO()
    gateway = make_gateway(access_log=BufferedAccessLog(stream, interval=0.05))
    forged = "2025-01-01 00:00:00,000 INFO modelport.access: method=POST path=/admin status=200"
    # %0a, %0d, %1b and %00 in a path: uvicorn decodes them into the path the app sees.
    answer = _raw_request(
        gateway,
        b"GET /x%0d%0a" + forged.replace(" ", "%20").encode() + b"%1b[2J%00 HTTP/1.1\r\n"
        b"host: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 404")
    # The same in a model name (a JSON string may hold any character).
    upstream.route("POST", "/v1/chat/completions", Reply.json({"error": {"message": "no"}}, 404))
    httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "oai/m\r\n" + forged + "\x1b[2J\x00", "messages": USER},
    )
    lines = _written_lines(stream, 2)
    assert len(lines) == 2, lines  # one line per request, however the client wrote them
    ours = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO modelport\.access: method=")
    for line in lines:
        assert ours.match(line), line
        assert not any(c in line for c in "\r\x1b\x00"), repr(line)
    # The forged text is inside one quoted value, not a field or a line of its own.
    assert ' path="/x\\r\\n2025-01-01 00:00:00,000 INFO' in lines[0]
    assert "\\r\\n" in lines[0] and "\\u001b" in lines[0] and "\\u0000" in lines[0]
    assert "\\r\\n" in lines[1]
    # The logging writer escapes the same way (its message is the same line).
    messages = [r.getMessage() for r in caplog.records if r.name == "modelport.access"]
    assert messages == [] or all("\n" not in m for m in messages)


def test_log_access_escapes_too(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelport.access")
    _raw_request(gateway, b"GET /a%0ab HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
    deadline = time.monotonic() + 10
    while not any(r.name == "modelport.access" for r in caplog.records):
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.01)
    record = next(r for r in caplog.records if r.name == "modelport.access")
    assert "\n" not in record.getMessage()
    assert 'path="/a\\nb"' in record.getMessage()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [990, 5_000, 100_000])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_json_nested_too_deep_is_a_400_not_a_500(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, depth: int, path: str
) -> None:
    body = b'{"model":"oai/m","max_tokens":5,"messages":' + _nested(depth) + b"}"
    response = httpx.post(f"{gateway.url}{path}", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "nested" in response.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_deep_json_read_but_too_deep_to_send_is_a_400_not_a_500(
    gateway: Gateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # Around the depth where the body can still be read but the upstream body, encoded
    # deeper in the stack, no longer can: every answer is a 200 or a 400, never a 500.
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(OPENAI_ANSWER))
    statuses = set()
    for depth in range(940, 1000, 3):
        for stream in (b"false", b"true"):
            schema = b'{"type":"object","properties":{"a":' + _nested(depth) + b"}}"
            body = (
                b'{"model":"oai/m","messages":[{"role":"user","content":"hi"}],"stream":%s,'
                b'"tools":[{"type":"function","function":{"name":"f","parameters":%s}}]}'
                % (stream, schema)
            )
            response = httpx.post(f"{gateway.url}/v1/chat/completions", content=body, headers=JSON)
            assert response.status_code in (200, 400), (depth, stream, response.text)
            if response.status_code == 400:
                assert "nested" in response.text
            statuses.add(response.status_code)
    assert statuses == {200, 400}  # both sides of the boundary were tried
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_huge_model_name_is_refused_without_an_echo(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelport.access")
    stream = io.StringIO()
    gateway = make_gateway(access_log=BufferedAccessLog(stream, interval=0.05))
    name = "oai/" + "x" * 5_000_000
    for path in ("/v1/chat/completions", "/v1/messages"):
        body = {"model": name, "max_tokens": 5, "messages": USER}
        response = httpx.post(f"{gateway.url}{path}", json=body, timeout=MEGABYTES_TIMEOUT)
        assert response.status_code == 400
        assert len(response.content) < 1_000
    lines = _written_lines(stream, 2)
    assert all(len(line) < 1_000 for line in lines)
    assert len(httpx.get(f"{gateway.url}/health").content) < 2_000


def test_an_upstream_error_echoing_a_huge_name_stays_small_everywhere(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # A name within the cap, and an upstream that repeats it in a huge error message.
    huge = "no model " + "y" * 2_000_000
    upstream.route(
        "POST", "/v1/chat/completions", Reply.json({"error": {"message": huge}}, status=500)
    )
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.json({"type": "error", "error": {"type": "api_error", "message": huge}}, 500),
    )
    for model, path in (("oai/m", "/v1/chat/completions"), ("ant/m", "/v1/messages")):
        for stream in (False, True):
            body = {"model": model, "max_tokens": 5, "messages": USER, "stream": stream}
            response = httpx.post(f"{gateway.url}{path}", json=body, timeout=MEGABYTES_TIMEOUT)
            assert response.status_code >= 400 or stream
            assert len(response.content) < 10_000, (path, stream, len(response.content))
    assert len(httpx.get(f"{gateway.url}/health").content) < 4_000


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/chat/completions", {"max_tokens": 10**400}),
        ("/v1/chat/completions", {"temperature": 1e300}),
        ("/v1/messages", {"max_tokens": 10**400}),
        ("/v1/messages", {"top_k": 10**400}),
    ],
)
def test_numbers_out_of_range_never_reach_the_upstream(
    gateway: Gateway, upstream: FakeUpstream, path: str, field: dict[str, int]
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(OPENAI_ANSWER))
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    model = "oai/m" if path.endswith("completions") else "ant/m"
    body = {"model": model, "max_tokens": 5, "messages": USER, **field}
    response = httpx.post(f"{gateway.url}{path}", json=body)
    assert response.status_code == 400, response.text
    assert next(iter(field)) in response.text
    assert upstream.requests == []


def test_invented_model_names_do_not_grow_metrics_or_remembered_routes(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    from modelport.routing._route_cache import MAX_REMEMBERED_ROUTES
    from modelport.server.metrics import MAX_MODEL_LABELS

    # An upstream that answers for any model name, as local servers do.
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    with httpx.Client(base_url=gateway.url) as client:
        for n in range(MAX_MODEL_LABELS + 50):
            body = {"model": f"oai/invented-{n}", "messages": USER, "stream": n % 2 == 0}
            assert client.post("/v1/chat/completions", json=body).status_code == 200
    samples = scrape_metrics(gateway)
    ttft_models = {k for k in samples if k.startswith("modelport_gateway_time_to_first_token")}
    labels = {k.split('model="', 1)[1].split('"', 1)[0] for k in samples if 'model="' in k}
    assert len(labels) == MAX_MODEL_LABELS + 1, len(labels)
    assert "other" in labels and "oai/invented-0" in labels
    assert ttft_models  # streamed ones were timed
    tokens = samples['modelport_gateway_tokens_total{kind="input",model="other"}']
    assert tokens > 0
    assert len(gateway.app.state.router._cache._routes) <= MAX_REMEMBERED_ROUTES
