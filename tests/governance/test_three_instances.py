"""Three ``modelport serve`` processes on one PostgreSQL and one Redis, under 300 concurrent calls.

A fake upstream answers with honest usage (it writes as many tokens as the
request's ``max_tokens`` allows, up to 40) and streams slowly enough for some
clients to leave mid-way. Two teams share the load: one against a dollar
budget, one against requests and tokens per minute. Afterwards: the budget's
spend, in the counters and in the ledger, is at most the budget; no minute
saw more requests or tokens than allowed; and a revoked key is refused by all
three instances within a second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelport.governance import open_catalog
from modelport.ledger import make_engine
from modelport.ledger._store import calls
from tests.governance.conftest import REDIS_URL, needs_pg, needs_redis
from tests.server._serve import ServeProcess, upstream_app

pytestmark = [needs_pg, needs_redis, pytest.mark.timeout(240)]

MAX_OUTPUT = 40
BUDGET = 0.01  # dollars, for team "spend"
RPM, TPM = 100, 12_000  # for team "rate"


async def _upstream_chat(request: Request) -> Response:
    body = await request.json()
    output = min(MAX_OUTPUT, body.get("max_tokens") or body.get("max_completion_tokens") or 10**6)
    usage = {"prompt_tokens": 10, "completion_tokens": output, "total_tokens": 10 + output}
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "x" * output},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def events() -> Any:
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        for index in range(10):
            delta = {"role": "assistant", "content": "x"} if index == 0 else {"content": "x"}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0.02)
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\n"
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def fake_upstream() -> Iterator[str]:
    with upstream_app([Route("/v1/chat/completions", _upstream_chat, methods=["POST"])]) as url:
        yield url


def test_three_instances_keep_budgets_and_limits_exact(
    tmp_path: Path, pg_url: str, fake_upstream: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f"database_url = {json.dumps(pg_url)}\n"
        f"redis_url = {json.dumps(REDIS_URL)}\n"
        "[connections.up]\n"
        'compat = "openai"\n'
        f'base_url = "{fake_upstream}"\n'
        "max_retries = 0\n"
        '[connections.up.prices."gpt-test"]\n'
        "input = 1.0\n"
        "output = 2.0\n"
    )
    catalog = open_catalog(url=pg_url)
    spender, spend_secret = catalog.create_key(name="spend", team="spend", actor="test")
    _, rate_secret = catalog.create_key(name="rate", team="rate", actor="test")
    probe, probe_secret = catalog.create_key(name="probe", actor="test")
    catalog.set_budget(scope="team", subject="spend", period="day", max_cost=BUDGET, actor="test")
    limit = catalog.set_limit(scope="team", subject="rate", rpm=RPM, tpm=TPM, actor="test")
    deployment = catalog.snapshot().deployment

    processes = [
        ServeProcess.launch(
            home, "--no-access-log", "--log-level", "warning", log_name=f"serve-{n}.log"
        )
        for n in range(3)
    ]
    ports = [process.port for process in processes]
    try:
        for process in processes:
            process.wait_ready(60)
        statuses = asyncio.run(_load(ports, spend_secret, rate_secret))
        # Both teams' calls get through, and both kinds of limit refuse some.
        for team in (0, 1):
            mine = statuses[team::2]
            assert mine.count(200) >= 10 and 429 in mine, mine
        assert set(statuses) <= {200, 429, -1}, statuses
        revoked_in = asyncio.run(_revoke_and_probe(catalog, probe.id, probe_secret, ports))
        assert revoked_in < 1.0, f"a revoked key still worked after {revoked_in:.2f} s"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        catalog.close()

    # Every instance wrote its ledger rows and settled its holds on the way out.
    engine, _ = make_engine(pg_url)
    with engine.connect() as conn:
        spent = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(calls.c.cost), 0.0)).where(
                calls.c.key_id == spender.id
            )
        ).scalar_one()
    engine.dispose()
    assert 0 < spent <= BUDGET
    asyncio.run(_check_counters(deployment, limit))


async def _load(ports: list[int], spend_secret: str, rate_secret: str) -> list[int]:
    """300 concurrent calls spread over the three instances; every fifth stream is left."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(index: int) -> int:
            port = ports[index % 3]
            secret = spend_secret if index % 2 == 0 else rate_secret
            stream = index % 3 == 0
            body = {
                "model": "up/gpt-test",
                "messages": [{"role": "user", "content": f"question {index}"}],
                "max_tokens": 200,
                "stream": stream,
            }
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            headers = {"authorization": f"Bearer {secret}"}
            if not stream:
                answer = await client.post(url, json=body, headers=headers)
                return answer.status_code
            async with client.stream("POST", url, json=body, headers=headers) as answer:
                if answer.status_code != 200 or index % 5 != 0:
                    await answer.aread()
                    return answer.status_code
                async for _line in answer.aiter_lines():
                    break  # the client leaves mid-stream
                return -1

        return list(await asyncio.gather(*(one(i) for i in range(300))))


async def _revoke_and_probe(catalog: Any, key_id: str, secret: str, ports: list[int]) -> float:
    body = {"model": "up/gpt-test", "messages": [{"role": "user", "content": "p"}], "max_tokens": 1}
    headers = {"authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(timeout=10) as client:
        for port in ports:
            works = await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers
            )
            assert works.status_code == 200, works.text
        await asyncio.to_thread(catalog.revoke_key, key_id, actor="test")
        revoked = time.monotonic()
        pending = set(ports)
        while pending and time.monotonic() - revoked < 5:
            for port in list(pending):
                answer = await client.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers
                )
                if answer.status_code == 401:
                    pending.discard(port)
            await asyncio.sleep(0.02)
        return time.monotonic() - revoked


async def _check_counters(deployment: str, limit: Any) -> None:
    """What the shared counters hold: spend within the budget, no minute over its limits."""
    from modelport._resp import RedisConnection, parse_redis_url

    assert REDIS_URL is not None
    redis = RedisConnection(parse_redis_url(REDIS_URL))
    prefix = f"mp:{{{deployment}}}:"
    try:
        budgets = await _scan(redis, prefix + "b:*")
        budget_hashes = [k for k in budgets if not k.endswith((b":l", b":a"))]
        assert budget_hashes
        for key in budget_hashes:
            fields = dict(zip(*[iter(await redis.call("HGETALL", key))] * 2, strict=True))
            assert int(fields[b"sc"]) <= BUDGET * 1e9
            assert int(fields[b"hc"]) == 0  # every hold settled
        windows = await _scan(redis, f"{prefix}r:{limit.id}:*")
        assert windows
        for key in windows:
            fields = dict(zip(*[iter(await redis.call("HGETALL", key))] * 2, strict=True))
            assert int(fields[b"n"]) <= RPM
            assert int(fields[b"t"]) + int(fields[b"h"]) <= TPM
            assert int(fields[b"h"]) == 0
    finally:
        await redis.aclose()


async def _scan(redis: Any, pattern: str) -> list[bytes]:
    """Every key matching ``pattern`` (SCAN until its cursor comes back to 0)."""
    found: list[bytes] = []
    cursor: Any = 0
    while True:
        cursor, keys = await redis.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        found += keys
        if int(cursor) == 0:
            return found
