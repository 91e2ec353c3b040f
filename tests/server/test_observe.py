"""The outer middleware: every request counted and timed, a bug answered with a 500."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.server._metrics import scrape_metrics
from tests.server.conftest import Gateway


def test_a_chat_handler_that_raises_gets_a_500_and_is_counted(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # The chat routes are dispatched without Starlette's error middleware; the
    # direct path must still answer a bug with a 500 and count it.
    from starlette.routing import Route

    async def boom(request: Any) -> Any:
        raise RuntimeError("a bug")

    gateway.app._chat["/v1/chat/completions"] = Route(  # type: ignore[attr-defined]
        "/v1/chat/completions", boom, methods=["POST"]
    )
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")  # the traceback it logs
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "oai/x"})
    assert response.status_code == 500
    samples = scrape_metrics(gateway)
    route = 'method="POST",route="/v1/chat/completions",status="500"'
    assert samples[f"modelport_gateway_requests_total{{{route}}}"] == 1


def _requests_counted(gateway: Gateway) -> dict[str, float]:
    prefix = 'modelport_gateway_requests_total{method="POST",route="/v1/chat/completions",status="'
    return {
        name[len(prefix) : -2]: value
        for name, value in scrape_metrics(gateway).items()
        if name.startswith(prefix)
    }


def test_the_chat_routes_count_the_status_each_answer_sent(
    gateway: Gateway, upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The chat routes read the status off the response once it has run (server/_direct.py):
    # a plain answer, a stream, a stream refused before its first byte with the
    # upstream's status, a plain error, and a guard's refusal are each counted as sent.
    from modelport.testing import Reply

    caplog.set_level(logging.INFO, logger="modelport.access")
    url = f"{gateway.url}/v1/chat/completions"
    chat = {"model": "oai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    answer = Reply.fixture("openai/chat-completion-refusal.json")
    upstream.route("POST", "/v1/chat/completions", answer)
    assert httpx.post(url, json=chat).status_code == 200
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    assert httpx.post(url, json={**chat, "stream": True}).status_code == 200
    limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    upstream.route("POST", "/v1/chat/completions", Reply.json(limited, status=429))
    assert httpx.post(url, json={**chat, "stream": True}).status_code == 429
    assert httpx.post(url, json=chat).status_code == 429
    assert httpx.post(url, json=chat, headers={"host": "evil.example"}).status_code == 403
    assert _requests_counted(gateway) == {"200": 2, "429": 2, "403": 1}
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "modelport.access" and "route=/v1/chat/completions" in r.getMessage()
    ]
    statuses = sorted(line.split(" status=")[1].split()[0] for line in lines)
    assert statuses == ["200", "200", "403", "429", "429"]
