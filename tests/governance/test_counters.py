"""The counters on every backend (this process, SQLite, PostgreSQL, Redis): exact under concurrency.

Each test runs the same operations against the three, through
:class:`~modelport.governance.Governance` as the gateway uses it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from modelport.errors import BudgetExceededError, RateLimitError
from modelport.governance import open_governance
from modelport.ledger import CallRecord, open_ledger
from modelport.types import ChatRequest, Message, ModelPrices, Usage
from tests.governance.conftest import fresh_minute

PRICES = ModelPrices(input=1.0, output=2.0)  # dollars per million tokens
ADDRESS = "oai/gpt-test"


def chat(max_tokens: int | None = 100) -> ChatRequest:
    return ChatRequest(
        model=ADDRESS, messages=[Message(role="user", content="hello")], max_tokens=max_tokens
    )


@pytest.fixture
async def governance(backend: tuple[str, str | None, str | None]) -> Any:
    url, redis_url, group = backend
    gate = open_governance(url=url, redis_url=redis_url, workers_group=group, hold_seconds=60)
    yield gate
    await gate.aclose()


def issue(governance: Any, **fields: Any) -> Any:
    key, _ = governance.catalog.create_key(name="t", actor="test", **fields)
    governance.reload()
    return governance.snapshot.keys[-1] if governance.snapshot.keys[-1].id == key.id else key


async def admit(governance: Any, key: Any, request: ChatRequest) -> Any:
    plan = governance.plan(key, ADDRESS)
    charge = governance.chat_charge(plan, request, PRICES, ADDRESS)
    return await governance.admit(plan, charge)


async def test_concurrent_requests_never_spend_past_a_budget(governance: Any) -> None:
    key = issue(governance, team="t1")
    # 2,000 tokens' worth at $2/M output: $0.004 a worst case of ~250 tokens each.
    governance.catalog.set_budget(
        scope="team", subject="t1", period="day", max_cost=0.002, actor="test"
    )
    governance.reload()

    async def one() -> int:
        try:
            lease = await admit(governance, key, chat(max_tokens=200))
        except BudgetExceededError:
            return 0
        await asyncio.sleep(0.01)
        # Every call uses all the output it was allowed: the worst case.
        usage = Usage(input_tokens=5, output_tokens=lease.max_output)
        governance.finish(lease, usage=usage, prices=PRICES, outcome="ok")
        return 1

    admitted = sum(await asyncio.gather(*(one() for _ in range(60))))
    await governance.drain()
    spent = await spent_of(governance, key)
    assert admitted >= 3
    assert spent <= 2_000_000  # nano-dollars: never past $0.002
    assert spent > 1_000_000  # and most of it was usable


async def spent_of(governance: Any, key: Any) -> int:
    """What the budget counters hold as spent, read the way each backend stores it."""
    plan = governance.plan(key, ADDRESS)
    line = plan.budgets[0]
    counters = governance.counters
    kind = type(counters).__name__
    if kind == "MemoryCounters":
        return counters._budgets[line.counter].spent_cost
    if kind == "RedisCounters":
        value = await counters.redis.call("HGET", counters.prefix + line.counter, "sc")
        return int(value)
    import sqlalchemy as sa

    from modelport.governance._schema import budget_counters

    with governance.catalog.engine.connect() as conn:
        query = sa.select(budget_counters.c.spent_cost).where(
            budget_counters.c.counter == line.counter
        )
        return int(conn.execute(query).scalar_one())


async def test_holds_are_released_and_a_failure_costs_nothing(governance: Any) -> None:
    key = issue(governance)
    governance.catalog.set_budget(
        scope="key", subject=key.id, period="total", max_tokens=1_000, actor="test"
    )
    governance.reload()
    first = await admit(governance, key, chat(max_tokens=800))
    # The hold is the worst case: 800 output tokens and the input's bound.
    assert first.tokens > 800
    with pytest.raises(BudgetExceededError) as refused:
        await admit(governance, key, chat(max_tokens=800))
    # What stands in the way is a hold of a request in flight: try again soon.
    assert refused.value.retry_after is not None and refused.value.retry_after <= 5
    governance.finish(first, usage=None, prices=PRICES, outcome="failed")
    await governance.drain()
    second = await admit(governance, key, chat(max_tokens=800))
    assert second.max_output == 800  # the failure cost nothing
    # A stream cut off is charged its hold: the upstream billed what it made.
    governance.finish(second, usage=None, prices=PRICES, outcome="broken")
    await governance.drain()
    with pytest.raises(BudgetExceededError) as spent:
        await admit(governance, key, chat(max_tokens=800))
    assert spent.value.retry_after is None  # a total budget never starts afresh


async def test_requests_and_tokens_per_minute_are_exact(governance: Any) -> None:
    key = issue(governance, team="t2")
    governance.catalog.set_limit(scope="team", subject="t2", rpm=7, tpm=100_000, actor="test")
    governance.reload()
    fresh_minute()

    async def one() -> bool:
        try:
            lease = await admit(governance, key, chat())
        except RateLimitError:
            return False
        governance.finish(
            lease, usage=Usage(input_tokens=5, output_tokens=5), prices=PRICES, outcome="ok"
        )
        return True

    results = await asyncio.gather(*(one() for _ in range(30)))
    assert sum(results) == 7


async def test_tokens_per_minute_clamp_and_refuse(governance: Any) -> None:
    key = issue(governance)
    governance.catalog.set_limit(scope="key", subject=key.id, tpm=300, actor="test")
    governance.reload()
    fresh_minute()
    lease = await admit(governance, key, chat(max_tokens=10_000))
    assert lease.tokens <= 300  # clamped to what the minute has left
    with pytest.raises(RateLimitError, match="tokens"):
        await admit(governance, key, chat(max_tokens=10))


async def test_a_lost_counter_starts_again_from_the_ledger(
    governance: Any, backend: tuple[str, str | None, str | None]
) -> None:
    key = issue(governance, user="ann")
    governance.catalog.set_budget(
        scope="user", subject="ann", period="month", max_cost=1.0, actor="test"
    )
    governance.reload()
    ledger = open_ledger(url=backend[0])
    try:
        ledger.record(
            CallRecord(
                started_at=datetime.now(UTC),
                connection="oai",
                model="gpt-test",
                cost=0.75,
                input_tokens=10,
                output_tokens=10,
                key_id=key.id,
            )
        )
        ledger.flush()
    finally:
        ledger.close()
    await governance.counters.rebuild()  # as if Redis had lost everything
    lease = await admit(governance, key, chat(max_tokens=10_000_000))
    # $0.25 left at $2/M: about 125,000 output tokens, not the 500,000 of a fresh $1.
    assert 100_000 < lease.max_output < 125_000


async def test_a_running_call_keeps_its_hold_past_the_lease_term(
    backend: tuple[str, str | None, str | None],
) -> None:
    # Leases of 0.6 s, renewed every 0.2 s while their calls run.
    url, redis_url, group = backend
    gate = open_governance(url=url, redis_url=redis_url, workers_group=group, hold_seconds=0.6)
    try:
        key = issue(gate)
        gate.catalog.set_budget(
            scope="key", subject=key.id, period="total", max_tokens=1_000, actor="test"
        )
        gate.reload()
        first = await admit(gate, key, chat(max_tokens=800))
        await asyncio.sleep(1.5)  # past two terms: only renewals kept the hold
        with pytest.raises(BudgetExceededError):
            await admit(gate, key, chat(max_tokens=800))
        gate.finish(first, usage=None, prices=PRICES, outcome="failed")
        await gate.drain()
        assert (await admit(gate, key, chat(max_tokens=800))).max_output == 800
    finally:
        await gate.aclose()
