"""A real PostgreSQL server stopped mid-run, then started again: nothing lost, no duplicate.

The server is a private one (``tests/ledger/_postgres_server.py``). These tests
run wherever PostgreSQL's server binaries are installed; where
``MODELPORT_TEST_DATABASE_URL`` is set (``.ci/run``, which installs them) a
missing server is a failure, never a skip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlalchemy as sa

from modelport.ledger import CallRecord, Ledger, open_ledger
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.ledger._postgres_server import PostgresServer, why_no_postgres
from tests.ledger.conftest import PG_URL
from tests.server._metrics import scrape_metrics
from tests.server.conftest import Gateway, GatewayFactory, upstream_config

_MISSING = why_no_postgres()
if _MISSING is not None and PG_URL is None:
    pytestmark = pytest.mark.skip(reason=f"no private PostgreSQL server: {_MISSING}")

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A running private server; stopped and removed afterwards, whatever happened."""
    assert _MISSING is None, f"MODELPORT_TEST_DATABASE_URL is set but {_MISSING}"
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text("SELECT * FROM modelport_calls ORDER BY id"))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


def _records(count: int, start: int) -> list[CallRecord]:
    return [
        CallRecord(
            started_at=T0 + timedelta(seconds=i), connection="c", model="m", request_id=f"r{i}"
        )
        for i in range(start, start + count)
    ]


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_records_wait_out_a_stopped_server_and_go_in_once_it_is_back(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    ledger = open_ledger(
        url=postgres.url,
        spool_dir=tmp_path / "spool",
        linger=0.05,
        max_batch=50,
        max_held=100,
        retry_min=0.1,
        retry_max=0.5,
    )
    try:
        for record in _records(20, 0):
            ledger.record(record)
        assert ledger.flush(10) and ledger.written == 20

        postgres.stop()
        for record in _records(400, 20):
            ledger.record(record)
        _wait_for(lambda: ledger.degraded and ledger.spooled == 300)
        assert ledger.pending == 400 and ledger.dropped == 0
        assert ledger.health()["state"] == "degraded"
        assert ledger.health()["error"] == "OperationalError"
        assert not ledger.flush(0.3)

        postgres.start()
        assert ledger.flush(20)
        assert not ledger.degraded and ledger.pending == 0 and ledger.spooled == 0
    finally:
        ledger.close()
    rows = _rows(postgres.url)
    assert [row["request_id"] for row in rows] == [f"r{i}" for i in range(420)]
    assert (ledger.written, ledger.dropped) == (420, 0)
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


def test_a_ledger_closed_during_the_outage_leaves_its_records_to_the_next_run(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    options: dict[str, Any] = {"spool_dir": tmp_path / "spool", "linger": 0.05, "retry_min": 0.1}
    first = open_ledger(url=postgres.url, **options)
    postgres.stop()
    try:
        for record in _records(60, 0):
            first.record(record)
        _wait_for(lambda: first.degraded)
    finally:
        first.close(timeout=15)  # still down: the 60 records go to the spool
    assert first.dropped == 0 and list((tmp_path / "spool").glob("*.jsonl"))

    postgres.start()
    second = open_ledger(url=postgres.url, **options)
    try:
        second.start()
        _wait_for(lambda: second.written == 60)
    finally:
        second.close()
    assert [row["request_id"] for row in _rows(postgres.url)] == [f"r{i}" for i in range(60)]


def test_the_gateway_serves_through_an_outage_and_says_the_ledger_is_degraded(
    postgres: PostgresServer,
    tmp_path: Path,
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
) -> None:
    """With a spool bound of two files, what is past it is dropped, and /metrics counts it."""
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    # A record as the gateway writes it, for the size of a spool file of ten.
    sample = CallRecord(
        started_at=datetime.now(UTC),
        connection="oai",
        model="gpt-4o",
        api="openai",
        input_tokens=13,
        output_tokens=7,
        latency_ms=12.345678901234567,
        ttft_ms=1.2345678901234567,
        request_id="chatcmpl-" + "0" * 32,
    )
    ledger: Ledger = open_ledger(
        url=postgres.url,
        spool_dir=tmp_path / "spool",
        linger=0.02,
        max_batch=10,
        max_held=20,
        max_spool_bytes=int(2.5 * 10 * (len(msgspec.json.encode(sample)) + 1)),
        retry_min=0.1,
        retry_max=0.5,
    )
    gateway: Gateway = gateway_factory(
        create_app(upstream_config(upstream), plugin_host=False, ledger=ledger)
    )
    body = {"model": "oai/gpt-4o", "messages": USER, "stream": True}

    def call() -> float:
        began = time.monotonic()
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
        assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
        return time.monotonic() - began

    for _ in range(5):
        call()
    assert ledger.flush(10)
    assert httpx.get(f"{gateway.url}/health").json()["ledger"]["state"] == "ok"

    postgres.stop()
    slowest = max(call() for _ in range(100))  # served as before
    # No call waits on the database (a wait would be its 10 s connect timeout, or more).
    assert slowest < 5, slowest
    # Up to 20 held in memory, two files of 10 on disk, the rest past the bound.
    _wait_for(lambda: ledger.dropped >= 60)
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["status"] == "degraded"
    assert health["ledger"]["state"] == "degraded"
    assert health["ledger"]["error"] == "OperationalError"
    assert health["ledger"]["spooled"] == 20  # two files of ten
    assert str(postgres.port) not in str(health)  # where the database is stays in the log
    samples = scrape_metrics(gateway)
    assert samples["modelport_ledger_degraded"] == 1
    assert samples["modelport_ledger_records_dropped_total"] == ledger.dropped
    assert samples["modelport_ledger_records_pending"] == ledger.pending
    assert ledger.pending + ledger.dropped == 100 and ledger.pending <= 40
    kept = ledger.pending

    postgres.start()
    _wait_for(lambda: ledger.pending == 0 and not ledger.degraded)
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["status"] == "ok" and health["ledger"]["state"] == "ok"
    assert scrape_metrics(gateway)["modelport_ledger_degraded"] == 0
    rows = _rows(postgres.url)
    assert len(rows) == 5 + kept
    assert len({row["request_id"] for row in rows}) == len(rows)
    assert all(row["outcome"] == "ok" for row in rows)
