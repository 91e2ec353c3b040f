"""Several instances on one database: they share one Redis, or the newcomer refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.errors import ConfigError, UpstreamError
from modelport.governance import open_governance
from tests.governance.conftest import REDIS_URL, needs_redis


async def test_a_second_instance_without_redis_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gov.db'}"
    first = open_governance(url=url)
    first.catalog.create_key(name="k", actor="test")
    first.reload()
    await first.start()
    second = open_governance(url=url)
    try:
        with pytest.raises(ConfigError, match=r"(?i)another modelport gateway.*redis_url"):
            await second.start()
    finally:
        await first.aclose()
    # Once the first has stopped (its row gone), the second may start.
    await second.start()
    await second.aclose()


async def test_instances_without_virtual_keys_may_share_a_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gov.db'}"
    first, second = open_governance(url=url), open_governance(url=url)
    await first.start()
    await second.start()  # nothing to enforce, nothing to get wrong
    await first.aclose()
    await second.aclose()


@needs_redis
async def test_instances_must_share_the_same_redis(tmp_path: Path) -> None:
    assert REDIS_URL is not None
    url = f"sqlite:///{tmp_path / 'gov.db'}"
    first = open_governance(url=url, redis_url=REDIS_URL)
    first.catalog.create_key(name="k", actor="test")
    first.reload()
    await first.start()
    same = open_governance(url=url, redis_url=REDIS_URL)
    other = open_governance(url=url, redis_url=REDIS_URL.rsplit("/", 1)[0] + "/9")
    try:
        await same.start()
        with pytest.raises(ConfigError, match="another Redis"):
            await other.start()
    finally:
        await same.aclose()
        await first.aclose()


async def test_a_running_instance_fails_closed_when_another_appears_without_redis(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'gov.db'}"
    first = open_governance(url=url, poll_interval=0.05)
    await first.start()  # no keys yet: nothing to refuse
    second = open_governance(url=url)
    await second.start()
    key, _ = first.catalog.create_key(name="k", actor="test")
    first.reload()
    plan = first.plan(first.snapshot.keys[0], "a/b")
    import asyncio

    for _ in range(100):
        if first.blocked is not None:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(UpstreamError, match="redis_url") as refused:
        await first.admit(plan, first.embedding_charge(plan, _request(), None, "a/b"))
    assert refused.value.status == 503
    await second.aclose()
    await first.aclose()


def _request():  # type: ignore[no-untyped-def]
    from modelport.types import EmbeddingRequest

    return EmbeddingRequest(model="a/b", input=["x"])


async def test_unreachable_counters_fail_closed(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    governance = open_governance(
        url=f"sqlite:///{tmp_path / 'gov.db'}", redis_url=f"redis://127.0.0.1:{port}/0"
    )
    try:
        key, _ = governance.catalog.create_key(name="k", actor="test")
        governance.catalog.set_limit(scope="key", subject=key.id, rpm=5, actor="test")
        governance.reload()
        plan = governance.plan(governance.snapshot.keys[0], "a/b")
        with pytest.raises(UpstreamError, match="cannot reach its budget and rate counters") as e:
            await governance.admit(plan, governance.embedding_charge(plan, _request(), None, "a/b"))
        assert e.value.status == 503
    finally:
        await governance.aclose()
