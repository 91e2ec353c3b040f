"""The Redis address forms ``redis_url`` takes (the connection itself is exercised by
every Redis test in tests/governance, tests/routing and tests/server, over whichever
form ``MODELPORT_TEST_REDIS_URL`` uses: CI gives a Unix socket)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from modelport._resp import BackgroundCommands, RedisConnection, Unavailable, parse_redis_url
from modelport.errors import ConfigError


def test_tcp_url() -> None:
    address = parse_redis_url("redis://:s3cret@cache.internal:6380/2")
    assert (address.host, address.port, address.db, address.password) == (
        "cache.internal",
        6380,
        2,
        "s3cret",
    )
    assert address.path is None
    assert address.fingerprint == "redis://cache.internal:6380/2"  # no password in it


def test_unix_socket_url() -> None:
    address = parse_redis_url("unix://:pw@/run/redis/redis.sock?db=3")
    assert (address.path, address.db, address.password) == ("/run/redis/redis.sock", 3, "pw")
    assert address.fingerprint == "unix:///run/redis/redis.sock?db=3"
    assert parse_redis_url("unix:///tmp/r.sock").db == 0


@pytest.mark.parametrize(
    "url",
    ["http://localhost", "redis://", "unix://", "unix://host/r.sock", "unix:///r.sock?db=x"],
)
def test_malformed_urls_say_the_shape(url: str) -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        parse_redis_url(url)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_unix_socket_server_answers(tmp_path: Path) -> None:
    pytest.importorskip("hiredis")
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        async def roundtrip() -> list[object]:
            redis = RedisConnection(parse_redis_url(f"unix://{socket_path}?db=1"))
            try:
                await redis.call("SET", "k", "v")
                return [await redis.call("GET", "k"), await redis.call("DBSIZE")]
            finally:
                await redis.aclose()

        assert asyncio.run(roundtrip()) == [b"v", 1]
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_background_commands_are_waited_for_and_their_failures_reported() -> None:
    errors: list[BaseException] = []
    background = BackgroundCommands(errors.append)
    done: list[int] = []

    async def works() -> None:
        await asyncio.sleep(0.01)
        done.append(1)

    async def fails() -> None:
        raise Unavailable("the connection to Redis was lost")

    background.spawn(works())
    background.spawn(fails())
    assert len(background) == 2
    await background.drain()
    assert done == [1] and len(background) == 0
    assert [str(e) for e in errors] == ["the connection to Redis was lost"]
