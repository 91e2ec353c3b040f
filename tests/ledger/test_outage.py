"""A database outage: records wait in memory, then in an owner-only spool, and go in once
it is back; only what is past the spool's bound is lost, and that is counted.

These run on an in-memory store that can be switched off; ``test_postgres_outage.py``
does the same against a real PostgreSQL server that is stopped and started.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from modelport.ledger import CallRecord, Ledger
from modelport.ledger._writer import BackgroundWriter, StoreUnavailable
from tests.ledger._fakes import MemoryStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _records(count: int, start: int = 0) -> list[CallRecord]:
    return [
        CallRecord(started_at=T0 + timedelta(seconds=i), connection="c", model=f"m{i}")
        for i in range(start, start + count)
    ]


def _ledger(store: MemoryStore, spool: Path | None, **options: Any) -> Ledger:
    options.setdefault("retry_min", 0.05)
    options.setdefault("retry_max", 0.1)
    options.setdefault("linger", 0.0)
    options.setdefault("max_batch", 50)
    options.setdefault("max_held", 100)
    return Ledger(store, spool_dir=spool, **options)


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl")) if folder.exists() else []


def test_records_wait_in_memory_then_on_disk_and_go_in_when_the_database_returns(
    tmp_path: Path,
) -> None:
    store = MemoryStore(fail=True)
    spool = tmp_path / "spool"
    ledger = _ledger(store, spool)
    try:
        for record in _records(350):
            ledger.record(record)
        # 100 held in memory, the 250 older ones spilled in files of one batch (50) each.
        _wait_for(lambda: ledger.spooled == 250)
        assert ledger.degraded and ledger.pending == 350 and ledger.dropped == 0
        files = _spool_files(spool)
        assert len(files) == 5
        assert stat.S_IMODE(spool.stat().st_mode) == 0o700
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
        assert ledger.health()["state"] == "degraded"
        assert ledger.health()["error"] == "RuntimeError"

        store.fail = False
        assert ledger.flush(5)
        assert not ledger.degraded and ledger.pending == 0 and ledger.spooled == 0
        assert _spool_files(spool) == []
    finally:
        ledger.close()
    # Every record, once, in the order they came.
    assert [row["model"] for row in store.rows] == [f"m{i}" for i in range(350)]
    assert (ledger.written, ledger.dropped) == (350, 0)
    assert ledger.health()["state"] == "ok"


def test_past_the_spool_bound_records_are_dropped_and_counted(tmp_path: Path) -> None:
    store = MemoryStore(fail=True)
    # Room for two files of 50 records (the longest, m450…m499, at the end).
    one_batch = sum(len(msgspec.json.encode(r)) + 1 for r in _records(50, start=450))
    ledger = _ledger(store, tmp_path / "spool", max_spool_bytes=2 * one_batch)
    try:
        for record in _records(500):
            ledger.record(record)
        _wait_for(lambda: ledger.dropped == 300)
        assert ledger.spooled == 100  # two files
        assert ledger.pending == 200  # and 100 in memory
        assert ledger.dropped == 300
        kept = ledger.pending
        store.fail = False
        assert ledger.flush(5)
    finally:
        ledger.close()
    assert len(store.rows) == kept
    assert len(store.rows) + ledger.dropped == 500


def test_closing_during_an_outage_spools_what_waits_for_the_next_run(tmp_path: Path) -> None:
    store = MemoryStore(fail=True)
    spool = tmp_path / "spool"
    first = _ledger(store, spool)
    for record in _records(30):
        first.record(record)
    _wait_for(lambda: first.degraded)
    first.close(timeout=5)
    assert len(_spool_files(spool)) >= 1 and store.rows == []

    store.fail = False  # the database is back; a new run starts
    second = _ledger(store, spool)
    try:
        second.start()  # adopts the orphaned files without waiting for a first call
        _wait_for(lambda: len(store.rows) == 30)
        assert second.flush(5)
    finally:
        second.close()
    assert [row["model"] for row in store.rows] == [f"m{i}" for i in range(30)]
    assert _spool_files(spool) == []


def test_a_live_ledger_never_takes_another_live_ledgers_files(tmp_path: Path) -> None:
    store = MemoryStore(fail=True)
    spool = tmp_path / "spool"
    first = _ledger(store, spool, max_held=0)
    second = _ledger(MemoryStore(), spool)
    try:
        for record in _records(10):
            first.record(record)
        _wait_for(lambda: first.spooled == 10)
        second.start()
        second.record(_records(1, start=99)[0])
        assert second.flush(5)
        assert second.spooled == 0 and first.spooled == 10
    finally:
        store.fail = False
        first.close()
        second.close()
    assert len(store.rows) == 10


def test_without_a_spool_only_what_fits_in_memory_waits(tmp_path: Path) -> None:
    store = MemoryStore(fail=True)
    ledger = _ledger(store, None, max_held=100)
    try:
        for record in _records(300):
            ledger.record(record)
        _wait_for(lambda: ledger.pending + ledger.dropped == 300 and ledger.pending <= 100)
        assert ledger.dropped == 200
        store.fail = False
        assert ledger.flush(5)
    finally:
        ledger.close()
    assert len(store.rows) == 100


def test_a_file_that_cannot_be_read_back_is_set_aside(tmp_path: Path) -> None:
    store = MemoryStore(fail=True)
    spool = tmp_path / "spool"
    first = _ledger(store, spool, max_held=0)
    for record in _records(20):
        first.record(record)
    _wait_for(lambda: first.spooled == 20)
    first.close(timeout=5)
    broken, *_ = _spool_files(spool)
    broken.write_bytes(b"not json\n")
    store.fail = False
    second = _ledger(store, spool)
    try:
        second.start()
        _wait_for(lambda: _spool_files(spool) == [])
    finally:
        second.close()
    assert len(store.rows) < 20  # the unreadable file's records are not invented
    assert [p.name.endswith(".bad") for p in spool.iterdir()] == [True]


class _PartialSink:
    """Writes two items, refuses one of them, then loses the database on the third."""

    def __init__(self) -> None:
        self.calls = 0
        self.items: list[int] = []

    def __call__(self, batch: Sequence[int]) -> int:
        self.calls += 1
        if self.calls == 1:
            self.items.append(batch[0])
            raise StoreUnavailable("gone", done=2, lost=1)
        self.items.extend(batch)
        return 0


def test_a_batch_cut_short_by_an_outage_is_not_written_twice() -> None:
    sink = _PartialSink()
    writer = BackgroundWriter(sink, linger=0, retry_min=0.05)
    writer.put(1)
    writer.put(2)
    writer.put(3)
    writer.put(4)
    _wait_for(lambda: writer.written == 3)
    writer.close()
    assert sink.items == [1, 3, 4]
    assert (writer.written, writer.failed) == (3, 1)


def test_flush_during_an_outage_returns_false_at_its_timeout() -> None:
    store = MemoryStore(fail=True)
    ledger = _ledger(store, None)
    try:
        ledger.record(_records(1)[0])
        began = time.monotonic()
        assert ledger.flush(0.3) is False
        assert time.monotonic() - began < 2
    finally:
        store.fail = False
        ledger.close()
    assert len(store.rows) == 1


@pytest.mark.parametrize("retries", [3])
def test_retries_back_off_while_the_database_stays_away(retries: int) -> None:
    attempts: list[float] = []
    gate = threading.Event()

    def sink(batch: Sequence[int]) -> int:
        attempts.append(time.monotonic())
        if len(attempts) <= retries:
            raise StoreUnavailable("down")
        gate.set()
        return 0

    writer = BackgroundWriter(sink, linger=0, retry_min=0.05, retry_max=0.2)
    writer.put(1)
    assert gate.wait(5)
    writer.close()
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.18  # 50, 100, 200 ms
    assert writer.written == 1
