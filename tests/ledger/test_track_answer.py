"""Ledger.track_answer, the non-streamed call's fast path, records what Ledger.track
records over the events the same answer stands for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelport.aggregate import response_events
from modelport.errors import RateLimitError
from modelport.ledger import Ledger
from modelport.types import ChatResponse, ModelPrices, ThinkingPart, ToolCall, Usage
from tests.ledger._fakes import MemoryStore, scripted

PRICES = ModelPrices(input=1.0, output=2.0)
FIELDS = {"connection": "work", "model": "gpt", "prices": PRICES, "api": "openai"}

ANSWERS = [
    ChatResponse(id="a", model="m", content="Hi", usage=Usage(input_tokens=10, output_tokens=2)),
    ChatResponse(
        id="a", model="m", content="Hi", usage=Usage(input_tokens=10, output_tokens=2, cost=0.5)
    ),
    ChatResponse(
        id="a", model="m", content="", usage=Usage()
    ),  # no output, no usage: no TTFT, zero tokens
    ChatResponse(
        id="a",
        model="m",
        tool_calls=[ToolCall(id="c1", name="f", arguments="{}")],
        usage=Usage(input_tokens=5, output_tokens=7, cache_read_tokens=3, reasoning_tokens=4),
    ),
    ChatResponse(
        id="a", model="m", thinking=[ThinkingPart(text="hm")], usage=Usage(output_tokens=1)
    ),
]


def _rows(ledger: Ledger, store: MemoryStore) -> list[dict[str, Any]]:
    assert ledger.flush(5)
    rows = [dict(row) for row in store.rows]
    store.rows.clear()
    for row in rows:
        # Timing differs between two calls; whether there was a first output does not.
        row.pop("started_at")
        row.pop("latency_ms")
        row["ttft_ms"] = row["ttft_ms"] is not None
    return rows


async def _answer(response: ChatResponse) -> ChatResponse:
    return response


@pytest.mark.parametrize("response", ANSWERS)
async def test_same_row_as_the_events(memory_store: MemoryStore, response: ChatResponse) -> None:
    ledger = Ledger(memory_store)
    try:
        events = ledger.track(scripted(response_events(response)), **FIELDS, request_id="r")
        async for _ in events:
            pass
        by_events = _rows(ledger, memory_store)
        got = await ledger.track_answer(_answer(response), **FIELDS, request_id="r", key_id=None)
        assert got is response
        assert _rows(ledger, memory_store) == by_events
    finally:
        ledger.close()


async def test_an_error_is_recorded_and_raised(memory_store: MemoryStore) -> None:
    ledger = Ledger(memory_store)

    async def refused() -> ChatResponse:
        raise RateLimitError("slow down")

    try:
        with pytest.raises(RateLimitError):
            await ledger.track_answer(refused(), **FIELDS, key_id="vk-1")
        (row,) = _rows(ledger, memory_store)
        assert (row["outcome"], row["key_id"], row["input_tokens"]) == ("RateLimitError", "vk-1", 0)
        assert "slow down" in row["error"]
    finally:
        ledger.close()


async def test_a_cancelled_call_is_recorded_with_its_reason(memory_store: MemoryStore) -> None:
    ledger = Ledger(memory_store)
    try:
        task = asyncio.ensure_future(ledger.track_answer(asyncio.sleep(30), **FIELDS))
        await asyncio.sleep(0.01)
        task.cancel(msg="the gateway is shutting down")
        with pytest.raises(asyncio.CancelledError):
            await task
        (row,) = _rows(ledger, memory_store)
        assert (row["outcome"], row["error"]) == ("cancelled", "the gateway is shutting down")
    finally:
        ledger.close()
