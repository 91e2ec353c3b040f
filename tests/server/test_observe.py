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
