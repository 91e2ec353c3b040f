"""Fixtures for the team gateway: a catalog per test, counters on each backend.

``backend`` runs a test against the counters in this process, in the SQLite
file (the workers of ``serve --workers N``), in PostgreSQL
(``MODELPORT_TEST_DATABASE_URL``) and in Redis (``MODELPORT_TEST_REDIS_URL``);
``.ci/run`` sets both, and a test skips a backend only where its variable is
absent. Each test gets a fresh database (a SQLite file or a PostgreSQL
schema), so it gets its own ``deployment`` and so its own Redis keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.conftest import PG_URL, _postgres_schema

REDIS_URL = os.environ.get("MODELPORT_TEST_REDIS_URL")

needs_pg = pytest.mark.skipif(
    PG_URL is None, reason="MODELPORT_TEST_DATABASE_URL is not set (.ci/run sets it)"
)
needs_redis = pytest.mark.skipif(
    REDIS_URL is None, reason="MODELPORT_TEST_REDIS_URL is not set (.ci/run sets it)"
)

BACKENDS = [
    "memory",
    "sqlite-workers",
    pytest.param("postgresql", marks=needs_pg),
    pytest.param("redis", marks=needs_redis),
]


def fresh_minute(margin: float = 15.0) -> None:
    """Wait for the next minute if this one has less than ``margin`` seconds left.

    Rate limits count in clock minutes; a test that checks a limit must not
    straddle two of them, or the second minute's allowance would pass.
    """
    import time

    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str | None, str | None]]:
    """``(database_url, redis_url, workers_group)`` for one backend."""
    if request.param == "memory":
        yield f"sqlite:///{tmp_path / 'gov.db'}", None, None
    elif request.param == "sqlite-workers":
        yield f"sqlite:///{tmp_path / 'gov.db'}", None, "group1"
    elif request.param == "postgresql":
        yield from ((url, None, None) for url in _postgres_schema())
    else:
        yield f"sqlite:///{tmp_path / 'gov.db'}", REDIS_URL, None


@pytest.fixture
def pg_url() -> Iterator[str]:
    if PG_URL is None:
        pytest.skip("MODELPORT_TEST_DATABASE_URL is not set (.ci/run sets it)")
    yield from _postgres_schema()


# The gateway fixtures of tests/server, for the tests that drive a real gateway.
from tests.server.conftest import (  # noqa: E402, F401
    gateway,  # noqa: E402, F401
    gateway_factory,
    make_gateway,
    upstream_keys,
)
