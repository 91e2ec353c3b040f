"""The balancer's counts shared through a real Redis: two "instances" in one process.

Each :class:`RedisState` is what one gateway instance holds; two of them on
one Redis see each other's calls in flight and each other's cooldowns. The
three-process test (real ``modelport serve`` instances) is in
``tests/server/test_instances_balancing.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator

import pytest

from modelport.routing._deployment_state import RedisState

REDIS_URL = os.environ.get("MODELPORT_TEST_REDIS_URL")

pytestmark = pytest.mark.skipif(
    REDIS_URL is None, reason="MODELPORT_TEST_REDIS_URL is not set (.ci/run sets it)"
)

PREFERENCE = [("a/m", 1.0), ("b/m", 1.0), ("c/m", 1.0)]


@pytest.fixture
async def instances() -> AsyncIterator[tuple[RedisState, RedisState]]:
    assert REDIS_URL is not None
    prefix = f"modelport-test:{secrets.token_hex(6)}:lb:"  # this test's own keys
    first = RedisState(REDIS_URL, prefix=prefix, instance_ttl=1.0)
    second = RedisState(REDIS_URL, prefix=prefix, instance_ttl=1.0)
    yield first, second
    await first.aclose()
    await second.aclose()


async def _settle(*states: RedisState) -> None:
    """Let the releases and failures sent in the background reach Redis."""
    for state in states:
        await state.drain(timeout=10.0)


async def test_least_busy_sees_the_calls_other_instances_have_in_flight(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    chosen = [(await first.choose(PREFERENCE, True)).first for _ in range(4)]
    assert chosen == ["a/m", "b/m", "c/m", "a/m"]
    # The second instance has nothing in flight of its own, yet sees a/m busiest.
    later = [(await second.choose(PREFERENCE, True)).first for _ in range(2)]
    assert later == ["b/m", "c/m"]
    assert first.in_flight == {"a/m": 2, "b/m": 1, "c/m": 1}
    assert second.in_flight == {"b/m": 1, "c/m": 1}


async def test_a_release_on_one_instance_is_seen_by_the_other(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    for _ in range(3):
        await first.choose(PREFERENCE, True)  # a, b, c: one each
    first.release("b/m")
    await _settle(first)
    assert (await second.choose(PREFERENCE, True)).first == "b/m"


async def test_the_rest_of_the_order_is_least_busy_first(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    for _ in range(2):
        await first.acquire("a/m")
    await first.acquire("c/m")
    await _settle(first)
    choice = await second.choose(PREFERENCE, True)
    assert (choice.first, choice.rest) == ("b/m", ["c/m", "a/m"])


async def test_a_cooldown_started_on_one_instance_holds_on_the_other(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    # Long enough that the checks below run inside it on a loaded machine (0.5 s was not
    # a wide margin for a settle and four round trips there).
    cooldown = 2.0
    assert first.failed("a/m", allowed_fails=1, cooldown=cooldown) is False
    assert first.failed("a/m", allowed_fails=1, cooldown=cooldown) is True
    await _settle(first)
    for _ in range(4):
        choice = await second.choose(PREFERENCE, True)
        assert choice.first != "a/m" and "a/m" not in choice.rest
    await asyncio.sleep(cooldown + 0.1)
    picks = {(await second.choose(PREFERENCE, True)).first for _ in range(3)}
    assert "a/m" in picks


async def test_failures_on_different_instances_add_up(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    first.failed("a/m", allowed_fails=1, cooldown=5)
    second.failed("a/m", allowed_fails=1, cooldown=5)  # the second failure in the minute
    await _settle(first, second)
    choice = await first.choose(PREFERENCE, False)
    assert "a/m" not in (choice.first, *choice.rest)


async def test_a_crashed_instance_stops_counting(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    for _ in range(3):
        await first.acquire("a/m")
    await _settle(first)
    assert (await second.choose(PREFERENCE[:2], True)).first == "b/m"
    second.release("b/m")
    # ``first`` never releases (it crashed) and sends no heartbeat: after its TTL
    # (1 s here, 30 s by default) its calls no longer hold a/m.
    assert first._heartbeat is not None
    first._heartbeat.cancel()
    await _settle(second)
    await asyncio.sleep(1.2)
    assert (await second.choose([("a/m", 1.0), ("b/m", 1.0)], True)).first == "a/m"


async def test_the_heartbeat_writes_back_counts_redis_lost(
    instances: tuple[RedisState, RedisState],
) -> None:
    first, second = instances
    await first.choose(PREFERENCE[:1], True)  # a/m: 1 in flight on first
    await first._redis.call("DEL", first._own_key)  # Redis lost it (a restart, an eviction)
    await first.heartbeat()
    assert (await second.choose([("a/m", 1.0), ("b/m", 1.0)], True)).first == "b/m"


async def test_without_redis_the_counts_are_this_instances_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = RedisState("redis://127.0.0.1:9/0")  # nothing listens on port 9
    caplog.set_level(logging.WARNING, "modelport.routing")
    try:
        assert (await state.choose(PREFERENCE, True)).first == "a/m"
        assert (await state.choose(PREFERENCE, True)).first == "b/m"
        state.release("a/m")
        await _settle(state)
        assert state.in_flight == {"b/m": 1}
    finally:
        await state.aclose()
    assert "cannot reach Redis" in caplog.text
    assert caplog.text.count("cannot reach Redis") == 1  # once, not once a call
