"""``POST /v1/embeddings`` on the real gateway, driven by the official OpenAI SDK.

The upstreams' replies are the shapes the vendors document (no recorded
embedding traffic exists in tests/fixtures); Ollama's is the example in its
API documentation.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from modelport.config import parse_config
from modelport.ledger import open_ledger
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import UPSTREAM_OPENAI_KEY, Gateway, GatewayFactory
from tests.wire.test_embeddings import ollama_documented_answers

VECTORS = [[0.0023064255, -0.009327292, 0.015797347], [-0.5, 0.25, 1.0]]
ANSWER = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(VECTORS)
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


def _float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def _unpack(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_the_openai_sdk_gets_vectors_through_the_gateway(
    upstream: FakeUpstream, gateway: Gateway, encoding: str | None
) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(ANSWER))
    options: dict[str, Any] = {} if encoding is None else {"encoding_format": encoding}
    result = gateway.openai().embeddings.create(
        model="oai/text-embedding-3-small", input=["hello", "world"], dimensions=3, **options
    )
    vectors = [item.embedding for item in result.data]
    if encoding == "base64":
        # Asked for explicitly, base64 comes back as the string OpenAI sends.
        vectors = [_unpack(text) for text in vectors]  # type: ignore[arg-type]
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    assert vectors == (VECTORS if encoding == "float" else [_float32(v) for v in VECTORS])
    assert [item.index for item in result.data] == [0, 1]
    assert result.model == "oai/text-embedding-3-small"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (8, 8)
    [sent] = upstream.requests
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
    assert sent.json() == {
        "model": "text-embedding-3-small",
        "input": ["hello", "world"],
        "encoding_format": "float",
        "dimensions": 3,
    }


def test_token_arrays_and_user_reach_an_openai_upstream(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(ANSWER))
    gateway.openai().embeddings.create(
        model="oai/text-embedding-3-small", input=[[1, 2], [3]], user="u-7", encoding_format="float"
    )
    assert upstream.requests[0].json()["input"] == [[1, 2], [3]]
    assert upstream.requests[0].json()["user"] == "u-7"


def test_a_connection_that_cannot_embed_is_a_bad_request(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().embeddings.create(model="ant/claude-sonnet-4-5", input="x")
    assert "Connection 'ant' does not offer embeddings" in caught.value.message


def test_an_unknown_connection_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        gateway.openai().embeddings.create(model="nowhere/m", input="x")


def test_a_bad_body_is_refused_before_any_call(upstream: FakeUpstream, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        gateway.openai().embeddings.create(model="oai/m", input=[])
    assert upstream.requests == []


def test_an_upstream_rate_limit_reaches_the_sdk(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.route(
        "POST",
        "/v1/embeddings",
        Reply.json(
            {"error": {"message": "slow down", "type": "rate_limit"}},
            429,
            headers={"retry-after": "7"},
        ),
    )
    with pytest.raises(openai.RateLimitError) as caught:
        gateway.openai().embeddings.create(model="oai/m", input="x")
    assert caught.value.response.headers["retry-after"] == "7"
    assert UPSTREAM_OPENAI_KEY not in caught.value.message


def test_ollama_and_gemini_through_the_gateway(
    upstream: FakeUpstream, make_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    _single, multiple = ollama_documented_answers()
    upstream.route("POST", "/api/embed", Reply.json(multiple))
    upstream.route(
        "POST",
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        Reply.json({"embeddings": [{"values": [0.5, 0.25]}, {"values": [1.0, 2.0]}]}),
    )
    monkeypatch.setenv("TEST_GEMINI_KEY", "g-key-0123456789")
    gateway = make_gateway(
        f"\n[connections.local]\ncompat = 'ollama'\nbase_url = '{upstream.url}'\n"
        f"\n[connections.g]\ncompat = 'gemini'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'TEST_GEMINI_KEY'\nmax_retries = 0\n"
    )
    client = gateway.openai()
    texts = ["Why is the sky blue?", "Why is the grass green?"]
    local = client.embeddings.create(model="local/all-minilm", input=texts, encoding_format="float")
    assert [item.embedding for item in local.data] == multiple["embeddings"]
    google = client.embeddings.create(model="g/gemini-embedding-001", input=texts)
    assert [item.embedding for item in google.data] == [[0.5, 0.25], [1.0, 2.0]]
    assert upstream.requests[1].headers["x-goog-api-key"] == "g-key-0123456789"


def test_each_call_is_a_row_in_the_ledger(
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
    tmp_path: Path,
) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(ANSWER))
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    config = parse_config(
        f"[connections.oai]\ncompat = 'openai'\nbase_url = '{upstream.url}/v1'\n"
        "api_key_env = 'TEST_OAI_KEY'\nmax_retries = 0\n"
        "[connections.oai.prices.text-embedding-3-small]\ninput = 0.02\n"
    )
    ledger = open_ledger(url=url)
    gateway = gateway_factory(create_app(config, plugin_host=False, ledger=ledger))
    gateway.openai().embeddings.create(model="oai/text-embedding-3-small", input=["a", "b"])
    gateway.stop()
    with open_ledger(url=url) as reopened:
        [row] = reopened.recent()
    assert (row.connection, row.model, row.api, row.outcome) == (
        "oai",
        "text-embedding-3-small",
        "openai",
        "ok",
    )
    assert (row.input_tokens, row.output_tokens) == (8, 0)
    assert row.cost == pytest.approx(8 * 0.02 / 1e6)
    assert row.request_id and row.request_id.startswith("embd-")
    assert json.loads(upstream.requests[0].body)["model"] == "text-embedding-3-small"


def test_the_gateway_key_guards_embeddings(
    upstream: FakeUpstream, make_gateway: Callable[..., Gateway]
) -> None:
    from modelport.server._keys import GatewayKeys

    upstream.route("POST", "/v1/embeddings", Reply.json(ANSWER))
    gateway = make_gateway(keys=GatewayKeys("gw-key-0123456789"))
    with pytest.raises(openai.AuthenticationError):
        gateway.openai().embeddings.create(model="oai/m", input=["a", "b"])
    assert upstream.requests == []
    result = gateway.openai(api_key="gw-key-0123456789").embeddings.create(
        model="oai/m", input=["a", "b"]
    )
    assert len(result.data) == 2
