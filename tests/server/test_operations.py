"""Operations: /health, /metrics, /openapi.json, the ledger and `modelport serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from modelport.server.openapi import openapi_document
from modelport.testing import FakeUpstream, Reply
from tests.server._metrics import scrape_metrics
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def test_health_lists_connections_with_their_state(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert {c["name"]: c["state"] for c in body["connections"]} == {"ant": "idle", "oai": "idle"}
    assert body["plugins"] == []

    upstream.route("POST", "/v1/chat/completions", Reply.json({"error": {"message": "x"}}, 500))
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "oai/m", "messages": USER})
    httpx.post(
        f"{gateway.url}/v1/messages", json={"model": "ant/m", "max_tokens": 5, "messages": USER}
    )
    # Unknown connections are the caller's mistake and are not tracked.
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "zz/m", "messages": USER})
    body = httpx.get(f"{gateway.url}/health").json()
    rows = {c["name"]: c for c in body["connections"]}
    assert set(rows) == {"ant", "oai"}
    assert body["status"] == "degraded"
    assert rows["oai"]["state"] == "error"
    assert rows["oai"]["last_error"]["class"] == "UpstreamError"
    assert rows["ant"]["state"] == "ok" and rows["ant"]["last_error"] is None


def test_metrics_count_requests_errors_latency_ttft_and_tokens(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.json({"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}, 429),
    )
    stream = {"model": "oai/gpt-4o", "messages": USER, "stream": True}
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=stream).status_code == 200
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=stream).status_code == 200
    rate_limited = httpx.post(
        f"{gateway.url}/v1/messages", json={"model": "ant/m", "max_tokens": 5, "messages": USER}
    )
    assert rate_limited.status_code == 429
    samples = scrape_metrics(gateway)
    route = 'method="POST",route="/v1/chat/completions",status="200"'
    assert samples[f"modelport_gateway_requests_total{{{route}}}"] == 2
    assert (
        samples['modelport_gateway_requests_total{method="POST",route="/v1/messages",status="429"}']
        == 1
    )  # noqa: E501
    assert samples['modelport_gateway_errors_total{error="RateLimitError"}'] == 1
    assert (
        samples['modelport_gateway_request_duration_seconds_count{route="/v1/chat/completions"}']
        == 2
    )  # noqa: E501
    assert samples['modelport_gateway_time_to_first_token_seconds_count{model="oai/gpt-4o"}'] == 2
    input_tokens = samples['modelport_gateway_tokens_total{kind="input",model="oai/gpt-4o"}']
    assert input_tokens > 0 and input_tokens % 2 == 0
    assert samples['modelport_gateway_tokens_total{kind="output",model="oai/gpt-4o"}'] > 0
    assert "modelport_gateway_in_flight_requests" in samples


def test_openapi_document_describes_the_served_routes(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document == json.loads(json.dumps(openapi_document()))
    assert document["openapi"].startswith("3.")
    served = {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/messages",
        "/v1/responses",
        "/health",
        "/metrics",
    }
    assert served <= set(document["paths"])


def test_unknown_routes_answer_in_the_api_shape(gateway: Gateway) -> None:
    openai_style = httpx.get(f"{gateway.url}/v1/nothing")
    assert openai_style.status_code == 404
    assert "error" in openai_style.json()
    wrong_method = httpx.get(f"{gateway.url}/v1/messages")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "error"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_logs_the_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MODELPORT_HOME": str(tmp_path / "home")}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "modelport", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = None
        while time.monotonic() - started < 60:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    ready = time.monotonic() - started
                    break
            except httpx.TransportError:
                time.sleep(0.02)
        # Start-up time is the benchmark's figure (`make bench`: spawn → 200 on /health),
        # not a test's: here only a start that hangs fails, whatever else loads the machine.
        assert ready is not None, "the gateway never became ready"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode()
    assert f"http://127.0.0.1:{port}/v1" in text
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in text


def _recorded(ledger: Any, count: int) -> list[Any]:
    deadline = time.monotonic() + 5
    while len(ledger.recent(100)) < count:
        assert time.monotonic() < deadline, "ledger records missing"
        ledger.flush(timeout=1)
    return ledger.recent(100)


def test_the_gateway_opens_the_ledger_and_records_calls(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    gateway = make_gateway(ledger=None)  # None: open the configured ledger
    ledger = gateway.app.state.ledger
    assert ledger is not None and gateway.app.state.router.ledger is ledger
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    ids = {}
    completion = gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER)  # type: ignore[arg-type]
    ids[completion.id] = ("openai", "oai", "gpt-4o")
    chunks = list(
        gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER, stream=True)  # type: ignore[arg-type]
    )
    ids[chunks[0].id] = ("openai", "oai", "gpt-4o")
    message = gateway.anthropic().messages.create(model="ant/claude", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    ids[message.id] = ("anthropic", "ant", "claude")
    with gateway.anthropic().messages.stream(
        model="ant/claude",
        max_tokens=5,
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        streamed = stream.get_final_message()
    ids[streamed.id] = ("anthropic", "ant", "claude")
    assert len(ids) == 4, "every answer has an id of its own"
    records = _recorded(ledger, 4)
    # The ledger knows which API each call came through, under the id its client saw.
    assert {r.request_id: (r.api, r.connection, r.model) for r in records} == ids
    assert all(r.outcome == "ok" and r.input_tokens > 0 for r in records)


def test_ttft_starts_at_the_first_token_not_a_leading_usage_event(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    from modelport.config import Config
    from modelport.events import FinishEvent, TextEvent, UsageEvent
    from modelport.ledger import open_ledger
    from modelport.routing import Router
    from modelport.server.app import create_app
    from modelport.testing import FakeProvider, FakeReply

    # Usage first (as a decoder may report Anthropic's message_start), the text 300 ms later.
    reply = FakeReply(
        events=[UsageEvent(input_tokens=9), TextEvent(text="Hi"), FinishEvent(reason="stop")]
    )
    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    router = Router(Config(), ledger=ledger)
    router.register_provider("fake", FakeProvider(reply, event_delay=0.3))
    gateway = gateway_factory(create_app(router=router, plugin_host=False, ledger=ledger))
    request = {"model": "fake/m", "max_tokens": 5, "messages": USER, "stream": True}
    assert httpx.post(f"{gateway.url}/v1/messages", json=request).status_code == 200
    samples = scrape_metrics(gateway)
    assert samples['modelport_gateway_time_to_first_token_seconds_sum{model="fake/m"}'] >= 0.28
    (record,) = _recorded(ledger, 1)
    assert record.ttft_ms is not None and record.ttft_ms >= 280


def test_ledger_losses_are_counted_in_metrics(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream
) -> None:

    from modelport.ledger import CallRecord

    gateway = make_gateway(ledger=None)
    ledger = gateway.app.state.ledger
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER)  # type: ignore[arg-type]
    _recorded(ledger, 1)
    # A record the database refuses (NOT NULL), on its own in a batch: one lost.
    ledger.record(CallRecord(started_at=None, connection="c", model="m"))  # type: ignore[arg-type]
    assert ledger.flush(5)
    samples = scrape_metrics(gateway)
    assert samples["modelport_ledger_records_written_total"] == 1
    assert samples["modelport_ledger_records_dropped_total"] == 1
    assert samples["modelport_ledger_records_failed_total"] == 1


class _CrashedPluginHost:
    """Just enough of a PluginHost for /health: one plugin that crashed, noisily."""

    def describe_all(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "leaky",
                "state": "crashed",
                "error": "plugin exited (code 1); stderr: token=PLUGIN-STDERR-SECRET",
                "exit_code": 1,
                "restarts": 2,
            }
        ]

    async def load(self) -> None:
        pass

    async def start_startup_plugins(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_health_shows_a_crashed_plugins_state_not_its_stderr(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(plugin_host=_CrashedPluginHost())
    body = httpx.get(f"{gateway.url}/health").json()
    assert "PLUGIN-STDERR-SECRET" not in json.dumps(body)
    (plugin,) = body["plugins"]
    assert plugin["name"] == "leaky" and plugin["state"] == "crashed"
    assert plugin["last_error"] and "/plugins/" in plugin["last_error"]
    assert body["status"] == "degraded"


def test_health_and_error_bodies_never_show_a_url_query(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    from modelport.config import Config
    from modelport.errors import UpstreamError
    from modelport.ledger import open_ledger
    from modelport.routing import Router
    from modelport.server.app import create_app
    from modelport.testing import FakeProvider

    error = UpstreamError(
        "Could not use https://up.example/v1?api-key=MSG-QUERY-SECRET (server said no)",
        connection="fake",
        url="https://user:URL-PASSWORD@up.example/v1/chat?api-key=URL-QUERY-SECRET#FRAG-SECRET",
        status=500,
        body="see https://up.example/doc?token=BODY-QUERY-SECRET",
    )
    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    router = Router(Config(), ledger=ledger)
    router.register_provider("fake", FakeProvider(error))
    gateway = gateway_factory(create_app(router=router, plugin_host=False, ledger=ledger))
    secrets = ("MSG-QUERY-SECRET", "URL-PASSWORD", "URL-QUERY-SECRET", "FRAG-SECRET")
    seen = []
    for path, body in (
        ("/v1/chat/completions", {"model": "fake/m", "messages": USER}),
        ("/v1/messages", {"model": "fake/m", "max_tokens": 5, "messages": USER}),
        ("/v1/chat/completions", {"model": "fake/m", "messages": USER, "stream": True}),
    ):
        response = httpx.post(f"{gateway.url}{path}", json=body)
        assert response.status_code == 500
        seen.append(response.text)
    health = httpx.get(f"{gateway.url}/health").json()
    (row,) = [c for c in health["connections"] if c["name"] == "fake"]
    assert "up.example/v1/chat" in row["last_error"]["message"]
    seen.append(json.dumps(health))
    (record, *_) = _recorded(ledger, 3)
    assert record.error and "Could not use" in record.error
    seen.extend(r.error or "" for r in ledger.recent(10))
    for text in seen:
        for secret in (*secrets, "BODY-QUERY-SECRET"):
            assert secret not in text
