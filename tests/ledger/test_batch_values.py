"""The writer's rows as plain values (ledger/_store.py ``_BatchInsert``): a record's
tuple is the table's columns, and a SQLite timestamp is stored as it always was."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from modelport.ledger import CallRecord, Ledger
from modelport.ledger._store import RECORD_COLUMNS, SQLStore, _timestamp_converter, _UTCDateTime
from tests.ledger._fakes import MemoryStore

_SQLITE = sa.create_engine("sqlite://").dialect


def _as_sqlalchemy_stored(value: datetime) -> str:
    """What SQLAlchemy hands sqlite3 for ``value``, as sqlite3's default adapter writes it."""
    processor = _UTCDateTime().bind_processor(_SQLITE)
    assert processor is not None
    bound = processor(value)
    return bound.isoformat(" ") if isinstance(bound, datetime) else bound


def test_a_records_values_are_the_tables_columns_in_order() -> None:
    # Ledger._insert hands the store msgspec.structs.astuple(record): field order is column order.
    assert CallRecord.__struct_fields__ == RECORD_COLUMNS


_offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.none() | _offsets,
    )
    | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)).map(
        lambda value: value.replace(tzinfo=UTC)
    )
)
def test_sqlite_timestamps_are_the_text_sqlalchemy_and_sqlite3_stored(value: datetime) -> None:
    convert = _timestamp_converter(_SQLITE)
    assert convert(value) == _as_sqlalchemy_stored(value)
    # Twice in a row (the second is cached) and a neighbour in the same second.
    assert convert(value) == _as_sqlalchemy_stored(value)
    neighbour = value.replace(microsecond=(value.microsecond + 1) % 1_000_000)
    assert convert(neighbour) == _as_sqlalchemy_stored(neighbour)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.none() | _offsets,
    )
)
def test_postgresql_timestamps_are_what_sqlalchemy_binds(value: datetime) -> None:
    from sqlalchemy.dialects.postgresql import psycopg

    dialect = psycopg.dialect()
    processor = _UTCDateTime().bind_processor(dialect)
    assert processor is not None
    converted = _timestamp_converter(dialect)(value)
    assert converted == processor(value)
    assert converted.tzinfo is UTC


def test_rows_written_through_the_values_read_back_alike(tmp_path: Path) -> None:
    # The same records through insert() (dicts) and insert_values() (tuples) land as the same rows.
    store = SQLStore(f"sqlite:///{tmp_path}/ledger.db")
    try:
        start = datetime(2026, 11, 20, 12, 0, 0, 0, tzinfo=UTC)
        records = [
            CallRecord(
                started_at=start + timedelta(microseconds=n * 250_001),
                connection="c",
                model="m" * (n * 300),
                outcome="ok",
                request_id=f"r{n}",
            )
            for n in range(4)
        ]
        assert store.insert([msgspec.structs.asdict(r) for r in records]) == 0
        assert store.insert_values([msgspec.structs.astuple(r) for r in records]) == 0
        with sqlite3.connect(f"{tmp_path}/ledger.db") as conn:
            rows = conn.execute(
                "SELECT started_at, model, request_id FROM modelport_calls ORDER BY id"
            ).fetchall()
        assert rows[:4] == rows[4:]
        assert [row[0] for row in rows[:4]] == [
            "2026-11-20 12:00:00",
            "2026-11-20 12:00:00.250001",
            "2026-11-20 12:00:00.500002",
            "2026-11-20 12:00:00.750003",
        ]
        assert [len(row[1]) for row in rows[:4]] == [0, 300, 512, 512]
    finally:
        store.close()


def test_a_spooled_row_is_the_json_of_its_record(tmp_path: Path) -> None:
    # The ledger queues rows (tuples) but spools each as the CallRecord it stands for, so
    # a spool left by an earlier release (records) and one left by this one read alike.
    ledger = Ledger(MemoryStore(), spool_dir=tmp_path / "spool")
    record = CallRecord(
        started_at=datetime(2026, 11, 20, 12, 0, 0, 5, tzinfo=UTC),
        connection="c",
        model="m",
        api="openai",
        input_tokens=3,
        cost=0.25,
        latency_ms=1.5,
        outcome="RateLimitError",
        error="slow down",
        key_id="k1",
    )
    spool = ledger._writer.backlog.spool
    assert spool is not None
    row = msgspec.structs.astuple(record)
    assert spool._encode(row) == msgspec.json.encode(record)
    assert spool._decode(msgspec.json.encode(record)) == row
    ledger.close()
