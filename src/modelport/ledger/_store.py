"""Where the ledger's rows live: one SQLAlchemy Core table, SQLite or PostgreSQL.

Both dialects go through the same statements; the only per-dialect code is in
:func:`_create_engine` (driver choice, SQLite pragmas). Importing this module
imports SQLAlchemy, so :mod:`modelport.ledger` imports it only on first use.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from modelport.config import ensure_private_dir
from modelport.errors import ConfigError
from modelport.ledger._writer import StoreUnavailable

__all__ = [
    "SQLStore",
    "calls",
    "ensure_table",
    "make_engine",
    "normalize_url",
    "spend_by_key",
    "spend_of_keys",
]

logger = logging.getLogger("modelport.ledger")

_TABLE = "modelport_calls"


class _UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that goes in as UTC and comes out timezone-aware.

    SQLite has no time zones and hands back naive values; PostgreSQL's
    ``timestamptz`` hands back aware ones. Normalising here keeps every query
    and every returned record the same on both.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text, so every stored value must be UTC and naive.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_metadata = sa.MetaData()
_Count = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

calls = sa.Table(
    _TABLE,
    _metadata,
    sa.Column("id", _Count, primary_key=True, autoincrement=True),
    sa.Column("started_at", _UTCDateTime(), nullable=False, index=True),
    sa.Column("connection", sa.String(255), nullable=False),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("api", sa.String(32), nullable=False),
    sa.Column("input_tokens", _Count, nullable=False, default=0),
    sa.Column("output_tokens", _Count, nullable=False, default=0),
    sa.Column("cache_read_tokens", _Count, nullable=False, default=0),
    sa.Column("cache_write_tokens", _Count, nullable=False, default=0),
    sa.Column("reasoning_tokens", _Count, nullable=False, default=0),
    sa.Column("cost", sa.Float(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("ttft_ms", sa.Float(), nullable=True),
    sa.Column("outcome", sa.String(128), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("request_id", sa.String(255), nullable=True),
    # The gateway's virtual key that made the call (``modelport.governance``); budgets
    # are rebuilt from these rows when the shared counters are lost.
    sa.Column("key_id", sa.String(64), nullable=True, index=True),
)

#: Columns added after the table first shipped: an older database gets them on open.
_ADDED_COLUMNS = ("key_id",)

#: The columns a record is made of, in table order (everything but the surrogate key).
RECORD_COLUMNS: tuple[str, ...] = tuple(c.name for c in calls.columns if c.name != "id")

#: The bounded string columns, as (index in a record, width): a longer string is cut
#: to fit with an ellipsis (PostgreSQL would refuse it; a client chooses the model name).
_BOUNDED: tuple[tuple[int, int], ...] = tuple(
    (RECORD_COLUMNS.index(c.name), c.type.length)
    for c in calls.columns
    if isinstance(c.type, sa.String) and c.type.length is not None
)

#: A fixed moment to check the fast SQLite conversion against SQLAlchemy's own.
_PROBE = datetime(2026, 1, 2, 3, 4, 5, 6)


def _timestamp_converter(dialect: Dialect) -> Callable[[datetime], Any]:
    """How a ``started_at`` goes to ``dialect``'s driver: in UTC (see :class:`_UTCDateTime`).

    For SQLite, ``_UTCDateTime`` hands the driver a naive UTC ``datetime`` and
    ``sqlite3``'s default adapter stores ``isoformat(" ")`` of it (a Python call
    each, with the decorator's three): here that text is made in one, its
    seconds shared by the records of one second. Should
    SQLAlchemy convert it otherwise (checked here), its own processor is kept.
    For PostgreSQL the aware UTC value ``_UTCDateTime`` makes, without the
    decorator's calls around it (SQLAlchemy's, whole, where the dialect's own
    type converts too).
    """
    processor = _UTCDateTime().bind_processor(dialect)
    assert processor is not None  # (a TypeDecorator with process_bind_param has one)
    if dialect.name != "sqlite":
        if _UTCDateTime.impl.dialect_impl(dialect).bind_processor(dialect) is not None:
            return processor  # the driver's type converts too: SQLAlchemy's, whole
        return _aware_utc  # psycopg takes the aware value as it is
    if processor(_PROBE) != _PROBE:
        return processor

    # The text up to the second, for the last second seen: a gateway's records come
    # many to a second, and isoformat (or replace) costs ~1 µs here, the rest ~0.2.
    last: tuple[tuple[int, ...], str] = ((), "")

    def naive_text(value: datetime) -> str:
        nonlocal last
        if value.tzinfo is not UTC:
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
        seen, text = last
        if second != seen:
            text = value.replace(tzinfo=None, microsecond=0).isoformat(" ")
            last = (second, text)  # one tuple: a reader on another thread sees a pair
        micro = value.microsecond
        return f"{text}.{micro:06d}" if micro else text

    return naive_text


def _aware_utc(value: datetime) -> datetime:
    """``value`` in UTC, timezone-aware (naive ones are taken as UTC): what
    :class:`_UTCDateTime` hands a driver other than SQLite's, in one call."""
    if value.tzinfo is not UTC:
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value


#: Rows per multi-row INSERT: 32 rows of 16 columns are 512 parameters, under the 999
#: that SQLite before 3.32 allows in one statement.
_ROWS_PER_STATEMENT = 32


class _BatchInsert:
    """``INSERT`` of whole records, compiled once for a dialect, many rows per statement.

    Both choices are about the GIL, which the writer thread shares with the
    gateway's event loop. ``conn.execute(calls.insert(), rows)`` builds every
    row's parameters through SQLAlchemy's execution context (~12 µs a row);
    here the statement, its parameter order and the columns' bind processors
    (the UTC timestamp, whatever the dialect's types need) are worked out
    once, and a row costs one ``itemgetter``. And ``executemany`` on SQLite
    steps once per row, releasing and retaking the GIL each time: under load
    every record cost the event loop a GIL hand-over. With a positional
    driver (SQLite's) rows go :data:`_ROWS_PER_STATEMENT` to a statement, so
    a batch of 500 steps 16 times instead of 500. A driver with named
    parameters (psycopg) gets ``executemany``, which it pipelines.
    """

    def __init__(self, dialect: Dialect) -> None:
        compiled = calls.insert().compile(dialect=dialect, column_keys=list(RECORD_COLUMNS))
        self._dialect = dialect
        self._sql = str(compiled)
        names = compiled.positiontup if compiled.positional else None
        self._names: tuple[str, ...] = tuple(names) if names else RECORD_COLUMNS
        self._positional = bool(compiled.positional)
        #: Where each of the statement's parameters is in a record's values (None: in order).
        order = tuple(RECORD_COLUMNS.index(name) for name in self._names)
        self._order = None if order == tuple(range(len(RECORD_COLUMNS))) else order
        self._timestamp = _timestamp_converter(dialect)
        # The timestamp is converted above; the other columns' processors (psycopg's
        # to_float) run as SQLAlchemy would run them.
        self._processors = [
            (index, processor)
            for index, name in enumerate(RECORD_COLUMNS)
            if name != "started_at"
            and (processor := calls.c[name].type.bind_processor(dialect)) is not None
        ]
        self._multi_row: dict[int, str] = {}

    def parameters(self, record: Sequence[Any]) -> tuple[Any, ...] | dict[str, Any]:
        """A record's values (in :data:`RECORD_COLUMNS` order) in the statement's order,
        converted for the driver: the timestamp in UTC, strings cut to their widths."""
        values = list(record)
        started_at = values[0]
        if started_at is not None:  # (NOT NULL: the database refuses the row, not us)
            values[0] = self._timestamp(started_at)
        for index, width in _BOUNDED:
            value = values[index]
            if isinstance(value, str) and len(value) > width:
                values[index] = value[: width - 1] + "…"
        for index, processor in self._processors:
            values[index] = processor(values[index])
        if self._order is not None:
            values = [values[index] for index in self._order]
        return tuple(values) if self._positional else dict(zip(self._names, values, strict=True))

    def execute(self, conn: Connection, batch: list[Any]) -> None:
        """Insert ``batch`` (each row from :meth:`parameters`) on ``conn``."""
        if not self._positional:
            conn.exec_driver_sql(self._sql, batch)
            return
        for start in range(0, len(batch), _ROWS_PER_STATEMENT):
            rows = batch[start : start + _ROWS_PER_STATEMENT]
            sql = self._statement(len(rows))
            if sql:
                conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows)))
            else:
                conn.exec_driver_sql(self._sql, rows)

    def _statement(self, rows: int) -> str:
        """The INSERT of ``rows`` rows, or ``""`` if its parameters are not in the order
        :meth:`execute` flattens them (then rows go one per step, as before).

        At most :data:`_ROWS_PER_STATEMENT` statements are ever compiled.
        """
        sql = self._multi_row.get(rows)
        if sql is None:
            compiled = (
                calls.insert()
                .values([dict.fromkeys(RECORD_COLUMNS)] * rows)
                .compile(dialect=self._dialect)
            )
            # Row after row, each in the single-row order. SQLAlchemy 2.0 names them so;
            # should a release not, correctness wins over the saved GIL hand-overs.
            expected = [f"{name}_m{row}" for row in range(rows) for name in self._names]
            ordered = list(compiled.positiontup or ()) == expected
            sql = self._multi_row[rows] = str(compiled) if ordered else ""
        return sql


def _unreachable(exc: sa.exc.SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database cannot take writes now (down, unreachable,
    locked, out of connections), as opposed to refusing this data."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa.exc.OperationalError
        | sa.exc.InterfaceError
        | sa.exc.DisconnectionError
        | sa.exc.TimeoutError,
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_table(engine: Engine) -> None:
    """Create the calls table, or bring one created by an older release up to date."""
    try:
        _metadata.create_all(engine, checkfirst=True)
    except sa.exc.DBAPIError:
        # Several replicas may race to create the table; losing the race is fine.
        if not sa.inspect(engine).has_table(_TABLE):
            raise
    present = {column["name"] for column in sa.inspect(engine).get_columns(_TABLE)}
    for name in _ADDED_COLUMNS:
        if name in present:
            continue
        kind = calls.c[name].type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {_TABLE} ADD COLUMN {name} {kind}")
        except sa.exc.DBAPIError:
            # Another replica added it first.
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(_TABLE)}:
                raise


def spend_of_keys(
    conn: Connection,
    key_ids: Sequence[str],
    *,
    since: datetime | None,
    until: datetime | None,
    address: str | None = None,
) -> tuple[float, int]:
    """The cost (US dollars; unknown costs count 0) and tokens of the calls made with ``key_ids``.

    Calls started in ``[since, until)`` (open where ``None``), and only those to
    ``address`` (``connection/model``) when one is given. What budgets are rebuilt from.
    """
    if not key_ids:
        return 0.0, 0
    query = sa.select(
        sa.func.coalesce(sa.func.sum(calls.c.cost), 0.0),
        sa.func.coalesce(sa.func.sum(calls.c.input_tokens + calls.c.output_tokens), 0),
    ).where(calls.c.key_id.in_(list(key_ids)))
    if since is not None:
        query = query.where(calls.c.started_at >= since)
    if until is not None:
        query = query.where(calls.c.started_at < until)
    if address is not None:
        connection, _, model = address.partition("/")
        query = query.where(calls.c.connection == connection, calls.c.model == model)
    cost, tokens = conn.execute(query).one()
    return float(cost), int(tokens)


def spend_by_key(
    conn: Connection, *, since: datetime | None, until: datetime | None
) -> dict[str, tuple[float, int]]:
    """Each virtual key's cost (US dollars; unknown costs count 0) and tokens in ``[since, until)``.

    Keys without a call in the period are absent.
    """
    query = (
        sa.select(
            calls.c.key_id,
            sa.func.coalesce(sa.func.sum(calls.c.cost), 0.0),
            sa.func.coalesce(sa.func.sum(calls.c.input_tokens + calls.c.output_tokens), 0),
        )
        .where(calls.c.key_id.is_not(None))
        .group_by(calls.c.key_id)
    )
    if since is not None:
        query = query.where(calls.c.started_at >= since)
    if until is not None:
        query = query.where(calls.c.started_at < until)
    return {key: (float(cost), int(tokens)) for key, cost, tokens in conn.execute(query)}


def _group_key(by: Literal["model", "connection"]) -> sa.ColumnElement[str]:
    if by == "model":
        return (calls.c.connection + "/" + calls.c.model).label("key")
    return calls.c.connection.label("key")


def _bucket_start(dialect: str, bucket: Literal["hour", "day"]) -> sa.ColumnElement[str]:
    """The start of a call's hour or day in UTC, as ``YYYY-MM-DDTHH:00:00Z`` text.

    The one per-dialect query piece: SQLite stores naive UTC text, PostgreSQL a
    ``timestamptz`` that is truncated in UTC whatever the session's time zone.
    """
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", calls.c.started_at)
        pattern = 'YYYY-MM-DD"T"HH24:00:00"Z"' if bucket == "hour" else 'YYYY-MM-DD"T00:00:00Z"'
        return sa.func.to_char(sa.func.date_trunc(bucket, utc), pattern)
    pattern = "%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z"
    return sa.func.strftime(pattern, calls.c.started_at)


def normalize_url(url: str) -> str:
    """Pick the driver we ship for a PostgreSQL URL; leave anything else alone.

    ``postgresql://`` would make SQLAlchemy look for psycopg2, which we do not
    depend on; psycopg 3 comes with the ``postgres`` extra.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _enable_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while a gateway writes; the busy timeout rides out
    # the short moments when two writers (several processes) meet.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _parse(url: str) -> sa.engine.URL:
    try:
        parsed = sa.engine.make_url(normalize_url(url))
    except sa.exc.ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in ("sqlite", "postgresql"):
        # Only the two dialects the tests run against; never echo the URL (a password).
        raise ConfigError(
            "database_url must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB."
        )
    return parsed


def make_engine(url: str) -> tuple[Engine, str]:
    """An engine for ``url`` as the ledger makes its own, and the URL with its password masked.

    Other tables that live in the ledger's database (the gateway's virtual keys,
    ``modelport.governance``) open theirs with this, so both read the same URL the
    same way. Raises :class:`ConfigError` for a URL that is neither SQLite nor PostgreSQL.
    """
    parsed = _parse(url)
    return _create_engine(parsed), parsed.render_as_string(hide_password=True)


def _create_engine(parsed: sa.engine.URL) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_database(Path(parsed.database).expanduser())
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _enable_wal)
        return engine
    if parsed.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "A PostgreSQL database_url needs psycopg 3: pip install 'modelport[postgres]'."
            ) from exc
    # pre_ping: a gateway lives for days, and the database may restart under it.
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        # libpq's own default is to wait forever for a server that does not answer.
        connect_args={"connect_timeout": 10} if "psycopg" in parsed.drivername else {},
    )


def _private_database(path: Path) -> None:
    """Make the SQLite file (and its folder) its owner's alone before SQLite opens it.

    Error excerpts quote upstreams, and calls say what was asked of which model.
    SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode,
    so a 0600 database keeps them 0600 too; files an older version made readable
    by others are narrowed.
    """
    ensure_private_dir(path.parent)
    # Only a file that is not there yet is opened (O_EXCL): closing any descriptor of
    # a database file drops every POSIX lock this process holds on it, its open
    # connections' included. Another process's connection, closing last, would then
    # think itself alone, checkpoint and delete the -wal and -shm files under them,
    # and what they write next would stay in a deleted file, seen by nobody else
    # until they close.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite will say what is wrong with the path, in its own words
    for name in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        with contextlib.suppress(OSError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


class SQLStore:
    """The table on one database: create on first use, insert batches, answer queries."""

    def __init__(self, url: str) -> None:
        parsed = _parse(url)
        #: The URL with any password masked, fit for messages and logs.
        self.display_url = parsed.render_as_string(hide_password=True)
        self._engine = _create_engine(parsed)
        self._batch_insert = _BatchInsert(self._engine.dialect)
        try:
            self._ensure_table()
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigError(
                f"Cannot open the usage database {self.display_url}: {reason}. "
                "Check database_url in config.toml, and that the database server is running."
            ) from exc

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The database, for the tables kept beside the calls (``ledger._responses``)."""
        return self._engine

    def _ensure_table(self) -> None:
        ensure_table(self._engine)

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows (one dict per call, keyed by column); see :meth:`insert_values`."""
        return self.insert_values([operator.itemgetter(*RECORD_COLUMNS)(row) for row in rows])

    def insert_values(self, records: Sequence[Sequence[Any]]) -> int:
        """Insert records (each its values in :data:`RECORD_COLUMNS` order, as
        ``msgspec.structs.astuple`` gives a :class:`~modelport.ledger.CallRecord`'s)
        in one transaction.

        Strings too long for their column are cut to fit (PostgreSQL would
        refuse them; a client chooses the model name). If the batch fails
        because of its data, each row is tried on its own, so one bad row
        costs one record: the answer is how many rows were lost. If it fails
        because the database cannot be reached (or is locked), nothing is
        lost: :class:`~modelport.ledger._writer.StoreUnavailable` says how many
        rows were dealt with first, and the writer keeps the rest for later.
        """
        statement = self._batch_insert
        prepared: list[tuple[Any, ...] | dict[str, Any] | None] = []
        for record in records:
            try:
                prepared.append(statement.parameters(record))
            except Exception:  # a value its column cannot take: that record alone is lost
                prepared.append(None)
                logger.warning("usage ledger could not convert a record", exc_info=True)
        batch = [parameters for parameters in prepared if parameters is not None]
        unconvertible = len(prepared) - len(batch)
        if not batch:
            return unconvertible
        try:
            self._execute(batch)
            return unconvertible
        except sa.exc.SQLAlchemyError as exc:
            if _unreachable(exc):
                raise StoreUnavailable(_first_line(exc)) from exc
            if len(batch) > 1:
                logger.warning(
                    "usage ledger: a batch of %d failed; writing its rows one by one",
                    len(batch),
                    exc_info=True,
                )
        lost = 0
        for index, parameters in enumerate(prepared):
            if parameters is None:
                lost += 1
                continue
            try:
                self._execute([parameters])
            except sa.exc.SQLAlchemyError as exc:
                if _unreachable(exc):
                    raise StoreUnavailable(_first_line(exc), done=index, lost=lost) from exc
                lost += 1
                logger.warning("usage ledger could not write a record", exc_info=True)
        return lost

    def _execute(self, batch: list[tuple[Any, ...] | dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            self._batch_insert.execute(conn, batch)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest rows first."""
        query = (
            sa.select(*(calls.c[name] for name in RECORD_COLUMNS))
            .order_by(calls.c.started_at.desc(), calls.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def summary(
        self, since: datetime | None, by: Literal["model", "connection"]
    ) -> list[dict[str, Any]]:
        """One row of totals per model (``connection/model``) or per connection."""
        key = _group_key(by)
        failed = sa.case((calls.c.outcome.in_(("ok", "cancelled", "cache_hit")), 0), else_=1)
        query = sa.select(
            key,
            sa.func.count().label("calls"),
            sa.func.coalesce(sa.func.sum(failed), 0).label("errors"),
            *(
                sa.func.coalesce(sa.func.sum(calls.c[name]), 0).label(name)
                for name in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                )
            ),
            # SUM skips NULLs: the cost of the calls whose cost is known, NULL if none is.
            sa.func.sum(calls.c.cost).label("cost"),
            sa.func.avg(calls.c.latency_ms).label("avg_latency_ms"),
            sa.func.avg(calls.c.ttft_ms).label("avg_ttft_ms"),
        )
        if since is not None:
            query = query.where(calls.c.started_at >= since)
        query = query.group_by(key).order_by(sa.func.count().desc(), key)
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def timeseries(
        self,
        since: datetime | None,
        by: Literal["model", "connection"],
        bucket: Literal["hour", "day"],
    ) -> list[dict[str, Any]]:
        """Totals per time bucket (its UTC start, ISO 8601) and model or connection, oldest
        first."""
        key = _group_key(by)
        start = _bucket_start(self._engine.dialect.name, bucket).label("bucket")
        failed = sa.case((calls.c.outcome.in_(("ok", "cancelled")), 0), else_=1)
        query = sa.select(
            start,
            key,
            sa.func.count().label("calls"),
            sa.func.coalesce(sa.func.sum(failed), 0).label("errors"),
            sa.func.coalesce(sa.func.sum(calls.c.input_tokens), 0).label("input_tokens"),
            sa.func.coalesce(sa.func.sum(calls.c.output_tokens), 0).label("output_tokens"),
            sa.func.sum(calls.c.cost).label("cost"),
        )
        if since is not None:
            query = query.where(calls.c.started_at >= since)
        query = query.group_by(start, key).order_by(start, key)
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()
