"""Each built-in adapter's ``embed`` against a real local server.

No recorded embedding traffic exists in tests/fixtures: Ollama's replies are
the examples of its API documentation (``ollama/docs-api.md``); OpenAI's,
Azure's and Gemini's are the shapes their API references document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelport.errors import (
    AuthError,
    InvalidRequestError,
    ModelNotFoundError,
    ParseError,
    RateLimitError,
)
from modelport.providers import ConnectionSettings, offers_embeddings
from modelport.providers._http import HttpProvider
from modelport.providers._retry import RetryingProvider
from modelport.providers.anthropic import AnthropicProvider
from modelport.providers.azure import DEFAULT_API_VERSION, AzureProvider
from modelport.providers.gemini import GeminiProvider
from modelport.providers.ollama import OllamaProvider
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import EmbeddingRequest, Usage
from tests.wire.test_embeddings import ollama_documented_answers

KEY = "embed-test-secret-0123456789"


def openai_answer(vectors: list[list[float]], tokens: int = 8) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@pytest.fixture
async def providers() -> AsyncIterator[list[HttpProvider]]:
    made: list[HttpProvider] = []
    yield made
    for provider in made:
        await provider.aclose()


def _make(made: list[HttpProvider], cls: type[HttpProvider], **fields: Any) -> Any:
    fields.setdefault("api_key", KEY)
    provider = cls(ConnectionSettings(max_retries=0, **fields))
    made.append(provider)
    return provider


def test_which_adapters_embed() -> None:
    def settings(compat: str) -> ConnectionSettings:
        return ConnectionSettings(name="x", compat=compat, base_url="http://127.0.0.1:1")

    assert offers_embeddings(OpenAICompatProvider(settings("openai")))
    assert offers_embeddings(OllamaProvider(settings("ollama")))
    assert offers_embeddings(GeminiProvider(settings("gemini")))
    assert offers_embeddings(AzureProvider(settings("azure")))
    assert not offers_embeddings(AnthropicProvider(settings("anthropic")))


async def test_openai_compatible(upstream: FakeUpstream, providers: list[HttpProvider]) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(openai_answer([[0.1, 0.2], [0.3, 0.4]])))
    provider = _make(
        providers, OpenAICompatProvider, name="oai", compat="openai", base_url=f"{upstream.url}/v1"
    )
    request = EmbeddingRequest(model="text-embedding-3-small", input=["a", [5, 6]], dimensions=2)
    response = await provider.embed(request)
    assert response.embeddings == [[0.1, 0.2], [0.3, 0.4]]
    assert (response.model, response.usage) == ("text-embedding-3-small", Usage(input_tokens=8))
    [sent] = upstream.requests
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {
        "model": "text-embedding-3-small",
        "input": ["a", [5, 6]],
        "encoding_format": "float",
        "dimensions": 2,
    }


async def test_ollama_documented_example(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    _single, multiple = ollama_documented_answers()
    upstream.route("POST", "/api/embed", Reply.json(multiple))
    provider = _make(
        providers,
        OllamaProvider,
        name="local",
        compat="ollama",
        base_url=upstream.url,
        api_key=None,
    )
    texts = ["Why is the sky blue?", "Why is the grass green?"]
    response = await provider.embed(EmbeddingRequest(model="all-minilm", input=texts))
    assert response.embeddings == multiple["embeddings"]
    assert upstream.requests[0].json() == {"model": "all-minilm", "input": texts}


async def test_ollama_names_a_model_to_pull(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    upstream.route(
        "POST",
        "/api/embed",
        Reply.json({"error": 'model "nomic-embed-text" not found, try pulling it first'}, 404),
    )
    provider = _make(
        providers,
        OllamaProvider,
        name="local",
        compat="ollama",
        base_url=upstream.url,
        api_key=None,
    )
    with pytest.raises(ModelNotFoundError, match="ollama pull nomic-embed-text") as caught:
        await provider.embed(EmbeddingRequest(model="nomic-embed-text", input=["x"]))
    assert (caught.value.connection, caught.value.model) == ("local", "nomic-embed-text")


async def test_gemini_one_text_then_batches_of_a_hundred(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    root = "/v1beta/models/gemini-embedding-001"
    upstream.route("POST", f"{root}:embedContent", Reply.json({"embedding": {"values": [0.5]}}))
    upstream.route(
        "POST",
        f"{root}:batchEmbedContents",
        Reply.json({"embeddings": [{"values": [float(i)]} for i in range(100)]}),
        Reply.json({"embeddings": [{"values": [float(i)]} for i in range(100, 150)]}),
    )
    provider = _make(
        providers, GeminiProvider, name="gemini", compat="gemini", base_url=upstream.url
    )
    one = await provider.embed(EmbeddingRequest(model="gemini-embedding-001", input=["hi"]))
    assert one.embeddings == [[0.5]]
    texts = [f"t{i}" for i in range(150)]
    many = await provider.embed(
        EmbeddingRequest(model="gemini-embedding-001", input=texts, dimensions=1)
    )
    assert many.embeddings == [[float(i)] for i in range(150)]
    first, second, third = upstream.requests
    assert first.path == f"{root}:embedContent"
    assert first.json() == {"content": {"parts": [{"text": "hi"}]}}
    assert first.headers["x-goog-api-key"] == KEY
    assert [len(r.json()["requests"]) for r in (second, third)] == [100, 50]
    assert second.json()["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "t0"}]},
        "outputDimensionality": 1,
    }


async def test_azure_deployment(upstream: FakeUpstream, providers: list[HttpProvider]) -> None:
    path = "/openai/deployments/emb-small/embeddings"
    upstream.route("POST", path, Reply.json(openai_answer([[1.0, 0.0]], tokens=3)))
    provider = _make(providers, AzureProvider, name="az", compat="azure", base_url=upstream.url)
    response = await provider.embed(EmbeddingRequest(model="emb-small", input=["x"]))
    assert (response.embeddings, response.usage) == ([[1.0, 0.0]], Usage(input_tokens=3))
    [sent] = upstream.requests
    assert (sent.path, sent.query, sent.headers["api-key"]) == (
        path,
        f"api-version={DEFAULT_API_VERSION}",
        KEY,
    )


async def test_a_short_answer_is_a_parse_error(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    upstream.route("POST", "/v1/embeddings", Reply.json(openai_answer([[0.1]])))
    provider = _make(
        providers, OpenAICompatProvider, name="oai", compat="openai", base_url=f"{upstream.url}/v1"
    )
    with pytest.raises(ParseError, match="answered 1 embeddings for 2 inputs"):
        await provider.embed(EmbeddingRequest(model="m", input=["a", "b"]))


async def test_errors_are_mapped_and_retried(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    limited = Reply.json({"error": {"message": "slow down", "type": "rate_limit"}}, 429)
    upstream.route("POST", "/v1/embeddings", limited, Reply.json(openai_answer([[0.1]])))
    provider = _make(
        providers, OpenAICompatProvider, name="oai", compat="openai", base_url=f"{upstream.url}/v1"
    )
    with pytest.raises(RateLimitError) as caught:
        await provider.embed(EmbeddingRequest(model="m", input=["a"]))
    assert caught.value.url == f"{upstream.url}/v1/embeddings"
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    retrying = RetryingProvider(provider, max_retries=1, sleep=sleep)
    upstream.route("POST", "/v1/embeddings", limited, Reply.json(openai_answer([[0.1]])))
    response = await retrying.embed(EmbeddingRequest(model="m", input=["a"]))
    assert response.embeddings == [[0.1]] and len(waited) == 1


async def test_token_arrays_are_refused_before_any_request(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    provider = _make(
        providers, GeminiProvider, name="gemini", compat="gemini", base_url=upstream.url
    )
    with pytest.raises(InvalidRequestError, match="not token arrays"):
        await provider.embed(EmbeddingRequest(model="gemini-embedding-001", input=[[1, 2]]))
    assert upstream.requests == []


async def test_a_missing_key_fails_before_any_request(
    upstream: FakeUpstream, providers: list[HttpProvider]
) -> None:
    provider = _make(
        providers,
        GeminiProvider,
        name="gemini",
        compat="gemini",
        base_url=upstream.url,
        api_key=None,
    )
    with pytest.raises(AuthError):
        await provider.embed(EmbeddingRequest(model="gemini-embedding-001", input=["x"]))
    assert upstream.requests == []
