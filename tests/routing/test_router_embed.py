"""``Router.embed``: the address, the settings and keys, retries, no fallbacks, the ledger."""

from __future__ import annotations

import pytest

from modelport.config import parse_config
from modelport.errors import InvalidRequestError, RateLimitError, UpstreamError
from modelport.ledger import open_ledger
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeUpstream, Reply
from modelport.types import EmbeddingRequest, ModelInfo, ModelPrices, Usage


def openai_answer(count: int, tokens: int) -> dict[str, object]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": [i, 0.5]} for i in range(count)],
        "model": "m",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def config_for(upstream: FakeUpstream, extra: str = "") -> str:
    return (
        f"[connections.oai]\ncompat = 'openai'\nbase_url = '{upstream.url}/v1'\n"
        "api_key_env = 'OAI_KEY'\nmax_retries = 1\n\n"
        f"[connections.ant]\ncompat = 'anthropic'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'ANT_KEY'\n\n"
        "[aliases]\nvectors = 'oai/text-embedding-3-small'\n" + extra
    )


async def _no_sleep(delay: float) -> None:
    return None


async def test_an_alias_reaches_the_connection_with_its_key(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(openai_answer(2, 5)))
    router = Router(parse_config(config_for(upstream)), env={"OAI_KEY": "k-oai"})
    try:
        response = await router.embed(EmbeddingRequest(model="vectors", input=["a", "b"]))
    finally:
        await router.aclose()
    assert response.model == "oai/text-embedding-3-small"
    assert response.embeddings == [[0.0, 0.5], [1.0, 0.5]]
    assert response.usage == Usage(input_tokens=5)
    [sent] = upstream.requests
    assert sent.headers["authorization"] == "Bearer k-oai"
    assert sent.json()["model"] == "text-embedding-3-small"


async def test_a_connection_that_cannot_embed_says_so(upstream: FakeUpstream) -> None:
    router = Router(parse_config(config_for(upstream)), env={"ANT_KEY": "k"})
    try:
        with pytest.raises(InvalidRequestError) as caught:
            await router.embed(EmbeddingRequest(model="ant/claude-sonnet-4-5", input=["a"]))
    finally:
        await router.aclose()
    assert caught.value.message.startswith(
        "Connection 'ant' does not offer embeddings (compat 'anthropic')"
    )
    assert (caught.value.connection, caught.value.model) == ("ant", "claude-sonnet-4-5")
    assert upstream.requests == []


async def test_retries_but_no_fallback(upstream: FakeUpstream) -> None:
    busy = Reply.json({"error": {"message": "busy", "type": "server_error"}}, 503)
    upstream.route("POST", "/v1/embeddings", busy)
    extra = "\n[fallbacks]\n'oai/a' = ['fake/b']\n"
    router = Router(
        parse_config(config_for(upstream, extra)), env={"OAI_KEY": "k"}, sleep=_no_sleep
    )
    fallback = FakeProvider(connection="fake")
    router.register_provider("fake", fallback)
    try:
        with pytest.raises(UpstreamError):
            await router.embed(EmbeddingRequest(model="oai/a", input=["x"]))
    finally:
        await router.aclose()
    assert len(upstream.requests) == 2  # max_retries = 1
    assert fallback.embedded == []  # another model's vectors would not fit the index


async def test_a_per_call_key_goes_only_to_its_call(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(openai_answer(1, 1)))
    router = Router(parse_config(config_for(upstream)), env={"OAI_KEY": "k"})
    try:
        await router.embed(EmbeddingRequest(model="oai/m", input=["x"]), api_key="per-call")
        await router.embed(EmbeddingRequest(model="oai/m", input=["x"]))
    finally:
        await router.aclose()
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer per-call",
        "Bearer k",
    ]


async def test_empty_input_is_refused() -> None:
    router = Router(parse_config(""))
    with pytest.raises(InvalidRequestError, match="at least one input"):
        await router.embed(EmbeddingRequest(model="fake/m", input=[]))


async def test_the_ledger_records_a_row_with_input_tokens_and_cost(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = open_ledger(url=url)
    router = Router(parse_config(""), ledger=ledger)
    router.register_provider(
        "fake",
        FakeProvider(connection="fake"),
        models=[ModelInfo(id="emb", connection="fake", prices=ModelPrices(input=0.02))],
    )
    try:
        response = await router.embed(
            EmbeddingRequest(model="fake/emb", input=["one two three", "four"]),
            api="openai",
            request_id="embd-1",
        )
    finally:
        await router.aclose()
        await ledger.aclose()
    assert response.usage == Usage(input_tokens=4)
    with open_ledger(url=url) as reopened:
        [row] = reopened.recent()
    assert (row.connection, row.model, row.api, row.request_id) == (
        "fake",
        "emb",
        "openai",
        "embd-1",
    )
    assert (row.input_tokens, row.output_tokens, row.outcome) == (4, 0, "ok")
    assert row.cost == pytest.approx(4 * 0.02 / 1e6)
    assert row.ttft_ms is None


async def test_the_ledger_records_a_failed_call(upstream: FakeUpstream, tmp_path: object) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json({"error": {"message": "slow"}}, 429))
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = open_ledger(url=url)
    router = Router(
        parse_config(config_for(upstream)), ledger=ledger, env={"OAI_KEY": "k"}, sleep=_no_sleep
    )
    try:
        with pytest.raises(RateLimitError):
            await router.embed(EmbeddingRequest(model="oai/m", input=["x"]))
    finally:
        await router.aclose()
        await ledger.aclose()
    with open_ledger(url=url) as reopened:
        [row] = reopened.recent()
    assert (row.model, row.outcome, row.input_tokens) == ("m", "RateLimitError", 0)
