"""The counters of ``serve --workers N`` on SQLite: shared by the group, dropped at each start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from modelport.cli._serve_workers import _drop_stale_counters
from modelport.governance import open_governance
from modelport.governance._schema import budget_counters
from modelport.governance._sqlite import SqliteCounters
from tests.governance.test_counters import admit, chat, issue


def _counters(url: str) -> int:
    governance = open_governance(url=url)
    try:
        with governance.catalog.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(budget_counters)).scalar()
            )
    finally:
        asyncio.run(governance.aclose())


def test_a_new_serve_drops_the_counters_an_earlier_run_left(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gov.db'}"

    async def earlier_run() -> None:
        governance = open_governance(url=url, workers_group="old")
        assert isinstance(governance.counters, SqliteCounters)
        key = issue(governance, team="t")
        governance.catalog.set_budget(
            scope="team", subject="t", period="day", max_cost=1.0, actor="test"
        )
        governance.reload()
        await admit(governance, key, chat())
        await governance.aclose()

    asyncio.run(earlier_run())
    assert _counters(url) == 1
    config = SimpleNamespace(database_url=url, redis_url=None)
    _drop_stale_counters(config, "new")  # type: ignore[arg-type]
    assert _counters(url) == 0


def test_workers_of_one_group_are_not_other_instances(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gov.db'}"
    first = open_governance(url=url, workers_group="g1")
    sibling = open_governance(url=url, workers_group="g1")
    stranger = open_governance(url=url)
    try:
        for governance in (first, sibling, stranger):
            assert governance.registry is not None
            governance.registry.announce()
        assert first.registry is not None and stranger.registry is not None
        # The stranger still sees both workers; a worker sees only the stranger.
        assert {i.id for i in first.registry.others()} == {stranger.registry.id}
        assert len(stranger.registry.others()) == 2
    finally:
        for governance in (first, sibling, stranger):
            asyncio.run(governance.aclose())
