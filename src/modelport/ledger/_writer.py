"""The background writer: records go into a bounded queue, a thread inserts them,
and an unreachable database costs a wait, not the records.

The request path only ever appends to a deque; the database is touched by
one daemon thread that wakes once for a batch, lets records gather for up to
``linger`` seconds and inserts them together, so a slow or unreachable
database never slows a stream.

Both halves are about the GIL. A transaction per record kept the thread busy
enough to take the GIL from the event loop (the gateway served 1,538 instead
of 2,134 req/s); and a :class:`queue.Queue` woke the thread for every record
it gathered, a GIL hand-over per request even while it lingered.

**Outages.** When the sink raises (the database is down, unreachable or
locked) the batch is not lost: it goes to a :class:`Backlog` (``max_held``
records in memory, then the :class:`~modelport.ledger._spool.Spool` on disk,
bounded by its size), and the thread tries again after ``retry_min`` seconds,
doubling up to ``retry_max``. New records queue behind the backlog, so the
database receives them in the order they came. Once the backlog is written
the writer is healthy again. Records are lost only past the spool's bound, or
when the queue itself fills faster than the thread drains it; both are
counted in :attr:`BackgroundWriter.dropped`. Closing during an outage spills
what is held to the spool, where the next run finds it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from modelport.ledger._spool import Spool

__all__ = ["Backlog", "BackgroundWriter", "StoreUnavailable"]

logger = logging.getLogger("modelport.ledger")

_STOP = object()


class StoreUnavailable(Exception):
    """Raised by a sink that could not finish a batch because its store went away.

    ``done`` items of the batch were dealt with first (written, or refused one by
    one, ``lost`` of them); the rest are kept and written later.
    """

    def __init__(self, reason: str, *, done: int = 0, lost: int = 0) -> None:
        super().__init__(reason)
        self.done = done
        self.lost = lost


class Backlog:
    """What waits for the store during an outage, oldest first.

    Up to ``max_held`` items stay in memory; past that the oldest go to
    ``spool`` a batch at a time. What the spool refuses (it is full, or there
    is none) is handed to ``drop``.
    """

    def __init__(
        self,
        *,
        max_held: int,
        max_batch: int,
        spool: Spool | None,
        drop: Callable[[int, str], None],
    ) -> None:
        self.held: deque[Any] = deque()
        self.spool = spool
        self._max_held = max_held
        self._max_batch = max_batch
        self._drop = drop

    def __len__(self) -> int:
        return len(self.held) + (self.spool.items if self.spool is not None else 0)

    def __bool__(self) -> bool:
        return bool(self.held) or bool(self.spool)

    def keep(self, items: Iterable[Any]) -> None:
        """Hold ``items`` (newest last); past ``max_held``, spill the oldest, a whole
        batch to a file (one transaction when it is written back)."""
        self.held.extend(items)
        while len(self.held) > self._max_held:
            count = min(self._max_batch, len(self.held))
            self._spill([self.held.popleft() for _ in range(count)])

    def put_back(self, items: Sequence[Any]) -> None:
        """Return ``items`` (the oldest waiting) to the front, where they came from."""
        self.held.extendleft(reversed(items))

    def spill_all(self) -> None:
        """Move everything held to the spool (closing while the store is still away)."""
        while self.held:
            count = min(self._max_batch, len(self.held))
            self._spill([self.held.popleft() for _ in range(count)])

    def _spill(self, batch: list[Any]) -> None:
        if self.spool is None:
            self._drop(len(batch), "the database is unreachable and no spool is configured")
            return
        try:
            kept = self.spool.put(batch)
        except OSError:
            logger.warning("usage ledger could not write its spool", exc_info=True)
            kept = False
        if not kept:
            self._drop(len(batch), f"the spool in {self.spool.folder} is full")


class BackgroundWriter:
    """Feeds ``sink`` batches of items from a daemon thread.

    ``sink`` writes a batch and returns how many of its items it refused
    (``None``: none). Raising means the store cannot take the batch now:
    the items wait in the backlog (see the module docstring); a
    :class:`StoreUnavailable` says how much of the batch went in first.

    ``put`` never blocks and never raises. ``flush`` waits for everything put
    so far to be written; ``close`` writes what it can, spills the rest and
    stops the thread. The thread starts on the first ``put`` (or
    :meth:`start`), so a ledger opened only to be queried starts none.
    """

    def __init__(
        self,
        sink: Callable[[Sequence[Any]], int | None],
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        linger: float = 1.0,
        max_held: int = 1_000,
        spool: Spool | None = None,
        retry_min: float = 0.5,
        retry_max: float = 5.0,
        name: str = "modelport-ledger",
    ) -> None:
        self._sink = sink
        # Items, flush markers (Events) and the stop marker, in order.
        self._items: deque[Any] = deque()
        #: Set when something is queued: the thread waits on this between batches.
        self._queued = threading.Event()
        #: Set to end the linger (or an outage's wait) early: a full batch, a flush, close.
        self._hurry = threading.Event()
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._linger = linger
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._max_held = max_held
        self.backlog = Backlog(max_held=max_held, max_batch=max_batch, spool=spool, drop=self._drop)
        #: Flush markers waiting for the backlog to be written.
        self._waiting: list[threading.Event] = []
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._retry_delay = retry_min
        self._retry_at = 0.0
        #: Wall-clock time the store became unreachable (None: it is fine).
        self.down_since: float | None = None
        #: Why, in one line (the exception's class and first line; never a password).
        self.down_reason: str | None = None
        #: Items refused because the queue or the spool was full.
        self.dropped = 0
        #: Items the sink refused one by one (a value the database will never take).
        self.failed = 0
        #: Items the sink accepted.
        self.written = 0

    @property
    def pending(self) -> int:
        """Items queued or waiting in the backlog, not yet written."""
        return len(self.backlog) + len(self._items)  # (a queued flush marker counts too)

    def start(self) -> None:
        """Start the thread now (it writes what a previous run left in the spool)."""
        if self._thread is None and not self._closed:
            self._start()

    def put(self, item: Any) -> None:
        """Queue ``item`` for writing; drop it (and count that) if the queue is full."""
        if self._closed:
            self._drop(1, "the ledger is closed")
            return
        if self._thread is None:
            self._start()
        items = self._items
        if len(items) >= self._max_queue:
            self._drop(1, "the write queue is full (is the database slow or unreachable?)")
            return
        items.append(item)
        # Event.set() takes a lock and wakes the thread: only the first record of a
        # batch (and the one that fills it) pays for that.
        if len(items) >= self._max_batch and not self._hurry.is_set():
            self._hurry.set()
        if not self._queued.is_set():
            self._queued.set()

    def _drop(self, count: int, why: str) -> None:
        before = self.dropped
        self.dropped += count
        # One line at 1, 10, 100, … drops: visible without flooding the log.
        if any(_is_power_of_ten(n) for n in range(before + 1, self.dropped + 1)):
            logger.warning(
                "usage ledger dropped %d record(s): %s; %d dropped so far",
                count,
                why,
                self.dropped,
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _enqueue_marker(self, marker: object) -> None:
        self._items.append(marker)
        self._hurry.set()
        self._queued.set()

    # --- the thread -----------------------------------------------------

    def _run(self) -> None:
        spool = self.backlog.spool
        if spool is not None:
            try:
                spool.adopt()
            except OSError:
                logger.warning("usage ledger could not read its spool", exc_info=True)
        while True:
            if self.down_since is None and not self.backlog:
                self._queued.wait()
                self._hurry.wait(self._linger)
            else:
                # An outage: wake for the next attempt, or early to spill a full batch.
                self._hurry.wait(max(0.0, self._retry_at - time.monotonic()))
            # Clear before draining: whatever is appended from here on either is
            # drained below or sets the flags again for the next round.
            self._queued.clear()
            self._hurry.clear()
            if self._cycle():
                return

    def _cycle(self, *, final: bool = False) -> bool:
        """Write the backlog if an attempt is due, then what is queued; True once told to stop.

        A flush marker is set only after every item before it is written.
        """
        attempted = False
        if self.backlog and (self.down_since is None or time.monotonic() >= self._retry_at):
            self._write_backlog()
            attempted = True
        stop = final
        batch: list[Any] = []
        items = self._items
        while items:
            item = items.popleft()
            if item is _STOP:
                stop = True
                continue  # a put that raced with close() may still follow
            if isinstance(item, threading.Event):
                self._deliver(batch)
                batch = []
                self._waiting.append(item)
                self._release_markers()
                continue
            batch.append(item)
            if len(batch) >= self._max_batch:
                self._deliver(batch)
                batch = []
        self._deliver(batch)
        self._release_markers()
        if not stop:
            return False
        if self.backlog and not attempted:
            self._write_backlog()  # one last try before giving the rest to the spool
        if self.backlog.held:
            self.backlog.spill_all()
        for marker in self._waiting:  # nobody may wait for ever on a closed writer
            marker.set()
        self._waiting.clear()
        return True

    def _deliver(self, batch: list[Any]) -> None:
        """Write ``batch``, or queue it behind the backlog while the store is away."""
        if not batch:
            return
        if self.down_since is not None or self.backlog:
            self.backlog.keep(batch)
            return
        rest = self._write(batch)
        if rest:
            self.backlog.keep(rest)

    def _write_backlog(self) -> None:
        """Write what waited, oldest first (the spool, then memory); stop at a failure."""
        backlog = self.backlog
        spool = backlog.spool
        while spool:
            oldest = spool.oldest()
            if oldest is None:
                break
            _path, items = oldest
            rest = self._write(items)
            if rest and len(rest) == len(items):
                return  # still away; the file stays for the next attempt
            spool.remove_oldest()
            if rest:
                backlog.put_back(rest)
                return
        while backlog.held:
            count = min(self._max_batch, len(backlog.held))
            batch = [backlog.held.popleft() for _ in range(count)]
            rest = self._write(batch)
            if rest:
                backlog.put_back(rest)
                return
        self._came_back()

    def _write(self, batch: Sequence[Any]) -> list[Any]:
        """Hand ``batch`` to the sink; what it could not take now (empty: all dealt with)."""
        try:
            lost = self._sink(batch) or 0
        except Exception as exc:
            done = exc.done if isinstance(exc, StoreUnavailable) else 0
            lost = exc.lost if isinstance(exc, StoreUnavailable) else 0
            self.failed += lost
            self.written += done - lost
            self._went_down(exc)
            return list(batch[done:])
        # The sink may save what it can of a batch and say how many it refused.
        self.failed += lost
        self.written += len(batch) - lost
        if lost:
            logger.warning(
                "usage ledger: the database refused %d record(s); %d so far", lost, self.failed
            )
        return []

    def _went_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = time.time()
            self._retry_delay = self._retry_min
            self.down_reason = _reason(exc)
            logger.warning(
                "usage ledger: the database cannot take records (%s); keeping them "
                "(%d in memory, then on disk) and trying again",
                self.down_reason,
                self._max_held,
            )
        else:
            self._retry_delay = min(self._retry_max, self._retry_delay * 2)
        self._retry_at = now + self._retry_delay

    def _came_back(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "usage ledger: the database is back after %.1f s; the records kept meanwhile "
                "are written (%d written so far)",
                time.time() - self.down_since,
                self.written,
            )
        self.down_since = None
        self.down_reason = None
        self._retry_delay = self._retry_min

    def _release_markers(self) -> None:
        if self._waiting and self.down_since is None and not self.backlog:
            for marker in self._waiting:
                marker.set()
            self._waiting.clear()

    # --- waiting and closing --------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far is written; False on timeout or while the
        store is away (what waits is then in the backlog)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self.backlog
        marker = threading.Event()
        self._enqueue_marker(marker)
        return marker.wait(timeout) and self.down_since is None and not self.backlog

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued (or spill it, if the store is away), then stop the thread.

        Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        self._enqueue_marker(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "usage ledger writer did not finish within %s s; %d record(s) unwritten",
                timeout,
                self.pending,
            )
            return
        # A put that raced with close() may have landed behind the stop marker.
        if self._items:
            self._cycle(final=True)
        if self.backlog.spool is not None:
            self.backlog.spool.release()


def _reason(exc: BaseException) -> str:
    """``Class: first line`` of the error behind ``exc`` (the driver's, where there is one)."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    cause = getattr(cause, "orig", None) or cause
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__


def _is_power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1
