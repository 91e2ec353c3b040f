"""Ledger fixtures: an empty database per test on each backend, and an in-memory store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger._fakes import MemoryStore

# The gateway's fixtures, for the outage test that runs a gateway on the ledger.
from tests.server.conftest import gateway_factory, upstream_keys  # noqa: F401

# Read at import: the autouse environment scrub in tests/conftest.py removes every
# MODELPORT_* variable before a test runs. .ci/run sets this one.
PG_URL = os.environ.get("MODELPORT_TEST_DATABASE_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            PG_URL is None, reason="MODELPORT_TEST_DATABASE_URL is not set (.ci/run sets it)"
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    import sqlalchemy as sa

    from modelport.ledger._store import normalize_url

    assert PG_URL is not None
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_url(PG_URL))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        # Every connection of the ledger under test lands in the new schema.
        url = sa.make_url(normalize_url(PG_URL)).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
