"""Model groups through the router: strategies, in-flight counts, cooldowns, failover.

Deployments are registered :class:`FakeProvider`s (the real registry, the
real router) or, where timing matters, real HTTP servers (:class:`FakeUpstream`).
What several instances share through Redis is in ``test_balancer_redis.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelport.config import parse_config
from modelport.errors import (
    AuthError,
    InvalidRequestError,
    NetworkError,
    UpstreamError,
)
from modelport.events import StreamEvent, TextEvent
from modelport.routing import Router
from modelport.routing._balancer import Balancer
from modelport.routing._deployment_state import LocalState
from modelport.testing import FakeProvider, FakeReply, FakeUpstream, Reply
from modelport.types import ChatRequest, Message


def request(model: str = "pool") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")])


async def _sleep(_delay: float) -> None:
    return None


def group_router(
    strategy: str,
    names: list[str],
    *replies: Any,
    weights: list[float] | None = None,
    extra: str = "",
    cooldown: float = 30,
    allowed_fails: int = 3,
    **provider_options: Any,
) -> tuple[Router, dict[str, FakeProvider]]:
    weights = weights or [1.0] * len(names)
    deployments = ", ".join(
        f'{{ model = "{name}/m", weight = {weight} }}'
        for name, weight in zip(names, weights, strict=True)
    )
    config = parse_config(
        f"""
[aliases.pool]
strategy = "{strategy}"
cooldown = {cooldown}
allowed_fails = {allowed_fails}
deployments = [{deployments}]
{extra}
"""
    )
    router = Router(config, env={}, sleep=_sleep)
    providers: dict[str, FakeProvider] = {}
    for index, name in enumerate(names):
        reply = replies[index] if index < len(replies) else f"{name} answers"
        providers[name] = FakeProvider(reply, connection=name, **provider_options)
        router.register_provider(name, providers[name])
    return router, providers


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


def calls(providers: dict[str, FakeProvider]) -> dict[str, int]:
    return {name: len(p.history) for name, p in providers.items()}


# --- weighted ---------------------------------------------------------------------------------


async def test_weighted_spreads_calls_in_proportion_to_the_weights() -> None:
    router, providers = group_router("weighted", ["a", "b", "c"], weights=[6, 3, 1])
    router.balancer = Balancer(rand=random.Random(7).random)
    for _ in range(1000):
        await collect(router.stream(request(), max_retries=0))
    seen = calls(providers)
    assert sum(seen.values()) == 1000
    assert 540 <= seen["a"] <= 660 and 240 <= seen["b"] <= 360 and 60 <= seen["c"] <= 140


async def test_each_call_asks_the_deployment_for_its_own_model_id() -> None:
    router, providers = group_router("weighted", ["a"])
    events = await collect(router.stream(request(), max_retries=0))
    assert events[0] == TextEvent(text="a answers")
    assert providers["a"].history[0].model == "m"


async def test_complete_names_the_deployment_that_answered() -> None:
    router, _providers = group_router("weighted", ["a"])
    response = await router.complete(request(), max_retries=0)
    assert response.model == "a/m"


async def test_a_stream_tells_which_deployment_answered() -> None:
    router, _providers = group_router("least-busy", ["a", "b"], NetworkError("down"), "b answers")
    router.balancer = Balancer(rand=iter([0.0, 0.5]).__next__)  # a first
    answered: list[str] = []
    events = await collect(router.stream(request(), max_retries=0, on_answer=answered.append))
    assert answered == ["b/m"] and events[0] == TextEvent(text="b answers")


# --- least busy -------------------------------------------------------------------------------


async def _hold(router: Router, count: int) -> list[asyncio.Task[Any]]:
    """``count`` streams started at once, each held after its first event."""
    started = asyncio.Event()
    waiting = 0

    async def one() -> None:
        nonlocal waiting
        async with contextlib.aclosing(router.stream(request(), max_retries=0)) as events:
            async for _event in events:
                waiting += 1
                if waiting == count:
                    started.set()
                await asyncio.sleep(30)

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.wait_for(started.wait(), 5)
    return tasks


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_least_busy_keeps_every_deployment_equally_busy() -> None:
    router, providers = group_router("least-busy", ["a", "b", "c"], ["x", "y"])
    tasks = await _hold(router, 9)
    try:
        assert calls(providers) == {"a": 3, "b": 3, "c": 3}
        assert router.balancer.state.in_flight == {"a/m": 3, "b/m": 3, "c/m": 3}
    finally:
        await _cancel(tasks)
    # A caller that went away released its deployment.
    assert router.balancer.state.in_flight == {}


async def test_least_busy_counts_in_flight_per_unit_of_weight() -> None:
    router, providers = group_router(
        "least-busy", ["a", "b"], ["x", "y"], ["x", "y"], weights=[2, 1]
    )
    tasks = await _hold(router, 9)
    try:
        assert calls(providers) == {"a": 6, "b": 3}
    finally:
        await _cancel(tasks)


async def test_a_finished_or_failed_call_leaves_nothing_in_flight() -> None:
    router, _providers = group_router(
        "least-busy", ["a", "b"], "fine", FakeReply(events=["partial"], error=NetworkError("cut"))
    )
    for _ in range(4):
        try:
            await collect(router.stream(request(), max_retries=0))
        except NetworkError:
            pass
        await router.complete(request("a/m"), max_retries=0)
    assert router.balancer.state.in_flight == {}


# --- lowest latency ---------------------------------------------------------------------------


async def test_lowest_latency_prefers_the_deployment_that_answers_first() -> None:
    body = Reply.fixture("openai/chat-stream-text-include-usage.sse").body
    with FakeUpstream() as slow, FakeUpstream() as fast:
        # Far apart: one fast call that a loaded machine stalls for a few tenths of a second
        # must not lift the fast one's average past the slow one's (0.15 s once was not).
        slow.route("POST", "/v1/chat/completions", Reply(body=body, delay=0.6, chunks=[64]))
        fast.route("POST", "/v1/chat/completions", Reply(body=body, chunks=[64]))
        config = parse_config(
            f"""
[connections.slow]
compat = "openai"
base_url = "{slow.url}/v1"
max_retries = 0
[connections.fast]
compat = "openai"
base_url = "{fast.url}/v1"
max_retries = 0
[aliases.pool]
strategy = "lowest-latency"
deployments = ["slow/m", "fast/m"]
"""
        )
        router = Router(config, env={"OPENAI_API_KEY": "unused"})
        try:
            # Warm both connections (imports, pools): a cold start is not the deployment's speed.
            await collect(router.stream(request("slow/m")))
            await collect(router.stream(request("fast/m")))
            for _ in range(12):
                await collect(router.stream(request()))
        finally:
            await router.aclose()
        # Each is measured once (never-measured deployments go first), then the fast one wins.
        assert len(slow.requests) == 1 + 1
        assert len(fast.requests) == 1 + 11
        assert router.balancer.latency["slow/m"] > 0.5 > router.balancer.latency["fast/m"]


def test_a_stale_latency_figure_is_measured_again() -> None:
    clock = Clock()
    balancer = Balancer(clock=clock)
    group = parse_config(
        '[aliases.pool]\nstrategy = "lowest-latency"\ndeployments = ["a/m", "b/m"]'
    ).model_groups["pool"]
    balancer._sample("a/m", 2.0)  # one slow call (a cold start)
    balancer._sample("b/m", 0.1)
    assert [a for a, _w in balancer.preference(group)] == ["b/m", "a/m"]
    clock.now += 61
    balancer._sample("b/m", 0.1)
    assert [a for a, _w in balancer.preference(group)] == ["a/m", "b/m"]  # a is stale: try it
    balancer._sample("a/m", 0.05)
    assert balancer.latency["a/m"] == 0.05  # the fresh figure replaces the stale one


# --- cooldowns and failover -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_deployment_sits_out_its_cooldown_then_comes_back() -> None:
    router, providers = group_router(
        "least-busy",
        ["a", "b"],
        UpstreamError("overloaded", status=503),
        cooldown=10,
        allowed_fails=1,
    )
    clock = Clock()
    router.balancer.state = LocalState(clock=clock)
    for _ in range(20):  # every call answers: a's failures fail over to b
        events = await collect(router.stream(request(), max_retries=0))
        assert events[0] == TextEvent(text="b answers")
    # Two failures within the minute (more than allowed_fails = 1) put a out of rotation.
    assert len(providers["a"].history) == 2
    assert len(providers["b"].history) == 20
    clock.now += 10.5  # the cooldown is over
    providers["a"].add_reply("a is back")
    providers["a"].replies = providers["a"].replies[-1:]
    seen = Counter()
    for _ in range(60):
        events = await collect(router.stream(request(), max_retries=0))
        seen[events[0]] += 1
    # Ties between a and b are broken at random: a's share is Binomial(60, 1/2), and
    # 10 or more has a chance of failing of about 1 in 10 million (4 of 10 failed 1 in 6).
    assert seen[TextEvent(text="a is back")] >= 10


async def test_a_failure_that_is_the_requests_fault_does_not_count() -> None:
    router, providers = group_router(
        "weighted", ["a"], InvalidRequestError("bad request"), allowed_fails=0
    )
    for _ in range(3):
        with pytest.raises(InvalidRequestError):
            await collect(router.stream(request(), max_retries=0))
    assert router.balancer.state.cooling("a/m") == 0


async def test_when_every_deployment_sits_out_they_are_still_tried() -> None:
    router, providers = group_router(
        "weighted", ["a", "b"], AuthError("revoked", status=401), "b answers", allowed_fails=0
    )
    state = router.balancer.state
    assert isinstance(state, LocalState)
    state.cool("a/m", 60)
    state.cool("b/m", 30)  # ends first, so it goes first
    events = await collect(router.stream(request(), max_retries=0))
    assert events[0] == TextEvent(text="b answers")
    assert calls(providers) == {"a": 0, "b": 1}


async def test_failover_within_a_group_never_happens_after_the_first_event() -> None:
    router, providers = group_router(
        "least-busy",
        ["a", "b"],
        FakeReply(events=["partial"], error=NetworkError("dropped")),
        FakeReply(events=["partial"], error=NetworkError("dropped")),
    )
    with pytest.raises(NetworkError, match="dropped"):
        await collect(router.stream(request(), max_retries=0))
    assert sum(calls(providers).values()) == 1


async def test_a_group_falls_back_only_to_what_the_user_listed() -> None:
    router, providers = group_router(
        "weighted",
        ["a", "b"],
        NetworkError("down"),
        UpstreamError("busy", status=503),
        extra='[fallbacks]\npool = ["backup/m"]',
    )
    backup = FakeProvider("backup answers", connection="backup")
    stranger = FakeProvider("never", connection="stranger")
    router.register_provider("backup", backup)
    router.register_provider("stranger", stranger)
    response = await router.complete(request(), max_retries=0)
    assert response.content == "backup answers" and response.model == "backup/m"
    assert calls(providers) == {"a": 1, "b": 1}
    assert stranger.history == []


async def test_the_last_failure_is_raised_when_every_deployment_fails() -> None:
    router, providers = group_router(
        "weighted", ["a", "b"], NetworkError("a down"), NetworkError("b down")
    )
    with pytest.raises(NetworkError, match="down"):
        await router.complete(request(), max_retries=0)
    assert calls(providers) == {"a": 1, "b": 1}
    assert router.balancer.state.in_flight == {}


async def test_a_call_of_its_own_key_cannot_go_to_a_group() -> None:
    router, providers = group_router("weighted", ["a", "b"])
    with pytest.raises(InvalidRequestError, match="model group"):
        await collect(router.stream(request(), api_key="sk-mine"))
    assert calls(providers) == {"a": 0, "b": 0}


async def test_the_ledger_records_the_deployment_that_answered() -> None:
    class Ledger:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def track(self, events: Any, *, connection: str, model: str, **_: Any) -> Any:
            self.calls.append((connection, model))
            return events

    router, _providers = group_router("weighted", ["a", "b"], NetworkError("down"))
    router.balancer = Balancer(rand=iter([0.9, 0.1]).__next__)  # a first
    router.ledger = ledger = Ledger()
    await collect(router.stream(request(), max_retries=0))
    assert ledger.calls == [("a", "m"), ("b", "m")]
