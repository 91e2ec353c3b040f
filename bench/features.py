"""``python -m bench.features``: what balancing and the response cache cost per request,
measured in process.

``bench.ab`` measures whole gateways side by side, which is the honest figure
but on a shared 2-core machine carries a spread of hundreds of µs. This
measures the same code paths in one process, paired: each round runs the
baseline and the feature back to back (the order flipped every round) for
``--calls`` calls each, 32 at a time as on a loaded gateway, and reads this
process's CPU time
(``time.process_time``: time the process ran, not time it waited for the
machine). The figure is the median over rounds of (feature − baseline) per
call, with the spread of those differences.

* **balancing**: ``Router.stream`` of a one-event answer through a registered
  provider: a plain address against a two-deployment ``least-busy`` group,
  in process and with ``--redis`` on Redis (its script, the background
  release).
* **cache**: the chat handler's cache work for one request: the key (encoding
  and hashing the canonical request), the lookup, and for a miss storing the
  answer; in memory and with ``--redis`` in Redis. The baseline does nothing,
  so these are absolute costs.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

from modelport.config import CacheConfig, parse_config
from modelport.events import FinishEvent, TextEvent, UsageEvent
from modelport.routing import Router
from modelport.server._cache_stores import MemoryStore, RedisStore
from modelport.server._response_cache import ResponseCache
from modelport.testing import FakeProvider
from modelport.types import ChatRequest, Message

Work = Callable[[], Awaitable[object]]

_REPLY = [
    TextEvent(text="Hello there, how can I help?"),
    UsageEvent(input_tokens=9, output_tokens=7),
]
_REPLY.append(FinishEvent(reason="stop"))


def _chat(model: str, content: str = "Say hello in a few words.") -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            Message(role="system", content="You are a helpful assistant."),
            Message(role="user", content=content),
        ],
        max_tokens=256,
    )


#: Calls in flight at once, as on a loaded gateway: a lone call waiting on Redis pays a
#: whole sleep and wake-up of the event loop (~120 µs here), 32 share them (~25 µs).
CONCURRENCY = 32


async def _per_call(work: Work, calls: int) -> float:
    async def worker() -> None:
        for _ in range(calls // CONCURRENCY):
            await work()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / (calls // CONCURRENCY * CONCURRENCY) * 1e6


async def _paired(baseline: Work, feature: Work, rounds: int, calls: int) -> tuple[float, float]:
    await _per_call(baseline, calls // 4)  # warm both
    await _per_call(feature, calls // 4)
    differences = []
    for round_ in range(rounds):
        if round_ % 2:
            b = await _per_call(feature, calls)
            a = await _per_call(baseline, calls)
        else:
            a = await _per_call(baseline, calls)
            b = await _per_call(feature, calls)
        differences.append(b - a)
    spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
    return statistics.median(differences), spread


def _router(extra: str) -> Router:
    config = parse_config(
        extra + '\n[aliases.pool]\nstrategy = "least-busy"\ndeployments = ["a/m", "b/m"]\n'
    )
    router = Router(config, env={})
    for name in ("a", "b"):
        router.register_provider(name, FakeProvider(_REPLY, connection=name))
    return router


def _streamer(router: Router, model: str) -> Work:
    request = _chat(model)

    async def work() -> None:
        async for _event in router.stream(request):
            pass

    return work


def _cache_work(cache: ResponseCache, hit: bool) -> Work:
    answer = list(_REPLY)
    counter = iter(range(10**9))
    stored = _chat("pool")
    if hit:
        cache.remember(cache.key("local", stored, None), "a/m", answer)

    async def work() -> None:
        chat = stored if hit else _chat("pool", f"Say hello {next(counter)}")
        key = cache.key("local", chat, None)
        found = await cache.lookup(key)
        if found is None:
            cache.remember(key, "a/m", answer)

    return work


async def _nothing() -> None:
    return None


async def main(args: argparse.Namespace) -> None:
    rows: list[tuple[str, float, float]] = []
    local = _router("")
    rows.append(
        (
            "balancing, in process",
            *await _paired(
                _streamer(local, "a/m"), _streamer(local, "pool"), args.rounds, args.calls
            ),
        )
    )
    await local.aclose()
    settings = CacheConfig()
    memory = ResponseCache(settings, MemoryStore(ttl=3600, max_entries=10**6, max_bytes=10**9))
    for label, hit in (("cache miss, memory", False), ("cache hit, memory", True)):
        rows.append(
            (label, *await _paired(_nothing, _cache_work(memory, hit), args.rounds, args.calls))
        )
    if args.redis:
        shared = _router(f'redis_url = "{args.redis}"')
        rows.append(
            (
                "balancing, Redis",
                *await _paired(
                    _streamer(shared, "a/m"), _streamer(shared, "pool"), args.rounds, args.calls
                ),
            )
        )
        await shared.aclose()
        prefix = f"modelport-bench:{secrets.token_hex(4)}:cache:"
        store = RedisStore(args.redis, ttl=60, max_entries=10**6, max_bytes=10**9, prefix=prefix)
        redis_cache = ResponseCache(settings, store)
        for label, hit in (("cache miss, Redis", False), ("cache hit, Redis", True)):
            work = _cache_work(redis_cache, hit)
            await store.drain()
            rows.append((label, *await _paired(_nothing, work, args.rounds, args.calls)))
            await store.drain()
        await store._redis.call("DEL", prefix + "lru", prefix + "sizes", prefix + "bytes")
        await redis_cache.aclose()
    print(f"{'':24} CPU µs per request (median of {args.rounds} paired rounds ± sd)")
    for label, median, spread in rows:
        print(f"{label:24} {median:7.1f} ± {spread:5.1f}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds (8)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per side per round (2000)")
    parser.add_argument("--redis", help="a Redis URL, to measure the shared variants too")
    return parser


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
