"""The ledger on a real database: SQLite, and PostgreSQL when .ci/run provides one."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.errors import ConfigError, RateLimitError
from modelport.events import FinishEvent, StreamEvent, TextEvent, UsageEvent
from modelport.ledger import CallRecord, Ledger, UsageSummary, open_ledger
from modelport.ledger._store import normalize_url
from modelport.types import ModelPrices
from tests.ledger._fakes import scripted

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def call(**fields: object) -> CallRecord:
    base: dict[str, object] = {"started_at": NOW, "connection": "c", "model": "m"}
    base.update(fields)
    return CallRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    ledger = open_ledger(url=database_url)
    yield ledger
    ledger.close()


async def consume(stream: AsyncIterator[StreamEvent]) -> None:
    async for _event in stream:
        pass


class TestBackends:
    """Every behaviour, once per backend (the ``database_url`` fixture is parametrised)."""

    def test_opening_twice_is_fine(self, database_url: str) -> None:
        for _ in range(2):
            with open_ledger(url=database_url) as ledger:
                assert ledger.recent() == []

    def test_a_record_round_trips_exactly(self, ledger: Ledger) -> None:
        record = call(
            started_at=datetime(2026, 11, 20, 12, 0, 1, 123456, tzinfo=UTC),
            connection="openrouter",
            model="anthropic/claude-3.5-sonnet",
            api="anthropic",
            input_tokens=1200,
            output_tokens=300,
            cache_read_tokens=1000,
            cache_write_tokens=100,
            reasoning_tokens=120,
            cost=0.0123,
            latency_ms=812.5,
            ttft_ms=201.25,
            outcome="ok",
            request_id="req-42",
        )
        ledger.record(record)
        assert ledger.flush(10)
        assert ledger.recent() == [record]

    def test_a_batch_of_many_rows_round_trips_in_order(
        self, ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        # SQLite takes rows 32 to a statement: two whole statements and a 6-row remainder.
        records = [
            call(
                started_at=NOW + timedelta(microseconds=i),
                model=f"m{i}",
                input_tokens=i,
                cost=None if i % 3 else i / 7,
                ttft_ms=None if i % 2 else float(i),
                outcome="ok" if i % 5 else "RateLimitError",
                error=None if i % 5 else f"slow down {i}",
                request_id=f"req-{i}",
            )
            for i in range(70)
        ]
        with caplog.at_level(logging.WARNING, logger="modelport.ledger"):
            for record in records:
                ledger.record(record)
            assert ledger.flush(10)
        # In one batch, not rescued row by row after the batch failed.
        assert "one by one" not in caplog.text
        assert ledger.recent(100) == records[::-1]
        assert (ledger.written, ledger.failed) == (70, 0)

    def test_times_are_stored_in_utc(self, ledger: Ledger) -> None:
        plus_two = timezone(timedelta(hours=2))
        ledger.record(call(started_at=datetime(2026, 11, 20, 14, 0, tzinfo=plus_two)))
        assert ledger.flush(10)
        (got,) = ledger.recent()
        assert got.started_at == NOW
        assert got.started_at.tzinfo == UTC

    async def test_tracked_calls_land_in_the_database(self, ledger: Ledger) -> None:
        prices = ModelPrices(input=3.0, output=15.0)
        ok = scripted(
            [
                TextEvent(text="hi"),
                UsageEvent(input_tokens=1000, output_tokens=100),
                FinishEvent(reason="stop"),
            ]
        )
        failing = scripted([RateLimitError("slow down")])
        await consume(ledger.track(ok, connection="anthropic", model="sonnet", prices=prices))
        with pytest.raises(RateLimitError):
            await consume(
                ledger.track(failing, connection="anthropic", model="sonnet", prices=prices)
            )
        await ledger.aflush(10)
        newest, oldest = await ledger.arecent()
        assert {newest.outcome, oldest.outcome} == {"ok", "RateLimitError"}
        ok_record = newest if newest.outcome == "ok" else oldest
        assert ok_record.cost == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1e6)
        assert ok_record.ttft_ms is not None and ok_record.latency_ms >= ok_record.ttft_ms

    def test_summary_by_model(self, ledger: Ledger) -> None:
        for record in SAMPLE:
            ledger.record(record)
        assert ledger.flush(10)
        rows = {row.key: row for row in ledger.summary(by="model")}
        assert set(rows) == {"openai/gpt-4o", "openai/gpt-4o-mini", "local/llama3"}
        gpt = rows["openai/gpt-4o"]
        assert gpt == UsageSummary(
            key="openai/gpt-4o",
            calls=3,
            errors=1,
            input_tokens=300,
            output_tokens=60,
            cache_read_tokens=50,
            cache_write_tokens=0,
            reasoning_tokens=10,
            cost=pytest.approx(0.03),  # type: ignore[arg-type]
            avg_latency_ms=pytest.approx(200.0),  # type: ignore[arg-type]
            avg_ttft_ms=pytest.approx(75.0),  # type: ignore[arg-type]
        )
        # Unknown prices: tokens add up, cost stays unknown.
        assert rows["local/llama3"].cost is None
        assert rows["local/llama3"].input_tokens == 1000
        # Busiest first.
        assert ledger.summary()[0].key == "openai/gpt-4o"

    def test_summary_by_connection(self, ledger: Ledger) -> None:
        for record in SAMPLE:
            ledger.record(record)
        assert ledger.flush(10)
        rows = {row.key: row for row in ledger.summary(by="connection")}
        assert set(rows) == {"openai", "local"}
        assert rows["openai"].calls == 4
        assert rows["openai"].errors == 1  # cancelled is not an error
        assert rows["openai"].input_tokens == 305
        assert rows["openai"].cost == pytest.approx(0.03)

    def test_summary_since(self, ledger: Ledger) -> None:
        ledger.record(call(started_at=NOW - timedelta(days=10), model="old"))
        ledger.record(call(started_at=datetime.now(UTC), model="new"))
        assert ledger.flush(10)
        assert [r.key for r in ledger.summary(since=timedelta(days=1))] == ["c/new"]
        assert [r.key for r in ledger.summary(since=NOW - timedelta(days=11))] == [
            "c/new",
            "c/old",
        ]
        assert ledger.summary(since=datetime.now(UTC) + timedelta(hours=1)) == []

    def test_timeseries_buckets_by_hour_and_day_in_utc(self, ledger: Ledger) -> None:
        # 13:59 in UTC+2 is 11:59 UTC: the bucket is UTC's hour, whatever the caller's zone.
        plus_two = timezone(timedelta(hours=2))
        ledger.record(call(started_at=datetime(2026, 11, 20, 13, 59, tzinfo=plus_two), model="a"))
        ledger.record(call(started_at=NOW + timedelta(minutes=5), model="a", input_tokens=7))
        ledger.record(
            call(started_at=NOW + timedelta(minutes=50), model="b", cost=0.5, outcome="X")
        )
        ledger.record(call(started_at=NOW + timedelta(days=1), connection="d", output_tokens=3))
        assert ledger.flush(10)
        hours = ledger.timeseries(since=NOW - timedelta(days=1), by="model", bucket="hour")
        assert [(p.bucket, p.key, p.calls) for p in hours] == [
            ("2026-11-20T11:00:00Z", "c/a", 1),
            ("2026-11-20T12:00:00Z", "c/a", 1),
            ("2026-11-20T12:00:00Z", "c/b", 1),
            ("2026-11-21T12:00:00Z", "d/m", 1),
        ]
        assert hours[1].input_tokens == 7 and hours[1].cost is None
        assert hours[2].cost == pytest.approx(0.5) and hours[2].errors == 1
        days = ledger.timeseries(by="connection", bucket="day")
        assert [(p.bucket, p.key, p.calls, p.output_tokens) for p in days] == [
            ("2026-11-20T00:00:00Z", "c", 3, 0),
            ("2026-11-21T00:00:00Z", "d", 1, 3),
        ]
        assert ledger.timeseries(since=NOW + timedelta(days=2)) == []

    def test_recent_is_newest_first_and_limited(self, ledger: Ledger) -> None:
        for i in range(5):
            ledger.record(call(started_at=NOW + timedelta(minutes=i), model=f"m{i}"))
        assert ledger.flush(10)
        assert [r.model for r in ledger.recent(3)] == ["m4", "m3", "m2"]

    def test_two_ledgers_on_one_database(self, database_url: str) -> None:
        # Replicas of a gateway share one database.
        with open_ledger(url=database_url) as first, open_ledger(url=database_url) as second:
            for i in range(20):
                (first if i % 2 else second).record(call(model=f"m{i}"))
            assert first.flush(10) and second.flush(10)
            assert len(first.recent(100)) == 20

    def test_the_database_is_named_without_its_password(
        self, ledger: Ledger, database_url: str
    ) -> None:
        password = sa.make_url(database_url).password
        assert ledger.database is not None
        assert ledger.database.split(":")[0] in database_url
        if password:
            assert f":{password}@" not in ledger.database
            assert ":***@" in ledger.database

    def test_an_over_long_model_name_is_cut_not_lost(self, ledger: Ledger) -> None:
        # A client chooses the model name; PostgreSQL refuses a value longer than
        # the column (StringDataRightTruncation), which used to lose the whole batch.
        ledger.record(call(model="m" * 2000, request_id="r" * 400, connection="c" * 300))
        ledger.record(call(model="short"))
        assert ledger.flush(10)
        records = ledger.recent(10)
        assert sorted(len(r.model) for r in records) == [5, 512]
        long = next(r for r in records if len(r.model) == 512)
        assert long.model.endswith("…") and long.model.startswith("mmm")
        assert long.request_id is not None and len(long.request_id) == 255
        assert len(long.connection) == 255
        assert ledger.dropped == 0

    def test_one_bad_row_costs_one_record_not_the_batch(self, ledger: Ledger) -> None:
        good = [call(model=f"m{i}") for i in range(3)]
        bad = call(model="bad", started_at=None)  # NOT NULL: refused by either database
        for record in (good[0], bad, good[1], good[2]):
            ledger.record(record)
        assert ledger.flush(10)
        assert sorted(r.model for r in ledger.recent(10)) == ["m0", "m1", "m2"]
        assert (ledger.failed, ledger.dropped, ledger.written) == (1, 1, 3)

    def test_a_value_the_driver_cannot_take_costs_one_record(self, ledger: Ledger) -> None:
        # The rows are converted before the batch goes out; a row that cannot
        # be (a started_at that is no datetime) must not take the others with it.
        good = [call(model=f"m{i}") for i in range(2)]
        bad = call(model="bad", started_at="yesterday")
        for record in (good[0], bad, good[1]):
            ledger.record(record)
        assert ledger.flush(10)
        assert sorted(r.model for r in ledger.recent(10)) == ["m0", "m1"]
        assert (ledger.failed, ledger.written) == (1, 2)

    def test_bad_group_is_refused(self, ledger: Ledger) -> None:
        with pytest.raises(ValueError, match="by must be"):
            ledger.summary(by="colour")  # type: ignore[arg-type]


SAMPLE = [
    call(
        connection="openai",
        model="gpt-4o",
        input_tokens=100,
        output_tokens=20,
        cache_read_tokens=50,
        cost=0.01,
        latency_ms=100,
        ttft_ms=50,
    ),
    call(
        connection="openai",
        model="gpt-4o",
        input_tokens=200,
        output_tokens=40,
        reasoning_tokens=10,
        cost=0.02,
        latency_ms=300,
        ttft_ms=100,
    ),
    call(
        connection="openai",
        model="gpt-4o",
        outcome="RateLimitError",
        error="slow down",
        latency_ms=200,
    ),
    call(connection="openai", model="gpt-4o-mini", input_tokens=5, outcome="cancelled"),
    call(connection="local", model="llama3", input_tokens=1000, output_tokens=10, cost=None),
]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_postgresql_urls_use_psycopg_3(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_an_unreachable_database_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        open_ledger(url="postgresql://modelport:hunter2secret@127.0.0.1:9/nowhere")
    message = str(caught.value)
    assert "hunter2secret" not in message
    assert "127.0.0.1:9" in message
    assert "database_url" in message


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "usage.db"
    with open_ledger(url=f"sqlite:///{path}") as ledger:
        ledger.record(call())
        assert ledger.flush(10)
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM modelport_calls").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u:secretpw@h/db", "not a url", "redis://u:secretpw@h"])
def test_unsupported_urls_are_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="database_url must be") as caught:
        open_ledger(url=url)
    assert "secretpw" not in str(caught.value)


def test_postgresql_without_psycopg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ConfigError, match=r"modelport\[postgres\]"):
        open_ledger(url="postgresql://u:p@127.0.0.1/db")
