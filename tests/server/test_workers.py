"""``modelport serve --workers 2``: a real process with two workers, on SQLite, with virtual keys.

The calls spread over both workers (``/metrics`` names each worker's pid),
every call is in the ledger once, ``/metrics`` sums the workers, a team's
requests-per-minute limit holds across them (counters in each process would
let each worker allow the whole limit), the workers do not refuse each other
as other instances without Redis, and SIGTERM stops them all, each draining
its calls as one ``modelport serve`` does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelport.governance import open_catalog
from modelport.ledger import make_engine
from modelport.ledger._store import calls
from tests.governance.conftest import fresh_minute
from tests.server._serve import ServeProcess, upstream_app

pytestmark = pytest.mark.timeout(240)

FREE_CALLS = 60
RATE_CALLS, RPM = 30, 12


async def _upstream_chat(request: Request) -> Response:
    await request.body()
    return JSONResponse(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )


async def _upstream_slow_stream(request: Request) -> Response:
    await request.body()

    async def events() -> Any:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
        await asyncio.sleep(60)

    return StreamingResponse(events(), media_type="text/event-stream")


async def _upstream(request: Request) -> Response:
    body = json.loads(await request.body())
    if body.get("stream"):
        return await _upstream_slow_stream(request)
    return await _upstream_chat(request)


@pytest.fixture
def fake_upstream() -> Iterator[str]:
    with upstream_app([Route("/v1/chat/completions", _upstream, methods=["POST"])]) as url:
        yield url


async def _calls(port: int, secret: str, count: int) -> list[int]:
    """``count`` chat calls, 16 at a time, each on a new connection (so any worker may take it)."""
    statuses: list[int] = []
    gate = asyncio.Semaphore(16)

    async def one() -> None:
        async with gate:
            transport = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1",
                api_key=secret,
                max_retries=0,
                http_client=transport,
            )
            try:
                await client.chat.completions.create(
                    model="up/gpt-test", messages=[{"role": "user", "content": "hi"}]
                )
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
            finally:
                await client.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return statuses


def _samples(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _rows(url: str) -> dict[str | None, int]:
    engine, _ = make_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(calls.c.key_id, sa.func.count()).group_by(calls.c.key_id)
            return {key: int(count) for key, count in conn.execute(query)}
    finally:
        engine.dispose()


def test_two_workers_share_the_port_ledger_metrics_and_limits(
    tmp_path: Path, fake_upstream: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'usage.db'}"
    (home / "config.toml").write_text(
        f"database_url = {json.dumps(url)}\n"
        "[connections.up]\n"
        'compat = "openai"\n'
        f'base_url = "{fake_upstream}"\n'
        "max_retries = 0\n"
    )
    catalog = open_catalog(url=url)
    free, free_secret = catalog.create_key(name="free", actor="test")
    rated, rate_secret = catalog.create_key(name="rate", team="rate", actor="test")
    catalog.set_limit(scope="team", subject="rate", rpm=RPM, actor="test")
    catalog.close()

    process = ServeProcess.launch(home, "--workers", "2")
    port = process.port
    pids: list[int] = []
    try:
        process.wait_ready(90)
        fresh_minute(margin=30)
        assert asyncio.run(_calls(port, free_secret, FREE_CALLS)) == [200] * FREE_CALLS
        limited = asyncio.run(_calls(port, rate_secret, RATE_CALLS))
        # Exactly the team's limit, however the calls fell on the two workers.
        assert limited.count(200) == RPM, limited
        assert limited.count(429) == RATE_CALLS - RPM, limited

        # Every call recorded once, visible to another reader while the gateway runs:
        # the free key's, and exactly the team's limit of the other's.
        expected = {free.id: FREE_CALLS, rated.id: RPM}
        deadline = time.monotonic() + 15
        while (rows := _rows(url)) != expected:
            assert time.monotonic() < deadline, f"ledger rows missing: {rows}"
            time.sleep(0.1)

        time.sleep(1.5)  # each worker copies its plain numbers into the shared files every second
        samples = _samples(port)
        per_worker = {
            int(labels["pid"]): value
            for labels, value in samples["modelport_gateway_worker_requests"]
        }
        pids = list(per_worker)
        assert len(per_worker) == 2 and all(v > 0 for v in per_worker.values()), per_worker
        requests = samples["modelport_gateway_requests_total"]
        assert sum(per_worker.values()) == sum(value for _, value in requests)
        chats = {
            labels["status"]: value
            for labels, value in requests
            if labels["route"] == "/v1/chat/completions"
        }
        assert chats == {"200": FREE_CALLS + RPM, "429": RATE_CALLS - RPM}
        (written,) = samples["modelport_ledger_records_written_total"]
        assert written[1] == sum(expected.values())
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.popen.returncode == 0, process.log[-3000:]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    text = process.log
    assert text.count("Application shutdown complete") == 2, text[-3000:]
    assert "Refusing to start" not in text
    assert _rows(url) == expected  # and nothing more recorded on the way out


def test_sigterm_drains_each_workers_streams(tmp_path: Path, fake_upstream: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{fake_upstream}"\nmax_retries = 0\n'
    )
    process = ServeProcess.launch(home, "--workers", "2", "--drain-timeout", "1", "--no-access-log")
    port = process.port
    try:
        process.wait_ready(90)
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as client:
            stream = client.chat.completions.create(
                model="up/gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            first = next(iter(stream))
            assert first.choices[0].delta.content == "x"
            process.terminate()
            started = time.monotonic()
            # The upstream holds the stream for a minute; the worker's drain ends it after
            # 1 s with the API's error event, which the SDK raises.
            with pytest.raises(openai.APIError, match="drain timeout"):
                for _ in stream:
                    pass
        assert time.monotonic() - started < 15
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
