"""The Responses API answers kept for ``previous_response_id``: bounded in time and count,
in the ledger's database (SQLite and PostgreSQL) and in the gateway's memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelport.ledger import open_ledger
from modelport.ledger._responses import SQLResponseStore
from modelport.ledger._store import SQLStore
from modelport.server._response_store import ResponseStore
from modelport.types import Message


def test_kept_answers_are_read_back_until_their_time_is_up(database_url: str) -> None:
    ledger = open_ledger(url=database_url)
    try:
        store = ledger.response_store()
        assert isinstance(store, SQLResponseStore)
        store.put("resp_1", b"[1]")
        store.put("resp_1", b"[2]")  # kept again: the newer wins
        assert store.get("resp_1") == b"[2]"
        assert store.get("resp_unknown") is None

        expired = SQLResponseStore(store._engine, keep_for=timedelta(0))
        assert expired.get("resp_1") is None
        expired.prune(datetime.now(UTC) + timedelta(seconds=1))
        assert store.get("resp_1") is None  # pruned, not only hidden
    finally:
        ledger.close()


def test_past_the_row_bound_the_oldest_go(database_url: str) -> None:
    tables = SQLStore(database_url)
    try:
        store = SQLResponseStore(tables.engine, max_rows=3)
        for n in range(5):
            store.put(f"resp_{n}", b"[]")
        store.prune()
        assert [store.get(f"resp_{n}") is not None for n in range(5)] == [
            False,
            False,
            True,
            True,
            True,
        ]
    finally:
        tables.close()


async def test_memory_forgets_the_oldest_past_its_bytes() -> None:
    message = Message(role="user", content="x" * 100)
    store = ResponseStore(max_memory_bytes=500)
    for n in range(6):
        store.save(f"resp_{n}", [message])
    assert await store.load("resp_0") is None
    assert await store.load("resp_5") == [message]


async def test_memory_forgets_what_is_too_old() -> None:
    store = ResponseStore(keep_for=0.0)
    store.save("resp_1", [Message(role="user", content="x")])
    assert await store.load("resp_1") is None


async def test_a_database_that_fails_costs_only_the_continuation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> object:
        raise RuntimeError("database down")

    store = ResponseStore(broken)
    store.save("resp_1", [Message(role="user", content="x")])
    await store.aclose()
    assert await store.load("resp_1") is not None  # memory still has it
    assert await store.load("resp_2") is None
    assert "could not" in caplog.text
