"""A router counts its calls in flight, and one that a reload replaced closes once they end."""

from __future__ import annotations

import asyncio
import gc

from modelport.config import Config, ConnectionConfig
from modelport.errors import ModelNotFoundError
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeUpstream, Reply
from modelport.types import ChatRequest, Message


def _request(model: str = "fake/m") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")])


def _router(*replies: object, delay: float = 0.0) -> tuple[Router, FakeProvider]:
    router = Router(Config(), env={})
    provider = FakeProvider(*replies, event_delay=delay)  # type: ignore[arg-type]
    router.register_provider("fake", provider)
    return router, provider


async def test_a_stream_counts_from_the_moment_it_is_handed_out_until_closed() -> None:
    router, _ = _router(["a", "b"])
    events = router.stream(_request())
    assert router.active_calls == 1  # not read yet, and already holding the router
    await events.__anext__()
    assert router.active_calls == 1
    await events.aclose()  # type: ignore[attr-defined]
    assert router.active_calls == 0
    await events.aclose()  # type: ignore[attr-defined]
    assert router.active_calls == 0


async def test_a_stream_closed_or_dropped_before_it_started_stops_counting() -> None:
    router, provider = _router(["a"])
    events = router.stream(_request())
    await events.aclose()  # type: ignore[attr-defined]
    del events
    router.stream(_request())  # handed out and never read
    assert router.active_calls == 0
    assert provider.history == []


async def test_a_stream_that_failed_stops_counting_while_its_error_is_kept() -> None:
    router, _ = _router(["a"])
    kept: list[BaseException] = []
    try:
        [e async for e in router.stream(_request("nowhere/m"))]
    except ModelNotFoundError as exc:
        kept.append(exc)  # its traceback holds the frames the stream ran in
    assert kept
    assert router.active_calls == 0


async def test_a_stream_read_to_its_end_and_dropped_stops_counting() -> None:
    router, _ = _router(["a"])
    assert [e async for e in router.stream(_request())]
    gc.collect()
    assert router.active_calls == 0


async def test_a_complete_call_and_a_listing_count_while_they_run() -> None:
    router, _ = _router(["a", "b"], delay=0.05)
    seen: list[int] = []

    async def watch() -> None:
        await asyncio.sleep(0.02)
        seen.append(router.active_calls)

    await asyncio.gather(router.complete(_request()), watch())
    assert seen == [1]
    assert router.active_calls == 0
    await router.list_models("fake")
    assert router.active_calls == 0


async def test_a_replaced_router_closes_only_once_its_streams_end() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture(
                "openai/chat-stream-text-include-usage.sse", chunks=[40], chunk_delay=0.05
            ),
        )
        work = ConnectionConfig(base_url=f"{upstream.url}/v1", max_retries=0)
        config = Config(connections={"work": work})
        old = Router(config, env={})
        events = old.stream(_request("work/m"))
        first = await events.__anext__()
        closing = asyncio.create_task(old.aclose_when_idle())
        await asyncio.sleep(0.05)
        assert not closing.done()  # the stream still runs on it
        rest = [e async for e in events]
        await events.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(closing, 5)
        assert first is not None and rest  # the whole answer came through the old router
        assert old.active_calls == 0


async def test_a_replacement_router_takes_over_the_oauth_broker() -> None:
    # The plugin host's OAuth providers use the broker too: the replaced router must
    # not close it, and the one that replaced it closes it in the end.
    old = Router(Config(), env={})
    closed: list[str] = []

    async def record() -> None:
        closed.append("broker")

    old.tokens.aclose = record  # type: ignore[method-assign]
    new = old.with_config(Config())
    assert new.tokens is old.tokens
    await old.aclose()
    assert closed == []
    await new.aclose()
    assert closed == ["broker"]
