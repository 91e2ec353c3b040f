"""The usage ledger: one row per call, with tokens, cost, latency and outcome.

>>> ledger = open_ledger(config)            # SQLite under MODELPORT_HOME, or database_url
>>> async for event in ledger.track(provider.stream(request), connection="local",
...                                  model="llama3.1:8b", prices=info.prices):
...     ...
>>> ledger.summary(since=timedelta(days=7), by="model")

:meth:`Ledger.track` wraps a stream and re-yields its events untouched; when the
stream ends — finished, failed or abandoned — it queues the call's row (the
values of a :class:`CallRecord`, as a tuple in its field order) for a
background thread, so writing never slows a stream and a database failure
never reaches the caller. SQLAlchemy is imported only when a
ledger is opened, keeping ``import modelport.ledger`` light.

Token convention (as in :class:`~modelport.types.Usage`): ``input_tokens``
includes cache reads and writes, ``output_tokens`` includes reasoning.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any, Literal, Protocol

import msgspec
from msgspec.structs import astuple

from modelport._redact import public_message
from modelport.events import (
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.ledger._writer import BackgroundWriter
from modelport.types import ChatResponse, ModelPrices, Usage

__all__ = [
    "CallRecord",
    "Ledger",
    "LedgerStore",
    "UsagePoint",
    "UsageSummary",
    "compute_cost",
    "default_database_url",
    "ensure_ledger_table",
    "make_engine",
    "open_ledger",
    "spend_by_key",
    "spend_of_keys",
]

logger = logging.getLogger("modelport.ledger")

GroupBy = Literal["model", "connection"]
Bucket = Literal["hour", "day"]


class CallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One call as the ledger keeps it.

    ``outcome`` is ``"ok"``, ``"cancelled"`` (the caller went away), ``"cache_hit"``
    (the gateway answered from its response cache: no tokens, a cost of zero) or
    the class name of the error raised (``"RateLimitError"``); ``error`` is an excerpt of
    its message without credentials (:func:`~modelport._redact.public_message`).
    ``ttft_ms`` runs to the first output (text, reasoning or a tool call) and is
    ``None`` when none arrived; ``cost`` is ``None`` when the model's prices are unknown.
    ``key_id`` names the gateway's virtual key that made the call, if one did.
    """

    started_at: datetime
    connection: str
    model: str
    api: str = "python"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    outcome: str = "ok"
    error: str | None = None
    request_id: str | None = None
    key_id: str | None = None


#: A record's fields in order: the ledger queues each call as a tuple of its values in
#: this order (the table's columns, ``tests/ledger/test_batch_values.py`` checks).
_FIELDS: tuple[str, ...] = CallRecord.__struct_fields__


class UsageSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Totals for one model (``connection/model``) or one connection.

    ``errors`` counts failed calls (cancelled ones are not errors). ``cost``
    adds up the calls whose cost is known and is ``None`` if none is.
    """

    key: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: float | None
    avg_latency_ms: float | None
    avg_ttft_ms: float | None


class UsagePoint(msgspec.Struct, frozen=True, kw_only=True):
    """Totals for one model or connection (``key``) in one hour or day.

    ``bucket`` is the bucket's start in UTC, ISO 8601 (``2026-05-01T13:00:00Z``).
    """

    bucket: str
    key: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float | None


class LedgerStore(Protocol):
    """Where records go; :class:`modelport.ledger._store.SQLStore` is the one we ship."""

    def insert(self, rows: Sequence[dict[str, Any]]) -> int | None:
        """Write ``rows``; return how many were lost (``None`` or 0: none), or raise."""
        ...

    def recent(self, limit: int) -> list[dict[str, Any]]: ...
    def summary(self, since: datetime | None, by: GroupBy) -> list[dict[str, Any]]: ...
    def timeseries(
        self, since: datetime | None, by: GroupBy, bucket: Bucket
    ) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def compute_cost(usage: Usage, prices: ModelPrices | None) -> float | None:
    """The call's cost in US dollars.

    The upstream's own figure (``usage.cost``, e.g. OpenRouter's) wins. Otherwise
    it comes from ``prices`` (per million tokens): uncached input at the input
    price, cache reads and writes at their own prices (the input price where
    those are unknown), output (reasoning included) at the output price.
    ``None`` when the model's prices are unknown, or a price the call needs is.
    """
    if usage.cost is not None:
        return usage.cost
    if prices is None:
        return None
    input_price = prices.input
    output_price = prices.output
    if input_price is None and output_price is None:
        return None
    # Straight-line rather than a loop over (tokens, price) pairs: this runs on every
    # call, on the event loop. The sum is taken in the same order as it always was.
    read = usage.cache_read_tokens
    write = usage.cache_write_tokens
    output = usage.output_tokens
    uncached = usage.input_tokens - read - write
    total = 0.0
    if uncached > 0:
        if input_price is None:
            return None
        total += uncached * input_price
    if read:
        price = input_price if prices.cache_read is None else prices.cache_read
        if price is None:
            return None
        total += read * price
    if write:
        price = input_price if prices.cache_write is None else prices.cache_write
        if price is None:
            return None
        total += write * price
    if output:
        if output_price is None:
            return None
        total += output * output_price
    return total / 1_000_000


_MAX_ERROR = 500


def _excerpt(exc: BaseException) -> str:
    text = public_message(exc)
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _cancel_reason(exc: BaseException) -> str | None:
    """What a cancellation says of why, if it says (the gateway's shutdown does)."""
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0][:_MAX_ERROR]
    return None


_NO_USAGE = Usage()

# What a person sees as the model answering: the first of these starts the TTFT clock.
_OUTPUT_EVENTS = (TextEvent, ReasoningEvent, ToolCallStartEvent, ToolCallDeltaEvent)


class Ledger:
    """Records calls in the background and answers questions about them.

    Build one with :func:`open_ledger`. Close it (``close()``/``aclose()``, or
    ``with``/``async with``) to write what is still queued. ``linger`` is how
    long the writer gathers records into one batch before inserting them.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        linger: float = 1.0,
        max_held: int = 1_000,
        spool_dir: Path | None = None,
        max_spool_bytes: int = 64 * 1024 * 1024,
        retry_min: float = 0.5,
        retry_max: float = 5.0,
    ) -> None:
        self._store = store
        spool = None
        if spool_dir is not None:
            from modelport.ledger._spool import Spool

            encode = msgspec.json.Encoder().encode
            decode = msgspec.json.Decoder(CallRecord).decode
            # A row is spooled as the CallRecord it stands for (the same JSON object, key
            # for key), so spools written before rows were tuples are read alike.
            spool = Spool(
                spool_dir,
                encode=lambda row: encode(dict(zip(_FIELDS, row, strict=True))),
                decode=lambda line: astuple(decode(line)),
                max_bytes=max_spool_bytes,
            )
        self._writer = BackgroundWriter(
            self._insert,
            max_queue=max_queue,
            max_batch=max_batch,
            linger=linger,
            max_held=max_held,
            spool=spool,
            retry_min=retry_min,
            retry_max=retry_max,
        )

    def _insert(self, rows: Sequence[tuple[Any, ...]]) -> int | None:
        # Runs on the writer thread: the conversion costs the request path nothing.
        # The store answers how many rows it had to give up (None: all written).
        insert_values = getattr(self._store, "insert_values", None)
        if insert_values is not None:  # the SQLStore takes the rows as they were queued
            return insert_values(rows)
        return self._store.insert([dict(zip(_FIELDS, row, strict=True)) for row in rows])

    @property
    def database(self) -> str | None:
        """Where the records go, password masked (for ``doctor`` and the web UI)."""
        return getattr(self._store, "display_url", None)

    def response_store(self) -> Any:
        """Where the gateway keeps Responses API answers for ``previous_response_id``: a
        :class:`~modelport.ledger._responses.SQLResponseStore` on this ledger's database,
        or ``None`` for a store without one."""
        engine = getattr(self._store, "engine", None)
        if engine is None:
            return None
        from modelport.ledger._responses import SQLResponseStore

        return SQLResponseStore(engine)

    @property
    def dropped(self) -> int:
        """Records lost: the write queue or the spool was full, or the database refused them."""
        return self._writer.dropped + self._writer.failed

    @property
    def failed(self) -> int:
        """Of :attr:`dropped`, the records the database refused (the rest found no room)."""
        return self._writer.failed

    @property
    def pending(self) -> int:
        """Records not written yet: queued, or waiting out an outage (in memory or spooled)."""
        return self._writer.pending

    @property
    def spooled(self) -> int:
        """Of :attr:`pending`, the records kept on disk."""
        spool = self._writer.backlog.spool
        return spool.items if spool is not None else 0

    @property
    def degraded(self) -> bool:
        """True while the database cannot take records (they wait; see :meth:`health`)."""
        return self._writer.down_since is not None

    def health(self) -> dict[str, Any]:
        """The ledger's state for ``/health``: ``ok`` or ``degraded``, and its counts.

        No database URL and no error text (``/health`` needs no key): the error's
        class only; the log has the rest.
        """
        writer = self._writer
        reason = writer.down_reason
        return {
            "state": "degraded" if writer.down_since is not None else "ok",
            "since": writer.down_since,
            "error": reason.partition(":")[0] if reason else None,
            "pending": writer.pending,
            "spooled": self.spooled,
            "written": writer.written,
            "dropped": self.dropped,
        }

    @property
    def written(self) -> int:
        """Records the database accepted."""
        return self._writer.written

    # -- recording ---------------------------------------------------------------------------

    def record(self, record: CallRecord) -> None:
        """Queue ``record`` for writing. Never blocks and never raises."""
        self._put(astuple(record))

    def _put(self, row: tuple[Any, ...]) -> None:
        # What the writer queues: a record's values, in its fields' (the table's) order.
        try:
            self._writer.put(row)
        except Exception:  # the caller's call succeeded; bookkeeping must not fail it
            logger.warning("usage ledger could not queue a record", exc_info=True)

    async def track(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        connection: str,
        model: str,
        prices: ModelPrices | None,
        api: str = "python",
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Re-yield ``events`` unchanged and record the call once they end.

        The outcome is ``ok`` when the stream is exhausted, ``cancelled`` when
        the consumer stops early or its task is cancelled, otherwise the
        error's class name (the error still propagates). The usage recorded is
        the last :class:`~modelport.events.UsageEvent` seen.
        """
        started_at = datetime.now(UTC)
        start = perf_counter()
        first_at: float | None = None
        usage: UsageEvent | None = None
        outcome = "ok"
        error: str | None = None
        try:
            async for event in events:
                # TTFT is the first output, not a leading usage event (Anthropic's message_start).
                if first_at is None and isinstance(event, _OUTPUT_EVENTS):
                    first_at = perf_counter()
                if isinstance(event, UsageEvent):
                    usage = event
                yield event
        except (GeneratorExit, asyncio.CancelledError) as exc:
            outcome = "cancelled"
            error = _cancel_reason(exc)
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            error = _excerpt(exc)
            raise
        finally:
            latency_ms = (perf_counter() - start) * 1000
            self._record_call(
                started_at,
                connection,
                model,
                api,
                usage,
                prices,
                latency_ms,
                None if first_at is None else (first_at - start) * 1000,
                outcome,
                error,
                request_id,
                key_id,
            )
            # Abandoning us abandons the upstream too (its finally closes the response).
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def track_answer(
        self,
        answer: Awaitable[ChatResponse],
        *,
        connection: str,
        model: str,
        prices: ModelPrices | None,
        api: str = "python",
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> ChatResponse:
        """Await a non-streamed ``answer`` and record the call, as :meth:`track` would
        record the events the answer stands for.

        The same row as :meth:`track` over
        :func:`~modelport.aggregate.response_events` (outcome, usage, latency, TTFT
        at the answer's arrival when it has output), without two async generators
        and the events a plain call never needs.
        """
        started_at = datetime.now(UTC)
        start = perf_counter()
        outcome = "ok"
        error: str | None = None
        usage: Usage | None = None
        ttft_ms: float | None = None
        try:
            response = await answer
            if response.content or response.thinking or response.reasoning or response.tool_calls:
                ttft_ms = (perf_counter() - start) * 1000
            if response.usage != _NO_USAGE:
                usage = response.usage
            return response
        except asyncio.CancelledError as exc:
            outcome = "cancelled"
            error = _cancel_reason(exc)
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            error = _excerpt(exc)
            raise
        finally:
            self._record_call(
                started_at,
                connection,
                model,
                api,
                usage,
                prices,
                (perf_counter() - start) * 1000,
                ttft_ms,
                outcome,
                error,
                request_id,
                key_id,
            )

    def _record_call(
        self,
        started_at: datetime,
        connection: str,
        model: str,
        api: str,
        usage: Usage | UsageEvent | None,
        prices: ModelPrices | None,
        latency_ms: float,
        ttft_ms: float | None,
        outcome: str,
        error: str | None,
        request_id: str | None,
        key_id: str | None,
    ) -> None:
        # The row goes straight to the queue as a tuple in CallRecord's field order:
        # building the CallRecord (16 keywords) cost the event loop ~1.2 µs a call.
        try:
            tokens = _NO_USAGE if usage is None else usage
            row = (
                started_at,
                connection,
                model,
                api,
                tokens.input_tokens,
                tokens.output_tokens,
                tokens.cache_read_tokens,
                tokens.cache_write_tokens,
                tokens.reasoning_tokens,
                compute_cost(tokens, prices),
                latency_ms,
                ttft_ms,
                outcome,
                error,
                request_id,
                key_id,
            )
            self._writer.put(row)
        except Exception:  # the caller's call succeeded; bookkeeping must not fail it
            logger.warning("usage ledger could not record a call", exc_info=True)

    # -- queries -----------------------------------------------------------------------------

    def summary(
        self, since: datetime | timedelta | None = None, by: GroupBy = "model"
    ) -> list[UsageSummary]:
        """Totals per model or connection, busiest first; ``since`` a time or an age."""
        if by not in ("model", "connection"):
            raise ValueError(f"by must be 'model' or 'connection', not {by!r}")
        if isinstance(since, timedelta):
            since = datetime.now(UTC) - since
        return [_summary_from_row(row) for row in self._store.summary(since, by)]

    def timeseries(
        self,
        since: datetime | timedelta | None = None,
        by: GroupBy = "model",
        bucket: Bucket = "hour",
    ) -> list[UsagePoint]:
        """Totals per hour or day (UTC) and model or connection, oldest first."""
        if by not in ("model", "connection"):
            raise ValueError(f"by must be 'model' or 'connection', not {by!r}")
        if bucket not in ("hour", "day"):
            raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
        if isinstance(since, timedelta):
            since = datetime.now(UTC) - since
        return [_point_from_row(row) for row in self._store.timeseries(since, by, bucket)]

    async def atimeseries(
        self,
        since: datetime | timedelta | None = None,
        by: GroupBy = "model",
        bucket: Bucket = "hour",
    ) -> list[UsagePoint]:
        """:meth:`timeseries` on a worker thread, for the gateway."""
        return await asyncio.to_thread(self.timeseries, since, by, bucket)

    def recent(self, limit: int = 50) -> list[CallRecord]:
        """The latest ``limit`` calls, newest first."""
        return [_record_from_row(row) for row in self._store.recent(limit)]

    async def asummary(
        self, since: datetime | timedelta | None = None, by: GroupBy = "model"
    ) -> list[UsageSummary]:
        """:meth:`summary` on a worker thread, for the gateway."""
        return await asyncio.to_thread(self.summary, since, by)

    async def arecent(self, limit: int = 50) -> list[CallRecord]:
        """:meth:`recent` on a worker thread, for the gateway."""
        return await asyncio.to_thread(self.recent, limit)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer now, so that records a previous run spooled are written even
        before the first call (the gateway does this; otherwise the first record does)."""
        self._writer.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record so far is written; False if ``timeout`` ran out, or
        the database is unreachable (the records wait, see :attr:`degraded`)."""
        return self._writer.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the writer and close the database connections.

        During an outage what is waiting goes to the spool (when there is one),
        where the next ledger on this database writes it. ``timeout`` bounds
        the wait for a database that hangs, so shutting down a gateway never
        hangs with it (what is still queued is then lost).
        """
        try:
            self._writer.close(timeout)
        finally:
            self._store.close()

    async def aclose(self, timeout: float | None = 30.0) -> None:
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _summary_from_row(row: dict[str, Any]) -> UsageSummary:
    # PostgreSQL returns SUM(bigint) and AVG as Decimal; normalise to int/float.
    return UsageSummary(
        key=row["key"],
        calls=int(row["calls"]),
        errors=int(row["errors"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        cost=_float_or_none(row["cost"]),
        avg_latency_ms=_float_or_none(row["avg_latency_ms"]),
        avg_ttft_ms=_float_or_none(row["avg_ttft_ms"]),
    )


def _point_from_row(row: dict[str, Any]) -> UsagePoint:
    return UsagePoint(
        bucket=str(row["bucket"]),
        key=row["key"],
        calls=int(row["calls"]),
        errors=int(row["errors"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost=_float_or_none(row["cost"]),
    )


def _record_from_row(row: dict[str, Any]) -> CallRecord:
    return CallRecord(**row)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


# -- opening ---------------------------------------------------------------------------------


def _modelport_home() -> Path:
    try:
        from modelport.config import modelport_home
    except ImportError:  # config.py not importable: same rule as DESIGN.md states
        return Path(os.environ.get("MODELPORT_HOME") or "~/.modelport").expanduser()
    return Path(modelport_home())


def default_database_url() -> str:
    """``sqlite:///MODELPORT_HOME/usage.db``."""
    return f"sqlite:///{_modelport_home() / 'usage.db'}"


def _configured_url(config: Any) -> str | None:
    url = getattr(config, "database_url", None) if config is not None else None
    return str(url) if url else None


def _spool_dir(display_url: str) -> Path:
    """Where records wait on disk while ``display_url``'s database is unreachable:
    ``MODELPORT_HOME/ledger-spool/<digest of the URL>`` (one folder per database)."""
    digest = hashlib.sha256(display_url.encode()).hexdigest()[:16]
    return _modelport_home() / "ledger-spool" / digest


def open_ledger(config: Any = None, *, url: str | None = None, **options: Any) -> Ledger:
    """Open the ledger: ``url``, else ``config.database_url``, else SQLite under MODELPORT_HOME.

    ``postgresql://…`` (and ``postgresql+psycopg://…``) use psycopg 3
    (``pip install 'modelport[postgres]'``); ``sqlite:///path`` a file. The
    table is created on first use. Raises :class:`~modelport.errors.ConfigError`
    when the database cannot be opened. Records wait out a later outage in
    memory, then in :func:`_spool_dir`; ``options`` go to :class:`Ledger`.
    """
    from modelport.ledger._store import SQLStore

    store = SQLStore(url or _configured_url(config) or default_database_url())
    options.setdefault("spool_dir", _spool_dir(store.display_url))
    return Ledger(store, **options)


def make_engine(url: str) -> tuple[Any, str]:
    """A SQLAlchemy engine on ``url`` made as the ledger makes its own, and the URL with its
    password masked; for other tables that live in the ledger's database."""
    from modelport.ledger._store import make_engine as make

    return make(url)


def ensure_ledger_table(engine: Any) -> None:
    """Create the calls table on ``engine`` if it is missing, or bring an old one up to date."""
    from modelport.ledger._store import ensure_table

    ensure_table(engine)


def spend_by_key(
    conn: Any, *, since: datetime | None, until: datetime | None
) -> dict[str, tuple[float, int]]:
    """Each virtual key's dollars and tokens in ``[since, until)`` (keys with no call absent)."""
    from modelport.ledger._store import spend_by_key as spend

    return spend(conn, since=since, until=until)


def spend_of_keys(
    conn: Any,
    key_ids: Sequence[str],
    *,
    since: datetime | None,
    until: datetime | None,
    address: str | None = None,
) -> tuple[float, int]:
    """Dollars and tokens the calls made with ``key_ids`` in ``[since, until)`` cost."""
    from modelport.ledger._store import spend_of_keys as spend

    return spend(conn, key_ids, since=since, until=until, address=address)
