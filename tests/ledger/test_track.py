"""Ledger.track over scripted streams, with an in-memory store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelport.errors import NetworkError, RateLimitError
from modelport.events import FinishEvent, StreamEvent, TextEvent, UsageEvent
from modelport.ledger import CallRecord, Ledger
from modelport.types import ModelPrices
from tests.ledger._fakes import MemoryStore, scripted

PRICES = ModelPrices(input=1.0, output=2.0)


async def consume(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def only_row(ledger: Ledger, store: MemoryStore) -> dict[str, Any]:
    assert ledger.flush(5)
    assert len(store.rows) == 1
    return store.rows[0]


@pytest.fixture
def ledger(memory_store: MemoryStore) -> Any:
    ledger = Ledger(memory_store)
    yield ledger
    ledger.close()


async def test_events_pass_through_unchanged(ledger: Ledger, memory_store: MemoryStore) -> None:
    events: list[StreamEvent] = [
        TextEvent(text="Hel"),
        TextEvent(text="lo"),
        UsageEvent(input_tokens=12, output_tokens=3),
        FinishEvent(reason="stop"),
    ]
    seen = await consume(
        ledger.track(scripted(events), connection="local", model="llama", prices=PRICES)
    )
    assert len(seen) == len(events)
    assert all(a is b for a, b in zip(seen, events, strict=True))


async def test_ok_call_is_recorded(ledger: Ledger, memory_store: MemoryStore) -> None:
    before = datetime.now(UTC)
    stream = scripted(
        [
            0.05,
            TextEvent(text="Hi"),
            UsageEvent(input_tokens=100, output_tokens=5),
            0.05,
            UsageEvent(input_tokens=100, output_tokens=40, cache_read_tokens=60),
            FinishEvent(reason="stop"),
        ]
    )
    await consume(
        ledger.track(
            stream, connection="work", model="gpt", prices=PRICES, api="openai", request_id="r-1"
        )
    )
    row = only_row(ledger, memory_store)
    assert row["connection"] == "work"
    assert row["model"] == "gpt"
    assert row["api"] == "openai"
    assert row["request_id"] == "r-1"
    assert row["outcome"] == "ok"
    assert row["error"] is None
    # The latest usage snapshot, not a sum of them.
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (100, 40, 60)
    # 40 fresh input + 60 cache reads (input price, none given) + 40 output.
    assert row["cost"] == pytest.approx((100 * 1.0 + 40 * 2.0) / 1e6)
    # Plausible times: the first event came after the 50 ms pause, the end after 100 ms.
    assert 45 <= row["ttft_ms"] < 1000
    assert row["ttft_ms"] + 45 <= row["latency_ms"] < 2000
    assert before <= row["started_at"] <= datetime.now(UTC)
    assert row["started_at"].tzinfo is not None


async def test_error_is_recorded_and_still_raised(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    error = RateLimitError("Too many requests", connection="work", retry_after=3)
    stream = scripted([UsageEvent(input_tokens=7), error])
    with pytest.raises(RateLimitError):
        await consume(ledger.track(stream, connection="work", model="gpt", prices=PRICES))
    row = only_row(ledger, memory_store)
    assert row["outcome"] == "RateLimitError"
    assert "Too many requests" in row["error"]
    assert row["input_tokens"] == 7
    assert row["ttft_ms"] is None  # a usage event is not a token


async def test_ttft_starts_at_the_first_output_not_a_leading_usage_event(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    # Anthropic streams open with message_start, decoded as a UsageEvent.
    stream = scripted([UsageEvent(input_tokens=7), 0.2, TextEvent(text="Hi")])
    await consume(ledger.track(stream, connection="ant", model="claude", prices=None))
    assert only_row(ledger, memory_store)["ttft_ms"] >= 190


async def test_error_before_any_event_has_no_ttft(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    stream = scripted([NetworkError("Connection refused", url="http://127.0.0.1:9")])
    with pytest.raises(NetworkError):
        await consume(ledger.track(stream, connection="local", model="m", prices=PRICES))
    row = only_row(ledger, memory_store)
    assert row["outcome"] == "NetworkError"
    assert row["ttft_ms"] is None
    assert row["input_tokens"] == row["output_tokens"] == 0
    assert row["cost"] == 0.0


async def test_secrets_never_reach_the_error_excerpt(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
    message = f"upstream said: invalid key {secret} for https://x.test/v1?key=AIzaSECRET&a=1"
    with pytest.raises(RuntimeError):
        await consume(
            ledger.track(scripted([RuntimeError(message)]), connection="c", model="m", prices=None)
        )
    row = only_row(ledger, memory_store)
    assert row["outcome"] == "RuntimeError"
    assert secret not in row["error"]
    assert "AIzaSECRET" not in row["error"]
    assert "upstream said" in row["error"]


async def test_long_error_messages_are_cut(ledger: Ledger, memory_store: MemoryStore) -> None:
    with pytest.raises(ValueError):
        await consume(
            ledger.track(scripted([ValueError("x" * 5000)]), connection="c", model="m", prices=None)
        )
    assert len(only_row(ledger, memory_store)["error"]) <= 500


async def test_consumer_stopping_early_is_cancelled_and_closes_upstream(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    closed: list[bool] = []
    upstream = scripted([TextEvent(text="a"), TextEvent(text="b"), TextEvent(text="c")], closed)
    stream = ledger.track(upstream, connection="c", model="m", prices=PRICES)
    async for _event in stream:
        break
    await stream.aclose()  # what `async with aclosing(...)` or the gateway's disconnect does
    assert closed == [True]
    row = only_row(ledger, memory_store)
    assert row["outcome"] == "cancelled"
    assert row["error"] is None


async def test_task_cancellation_is_cancelled(ledger: Ledger, memory_store: MemoryStore) -> None:
    started = asyncio.Event()

    async def run() -> None:
        async for _event in ledger.track(
            scripted([TextEvent(text="a"), 30.0, TextEvent(text="never")]),
            connection="c",
            model="m",
            prices=PRICES,
        ):
            started.set()

    task = asyncio.create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only_row(ledger, memory_store)["outcome"] == "cancelled"


async def test_unknown_prices_record_tokens_and_no_cost(
    ledger: Ledger, memory_store: MemoryStore
) -> None:
    stream = scripted([UsageEvent(input_tokens=50, output_tokens=9, reasoning_tokens=4)])
    await consume(ledger.track(stream, connection="c", model="m", prices=None))
    row = only_row(ledger, memory_store)
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (50, 9, 4)
    assert row["cost"] is None


async def test_upstream_cost_is_preferred(ledger: Ledger, memory_store: MemoryStore) -> None:
    stream = scripted([UsageEvent(input_tokens=50, output_tokens=9, cost=0.25)])
    await consume(ledger.track(stream, connection="openrouter", model="m", prices=PRICES))
    assert only_row(ledger, memory_store)["cost"] == 0.25


async def test_a_failing_database_never_reaches_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore(fail=True)
    ledger = Ledger(store, retry_min=0.05, retry_max=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="modelport.ledger"):
            for _ in range(3):
                seen = await consume(
                    ledger.track(
                        scripted([TextEvent(text="ok")]), connection="c", model="m", prices=None
                    )
                )
                assert seen == [TextEvent(text="ok")]
            assert not ledger.flush(0.5)  # not written: the records wait
        assert ledger.degraded and ledger.pending == 3 and ledger.dropped == 0
        assert "cannot take records" in caplog.text
        store.fail = False  # the database is back
        assert ledger.flush(5)
        assert not ledger.degraded and ledger.pending == 0
    finally:
        ledger.close()
    assert len(store.rows) == 3 and ledger.dropped == 0


async def test_a_slow_database_does_not_slow_the_stream() -> None:
    """Each insert takes 500 ms; ten 20-event streams must not wait for any of them."""
    store = MemoryStore(delay=0.5)
    ledger = Ledger(store)
    events: list[StreamEvent] = [TextEvent(text=str(i)) for i in range(19)]
    events.append(UsageEvent(input_tokens=1, output_tokens=1))
    try:
        begin = time.perf_counter()
        for _ in range(10):
            assert (
                len(
                    await consume(
                        ledger.track(scripted(events), connection="c", model="m", prices=None)
                    )
                )
                == 20
            )
        elapsed = time.perf_counter() - begin
        assert elapsed < 0.45, f"the consumer waited for the store ({elapsed:.3f} s)"
    finally:
        ledger.close()
    # close() waited for every record, in batches (far fewer inserts than records).
    assert len(store.rows) == 10
    assert len(store.batches) < 10


async def test_a_full_queue_drops_with_a_counted_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    store.gate.clear()
    # No lingering: the writer takes the first record and goes straight to insert.
    ledger = Ledger(store, max_queue=5, linger=0)
    record = CallRecord(started_at=datetime.now(UTC), connection="c", model="m")
    try:
        ledger.record(record)
        assert store.entered.wait(5)  # the writer is now stuck inside its first insert
        with caplog.at_level(logging.WARNING, logger="modelport.ledger"):
            begin = time.perf_counter()
            for _ in range(30):
                ledger.record(record)
            assert time.perf_counter() - begin < 0.1  # never blocks
            assert ledger.dropped == 30 - 5  # all but what the queue holds
            assert "dropped so far" in caplog.text
    finally:
        store.gate.set()
        ledger.close()
    assert len(store.rows) == 1 + 5
    assert len(store.rows) + ledger.dropped == 31


async def test_close_flushes_everything(memory_store: MemoryStore) -> None:
    ledger = Ledger(memory_store)
    start = datetime.now(UTC)
    for i in range(250):
        ledger.record(
            CallRecord(started_at=start + timedelta(seconds=i), connection="c", model=f"m{i}")
        )
    await ledger.aclose()
    assert len(memory_store.rows) == 250
    assert memory_store.closed
    assert [r.model for r in ledger.recent(2)] == ["m249", "m248"]


async def test_record_after_close_is_dropped_not_raised(memory_store: MemoryStore) -> None:
    ledger = Ledger(memory_store)
    ledger.close()
    ledger.close()  # idempotent
    ledger.record(CallRecord(started_at=datetime.now(UTC), connection="c", model="m"))
    assert ledger.dropped == 1
    assert memory_store.rows == []
