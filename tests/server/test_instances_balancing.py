"""Three real ``modelport serve`` processes on one Redis, balancing one model group over
three deployments (a fake upstream each): least-busy keeps every deployment equally
busy, and a failing deployment sits out its cooldown on every instance, then comes back.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelport._resp import RedisConnection, parse_redis_url
from modelport.testing import FakeUpstream, Reply

REDIS_URL = os.environ.get("MODELPORT_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.skipif(
        REDIS_URL is None, reason="MODELPORT_TEST_REDIS_URL is not set (.ci/run sets it)"
    ),
    pytest.mark.timeout(180),
]

STREAM = "openai/chat-stream-text-include-usage.sse"
INSTANCES = 3
COOLDOWN = 3.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Fleet:
    urls: list[str]
    upstreams: dict[str, FakeUpstream]


def _config(upstreams: dict[str, FakeUpstream]) -> str:
    # Connection names unique to this run: the in-flight counts and cooldowns in
    # Redis are keyed by address, and other runs may share the server.
    lines = [f'redis_url = "{REDIS_URL}"']
    for name, upstream in upstreams.items():
        lines += [
            f"[connections.{name}]",
            'compat = "openai"',
            f'base_url = "{upstream.url}/v1"',
            'api_key_env = "FLEET_KEY"',
            "max_retries = 0",
        ]
    deployments = ", ".join(f'"{name}/m"' for name in upstreams)
    lines += [
        "[aliases.pool]",
        'strategy = "least-busy"',
        f"cooldown = {COOLDOWN}",
        "allowed_fails = 0",
        f"deployments = [{deployments}]",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    tag = secrets.token_hex(3)
    upstreams = {f"d{index}-{tag}": FakeUpstream().start() for index in range(1, 4)}
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for index in range(INSTANCES):
            home = tmp_path / f"home{index}"
            home.mkdir()
            (home / "config.toml").write_text(_config(upstreams))
            port = _free_port()
            env = {**os.environ, "MODELPORT_HOME": str(home), "FLEET_KEY": "sk-fleet"}
            with (home / "serve.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "modelport", "serve", "--port", str(port)],
                        cwd=home,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url, process in zip(urls, processes, strict=True):
            while True:
                assert process.poll() is None, "an instance exited"
                assert time.monotonic() < deadline, "an instance never became ready"
                try:
                    if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
        yield Fleet(urls=urls, upstreams=upstreams)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for upstream in upstreams.values():
            upstream.stop()


async def _wait_for_key(key: str, timeout: float = 10.0) -> None:
    assert REDIS_URL is not None
    redis = RedisConnection(parse_redis_url(REDIS_URL))
    try:
        deadline = time.monotonic() + timeout
        while not await redis.call("EXISTS", key):
            assert time.monotonic() < deadline, f"{key} never appeared in Redis"
            await asyncio.sleep(0.01)
    finally:
        await redis.aclose()


async def _spread(urls: list[str], count: int, *, stream: bool = False) -> list[httpx.Response]:
    """``count`` requests at once, spread round-robin over the instances."""
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(index: int) -> httpx.Response:
            body = {
                "model": "pool",
                "messages": [{"role": "user", "content": f"hello {index}"}],
                "stream": stream,
            }
            return await client.post(f"{urls[index % len(urls)]}/v1/chat/completions", json=body)

        return await asyncio.gather(*(one(index) for index in range(count)))


def test_least_busy_keeps_every_deployment_busy_across_instances(fleet: Fleet) -> None:
    # Each upstream holds every request 3 s: all 30 are in flight together, and each
    # instance had to choose seeing the other instances' calls.
    for upstream in fleet.upstreams.values():
        upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM, delay=3.0))
    answers = asyncio.run(_spread(fleet.urls, 30))
    assert [a.status_code for a in answers] == [200] * 30
    peaks = {name: upstream.peak_in_flight for name, upstream in fleet.upstreams.items()}
    assert sorted(peaks.values()) == [10, 10, 10], peaks
    # Every answer names its deployment, and the three shared the work evenly.
    deployments = [a.headers["x-modelport-deployment"] for a in answers]
    assert sorted(deployments.count(f"{name}/m") for name in fleet.upstreams) == [10, 10, 10]


def test_a_failing_deployment_sits_out_on_every_instance_then_returns(fleet: Fleet) -> None:
    names = list(fleet.upstreams)
    broken = fleet.upstreams[names[1]]
    for upstream in fleet.upstreams.values():
        upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    broken.route(
        "POST", "/v1/chat/completions", Reply.json({"error": {"message": "down"}}, status=503)
    )
    # Ask until the broken deployment was tried once: the call failed over, and its one
    # failure (allowed_fails = 0) started a cooldown that every instance shares.
    for attempt in range(60):
        answer = httpx.post(
            f"{fleet.urls[attempt % INSTANCES]}/v1/chat/completions",
            json={"model": "pool", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.headers["x-modelport-deployment"] != f"{names[1]}/m"
        if broken.requests:
            break
    assert len(broken.requests) == 1
    cooled_at = time.monotonic()
    # The cooldown is written to Redis in the background; the other instances see it
    # once it is there (a loaded machine may take longer than any fixed pause).
    asyncio.run(_wait_for_key(f"modelport:lb:cool:{names[1]}/m"))
    answers = asyncio.run(_spread(fleet.urls, 30))
    assert time.monotonic() - cooled_at < COOLDOWN, "too slow to test within the cooldown"
    assert [a.status_code for a in answers] == [200] * 30
    assert len(broken.requests) == 1  # no instance sent it anything while it sat out
    # It recovers; once the cooldown is over, every instance uses it again.
    broken.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    time.sleep(max(0.0, COOLDOWN + 0.2 - (time.monotonic() - cooled_at)))
    answers = asyncio.run(_spread(fleet.urls, 30))
    assert [a.status_code for a in answers] == [200] * 30
    served_by = {a.headers["x-modelport-deployment"] for a in answers}
    assert served_by == {f"{name}/m" for name in names}
    assert len(broken.requests) > 1
