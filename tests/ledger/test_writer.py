from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest

from modelport.ledger._writer import BackgroundWriter


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False

    def __call__(self, batch: Sequence[int]) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        self.batches.append(list(batch))

    @property
    def items(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


def test_no_thread_until_the_first_put() -> None:
    writer = BackgroundWriter(Sink(), name="ledger-test-writer")
    assert writer.flush(1)
    assert not any(t.name == "ledger-test-writer" for t in threading.enumerate())
    writer.put(1)
    assert any(t.name == "ledger-test-writer" for t in threading.enumerate())
    writer.close()
    assert not any(t.name == "ledger-test-writer" for t in threading.enumerate())


def test_items_queued_while_busy_go_in_one_batch() -> None:
    sink = Sink()
    sink.gate.clear()
    writer = BackgroundWriter(sink, max_batch=50)
    writer.put(0)
    assert sink.entered.wait(5)  # the thread is inside the first insert
    for i in range(1, 121):
        writer.put(i)
    sink.gate.set()
    assert writer.flush(5)
    writer.close()
    assert sink.items == list(range(121))
    assert [len(b) for b in sink.batches] == [1, 50, 50, 20]
    assert writer.written == 121


def test_a_failing_sink_keeps_the_batch_and_writes_it_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    sink.fail_next = True
    writer = BackgroundWriter(sink, retry_min=0.05)
    with caplog.at_level(logging.WARNING, logger="modelport.ledger"):
        writer.put(1)
        assert writer.flush(5)  # the retry 50 ms later went in
        writer.put(2)
        writer.close()
    assert (writer.failed, writer.dropped, writer.written) == (0, 0, 2)
    assert sink.items == [1, 2]
    assert "cannot take records (RuntimeError: boom)" in caplog.text
    assert "the database is back" in caplog.text


def test_overflow_warns_at_powers_of_ten(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    sink.gate.clear()
    writer = BackgroundWriter(sink, max_queue=1)
    writer.put(0)
    assert sink.entered.wait(5)
    writer.put(1)  # fills the queue
    with caplog.at_level(logging.WARNING, logger="modelport.ledger"):
        for i in range(150):
            writer.put(i)
    assert writer.dropped == 150
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 3  # at 1, 10 and 100
    assert "100 dropped so far" in warnings[-1].getMessage()
    sink.gate.set()
    writer.close()
    assert sink.items == [0, 1]


def test_close_writes_what_is_queued_and_is_idempotent() -> None:
    sink = Sink()
    sink.gate.clear()
    writer = BackgroundWriter(sink)
    for i in range(10):
        writer.put(i)
    threading.Timer(0.05, sink.gate.set).start()
    writer.close()
    writer.close()
    assert sink.items == list(range(10))
    writer.put(99)
    assert writer.dropped == 1
    assert sink.items == list(range(10))


def test_flush_times_out_when_the_sink_hangs() -> None:
    sink = Sink()
    sink.gate.clear()
    writer = BackgroundWriter(sink)
    writer.put(1)
    assert writer.flush(0.05) is False
    sink.gate.set()
    assert writer.flush(5) is True
    writer.close()


def test_records_arriving_within_the_linger_time_share_one_insert() -> None:
    batches: list[int] = []
    writer = BackgroundWriter(lambda batch: batches.append(len(batch)), linger=5.0)
    for item in range(50):
        writer.put(item)
    # flush ends the linger at once: it must not wait out the 5 s.
    started = time.monotonic()
    assert writer.flush(timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert batches == [50]
    writer.close()


def test_without_a_flush_the_batch_is_written_after_the_linger_time() -> None:
    written = threading.Event()
    writer = BackgroundWriter(lambda batch: written.set(), linger=0.05)
    writer.put("one")
    assert written.wait(2.0)
    writer.close()


def test_a_full_batch_ends_the_linger_early() -> None:
    written = threading.Event()
    batches: list[int] = []

    def sink(batch: Sequence[int]) -> None:
        batches.append(len(batch))
        written.set()

    writer = BackgroundWriter(sink, linger=30.0, max_batch=10)
    for item in range(10):
        writer.put(item)
    assert written.wait(5.0)
    assert batches == [10]
    writer.close()


def test_close_ends_the_linger_at_once() -> None:
    items: list[int] = []
    writer = BackgroundWriter(items.extend, linger=30.0)
    writer.put(1)
    time.sleep(0.05)  # the thread has the item and is lingering
    started = time.monotonic()
    writer.close(timeout=5.0)
    assert time.monotonic() - started < 2.0
    assert items == [1]
