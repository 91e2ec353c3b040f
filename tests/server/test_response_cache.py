"""The response cache through the real gateway, with the official SDKs and real upstreams.

Every test runs twice: answers kept in this process's memory, and in a real
Redis (``MODELPORT_TEST_REDIS_URL``; each test keys its own namespace).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelport.config import CacheConfig
from modelport.ledger import open_ledger
from modelport.server._cache_stores import MemoryStore, RedisStore
from modelport.server._keys import GatewayKeys
from modelport.server._response_cache import ResponseCache
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway, GatewayFactory, upstream_config

REDIS_URL = os.environ.get("MODELPORT_TEST_REDIS_URL")
STREAM = "openai/chat-stream-text-include-usage.sse"
STREAM_TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


def _store(kind: str, settings: CacheConfig) -> Any:
    if kind == "memory":
        return MemoryStore(
            ttl=settings.ttl, max_entries=settings.max_entries, max_bytes=settings.max_bytes
        )
    if REDIS_URL is None:
        pytest.skip("MODELPORT_TEST_REDIS_URL is not set (.ci/run sets it)")
    return RedisStore(
        REDIS_URL,
        ttl=settings.ttl,
        max_entries=settings.max_entries,
        max_bytes=settings.max_bytes,
        prefix=f"modelport-test:{secrets.token_hex(6)}:cache:",
    )


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CachedGateway = Callable[..., Gateway]


@pytest.fixture
def cached_gateway(
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
    store_kind: str,
) -> CachedGateway:
    """``cached_gateway(cache_table, **create_app_options)``: a gateway whose cache
    lives in the parametrised store; ``store=`` shares one between gateways."""

    def make(table: str = "", *, store: Any = None, **options: Any) -> Gateway:
        config = upstream_config(upstream, f"[cache]\n{table}")
        assert config.cache is not None
        options.setdefault("plugin_host", False)
        options.setdefault("ledger", False)
        app = create_app(config, **options)
        app.state.cache = ResponseCache(config.cache, store or _store(store_kind, config.cache))
        return gateway_factory(app)

    return make


def _ask(client: openai.OpenAI, content: str, **options: Any) -> tuple[str, httpx.Headers]:
    """One non-streaming answer's text and headers."""
    raw = client.chat.completions.with_raw_response.create(
        model=options.pop("model", "oai/gpt-4o"),
        messages=[{"role": "user", "content": content}],
        **options,
    )
    return raw.parse().choices[0].message.content or "", raw.headers


def _ask_stream(client: openai.OpenAI, content: str, **options: Any) -> tuple[str, httpx.Headers]:
    raw = client.chat.completions.with_raw_response.create(
        model=options.pop("model", "oai/gpt-4o"),
        messages=[{"role": "user", "content": content}],
        stream=True,
        **options,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    return text, raw.headers


def _nonce() -> str:
    return f"question {secrets.token_hex(4)}"


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Stores go to Redis in the background; wait until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _hit(client: openai.OpenAI, content: str, **options: Any) -> tuple[str, httpx.Headers]:
    """Ask until the answer comes from the cache (a Redis store lands a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        text, headers = _ask(client, content, **options)
        if headers["x-modelport-cache"] == "hit" or time.monotonic() > deadline:
            return text, headers
        time.sleep(0.02)


# --- hit and miss ---------------------------------------------------------------------------


def test_a_repeated_request_is_answered_from_the_cache(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway().openai()
    question = _nonce()
    first, headers = _ask(client, question)
    assert (first, headers["x-modelport-cache"]) == (STREAM_TEXT, "miss")
    assert headers["x-modelport-deployment"] == "oai/gpt-4o"
    second, headers = _hit(client, question)
    assert (second, headers["x-modelport-cache"]) == (STREAM_TEXT, "hit")
    assert headers["x-modelport-deployment"] == "oai/gpt-4o"
    assert len(upstream.requests) == 1


def test_any_difference_in_the_request_is_a_miss(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway().openai()
    question = _nonce()
    _ask(client, question)
    for variant in ({"temperature": 0.5}, {"max_tokens": 7}, {"seed": 3}, {"model": "oai/other"}):
        _text, headers = _ask(client, question, **variant)
        assert headers["x-modelport-cache"] == "miss", variant
    assert len(upstream.requests) == 5


def test_metadata_does_not_count(cached_gateway: CachedGateway, upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway().openai()
    question = _nonce()
    _ask(client, question, metadata={"run": "1"})
    _text, headers = _hit(client, question, metadata={"run": "2"})
    assert headers["x-modelport-cache"] == "hit"


def test_a_cached_stream_is_replayed_as_a_stream(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM, chunks="random"))
    gateway = cached_gateway()
    client = gateway.openai()
    question = _nonce()
    text, headers = _ask_stream(client, question, stream_options={"include_usage": True})
    assert (text, headers["x-modelport-cache"]) == (STREAM_TEXT, "miss")
    _wait_for(lambda: _ask(client, question)[1]["x-modelport-cache"] == "hit")
    text, headers = _ask_stream(client, question, stream_options={"include_usage": True})
    assert (text, headers["x-modelport-cache"]) == (STREAM_TEXT, "hit")
    assert headers["content-type"].startswith("text/event-stream")
    # The replay ends as a stream must: the usage chunk, then [DONE].
    body = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={
            "model": "oai/gpt-4o",
            "messages": [{"role": "user", "content": question}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ).text
    assert '"usage":{"prompt_tokens":' in body and body.endswith("data: [DONE]\n\n")
    assert len(upstream.requests) == 1


def test_the_anthropic_api_gets_the_cached_answer_in_its_own_shape(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    client = cached_gateway().anthropic()
    question = [{"role": "user", "content": _nonce()}]
    first = client.messages.with_raw_response.create(
        model="ant/claude",
        max_tokens=20,
        messages=question,  # type: ignore[arg-type]
    )
    assert first.headers["x-modelport-cache"] == "miss"
    deadline = time.monotonic() + 10
    while True:
        with client.messages.with_streaming_response.create(
            model="ant/claude",
            max_tokens=20,
            messages=question,  # type: ignore[arg-type]
            stream=True,
        ) as response:
            lookup = response.headers["x-modelport-cache"]
            events = [line for line in response.iter_lines() if line.startswith("event:")]
        if lookup == "hit" or time.monotonic() > deadline:
            break
    assert lookup == "hit"
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
    assert len(upstream.requests) == 1


def test_the_responses_api_is_cached_and_a_hit_can_be_continued(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway().openai()
    question = _nonce()
    first = client.responses.with_raw_response.create(model="oai/gpt-4o", input=question)
    assert first.headers["x-modelport-cache"] == "miss"
    deadline = time.monotonic() + 10
    while True:
        raw = client.responses.with_raw_response.create(model="oai/gpt-4o", input=question)
        if raw.headers["x-modelport-cache"] == "hit" or time.monotonic() > deadline:
            break
    assert raw.headers["x-modelport-cache"] == "hit"
    hit = raw.parse()
    assert hit.output_text == STREAM_TEXT and hit.id != first.parse().id
    # The hit was kept like any answer: the conversation goes on from it.
    client.responses.create(model="oai/gpt-4o", input="and tomorrow?", previous_response_id=hit.id)
    sent = upstream.requests[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == STREAM_TEXT
    stream = client.responses.create(model="oai/gpt-4o", input=question, stream=True)
    deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas) == STREAM_TEXT
    assert len(upstream.requests) == 2  # the first question, and the continuation


# --- tenants --------------------------------------------------------------------------------


def test_one_tenants_answer_is_never_served_to_another(
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
    store_kind: str,
) -> None:
    # Two gateways, each with its own key, sharing one store: two tenants.
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    config = upstream_config(upstream, "[cache]")
    assert config.cache is not None
    store = _store(store_kind, config.cache)
    gateways = []
    for key in ("tenant-a-key", "tenant-b-key"):
        app = create_app(
            config,
            plugin_host=False,
            ledger=False,
            keys=GatewayKeys(key),
        )
        app.state.cache = ResponseCache(config.cache, store)
        gateways.append(gateway_factory(app).openai(api_key=key))
    tenant_a, tenant_b = gateways
    question = _nonce()
    _ask(tenant_a, question)
    _text, headers = _hit(tenant_a, question)
    assert headers["x-modelport-cache"] == "hit"
    _text, headers = _ask(tenant_b, question)
    assert headers["x-modelport-cache"] == "miss"
    assert len(upstream.requests) == 2


def test_a_shared_cache_serves_every_tenant_when_asked_to() -> None:
    cache = ResponseCache(
        CacheConfig(per_tenant=False), MemoryStore(ttl=1, max_entries=1, max_bytes=9)
    )
    assert cache.tenant({}, b"a" * 32) == cache.tenant({}, b"b" * 32) == "shared"


def test_the_tenant_is_the_virtual_keys_team_else_the_key() -> None:
    class Key:
        def __init__(self, id: str, team: str | None) -> None:
            self.id, self.team = id, team

    cache = ResponseCache(CacheConfig(), MemoryStore(ttl=1, max_entries=1, max_bytes=9))
    assert cache.tenant({"vkey": Key("k1", "red")}, None) == "team:red"
    assert cache.tenant({"vkey": Key("k2", "red")}, None) == "team:red"
    assert cache.tenant({"vkey": Key("k3", None)}, None) == "key:k3"
    assert cache.tenant({}, b"\x01" * 32) == "gateway:0101010101010101"
    assert cache.tenant({}, None) == "local"


# --- what is not cached -----------------------------------------------------------------------


def test_an_error_is_never_cached(cached_gateway: CachedGateway, upstream: FakeUpstream) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "overloaded"}}, status=500),
        Reply.fixture(STREAM),
    )
    client = cached_gateway().openai()
    question = _nonce()
    with pytest.raises(openai.InternalServerError):
        _ask(client, question)
    text, headers = _ask(client, question)
    assert (text, headers["x-modelport-cache"]) == (STREAM_TEXT, "miss")
    assert len(upstream.requests) == 2


def test_a_stream_that_broke_is_never_cached(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    body = Reply.fixture(STREAM).body
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply(body=body, content_type="text/event-stream", chunks=[400], drop_after=700),
        Reply.fixture(STREAM),
    )
    client = cached_gateway().openai()
    question = _nonce()
    with pytest.raises(openai.APIError):
        _ask_stream(client, question)
    time.sleep(0.2)  # a store, had there been one, would have landed
    text, headers = _ask_stream(client, question)
    assert (text, headers["x-modelport-cache"]) == (STREAM_TEXT, "miss")
    assert len(upstream.requests) == 2


def test_a_stream_the_client_left_is_never_cached(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    body = Reply.fixture(STREAM).body
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply(body=body, content_type="text/event-stream", chunks=[600], chunk_delay=0.2),
        Reply.fixture(STREAM),
    )
    gateway = cached_gateway()
    question = _nonce()
    payload = {
        "model": "oai/gpt-4o",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=payload) as response:
        next(response.iter_bytes())  # the first frames, then the client goes away
    assert upstream.requests[0].closed.wait(5)
    time.sleep(0.2)
    _text, headers = _ask(gateway.openai(), question)
    assert headers["x-modelport-cache"] == "miss"


def test_an_answer_over_the_entry_size_is_not_kept(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway("max_entry_bytes = 50").openai()
    question = _nonce()
    _ask(client, question)
    time.sleep(0.2)
    _text, headers = _ask(client, question)
    assert headers["x-modelport-cache"] == "miss"


def test_a_model_the_table_does_not_list_is_not_cached(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway('models = ["oai/cached-*"]').openai()
    question = _nonce()
    for _ in range(2):
        _text, headers = _ask(client, question)
        assert "x-modelport-cache" not in headers
    _ask(client, question, model="oai/cached-one")
    _text, headers = _hit(client, question, model="oai/cached-one")
    assert headers["x-modelport-cache"] == "hit"
    assert len(upstream.requests) == 3


def test_a_request_may_skip_the_cache(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway().openai()
    question = _nonce()
    _text, headers = _ask(client, question, extra_headers={"Cache-Control": "no-store"})
    assert headers["x-modelport-cache"] == "bypass"
    time.sleep(0.2)
    _text, headers = _ask(client, question)
    assert headers["x-modelport-cache"] == "miss"  # no-store kept nothing
    _hit(client, question)
    _text, headers = _ask(client, question, extra_headers={"Cache-Control": "no-cache"})
    assert headers["x-modelport-cache"] == "miss"  # asked upstream again
    assert len(upstream.requests) == 3


# --- bounds -----------------------------------------------------------------------------------


def test_entries_expire_after_the_ttl(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway("ttl = 0.5").openai()
    question = _nonce()
    _ask(client, question)
    _text, headers = _hit(client, question)
    assert headers["x-modelport-cache"] == "hit"
    time.sleep(0.6)
    _text, headers = _ask(client, question)
    assert headers["x-modelport-cache"] == "miss"


def test_the_least_recently_used_entry_goes_first(
    cached_gateway: CachedGateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    client = cached_gateway("max_entries = 2").openai()
    one, two, three = _nonce(), _nonce(), _nonce()
    _ask(client, one)
    _hit(client, one)
    _ask(client, two)
    _hit(client, two)
    _hit(client, one)  # one is now more recent than two
    _ask(client, three)
    _hit(client, three)  # stored: two, the least recently used, went
    assert _ask(client, one)[1]["x-modelport-cache"] == "hit"
    assert _ask(client, two)[1]["x-modelport-cache"] == "miss"


def test_the_byte_bound_evicts_too() -> None:
    store = MemoryStore(ttl=60, max_entries=100, max_bytes=10)
    store.put("a", b"12345")
    store.put("b", b"12345")
    store.put("c", b"1")
    assert (store.get_now("a"), store.get_now("b"), store.get_now("c")) == (None, b"12345", b"1")
    assert store.bytes == 6


@pytest.mark.skipif(REDIS_URL is None, reason="MODELPORT_TEST_REDIS_URL is not set")
async def test_redis_keeps_its_bounds_across_instances() -> None:
    assert REDIS_URL is not None
    prefix = f"modelport-test:{secrets.token_hex(6)}:cache:"
    stores = [
        RedisStore(REDIS_URL, ttl=60, max_entries=3, max_bytes=1000, prefix=prefix) for _ in "ab"
    ]
    try:
        for index in range(6):
            stores[index % 2].put(f"k{index}", b"x" * 10)
            await stores[index % 2].drain()
        kept = [await stores[0].get(f"k{index}") for index in range(6)]
        assert kept == [None, None, None, b"x" * 10, b"x" * 10, b"x" * 10]
        assert int(await stores[0]._redis.call("GET", prefix + "bytes")) == 30
    finally:
        for store in stores:
            await store.aclose()


async def test_an_unreachable_redis_makes_every_lookup_a_miss() -> None:
    store = RedisStore("redis://127.0.0.1:9/0", ttl=60, max_entries=3, max_bytes=1000)
    try:
        store.put("k", b"v")
        await store.drain()
        assert await store.get("k") is None
    finally:
        await store.aclose()
    await asyncio.sleep(0)


# --- the ledger -------------------------------------------------------------------------------


def test_a_hit_is_in_the_ledger_with_no_cost(
    cached_gateway: CachedGateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    client = cached_gateway(ledger=ledger).openai()
    question = _nonce()
    _ask(client, question)
    _hit(client, question)
    assert ledger.flush(5)
    outcomes = [(r.outcome, r.cost, r.input_tokens, r.connection, r.model) for r in ledger.recent()]
    assert outcomes[0] == ("cache_hit", 0.0, 0, "oai", "gpt-4o")
    assert outcomes[-1][0] == "ok" and outcomes[-1][2] > 0
    summary = ledger.summary(by="model")
    assert summary[0].errors == 0
