"""``modelport.embed`` and ``embed_sync``: the library's embeddings."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

import modelport
from modelport import _api
from modelport.config import Config, set_connection
from modelport.errors import InvalidRequestError
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeUpstream, Reply
from modelport.types import EmbeddingRequest, EmbeddingResponse


@pytest.fixture(autouse=True)
def _fresh_background_loop() -> Iterator[None]:
    yield
    _api._background.shutdown()


def fake_router() -> tuple[Router, FakeProvider]:
    router = Router(Config(), env={})
    provider = FakeProvider(connection="fake")
    router.register_provider("fake", provider)
    return router, provider


@pytest.mark.parametrize(
    ("given", "inputs"),
    [
        ("one text", ["one text"]),
        (["a", "b"], ["a", "b"]),
        ((x for x in ()), None),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], (3,)], [[1, 2], [3]]),
    ],
)
async def test_input_forms(given: object, inputs: list[object] | None) -> None:
    router, provider = fake_router()
    if inputs is None:
        with pytest.raises(InvalidRequestError):
            await modelport.embed("fake/e", given, router=router)  # type: ignore[arg-type]
        return
    response = await modelport.embed("fake/e", given, dimensions=4, router=router)  # type: ignore[arg-type]
    assert isinstance(response, EmbeddingResponse)
    assert response.model == "fake/e"
    assert [len(v) for v in response.embeddings] == [4] * len(inputs)
    assert provider.embedded == [EmbeddingRequest(model="e", input=inputs, dimensions=4)]


@pytest.mark.parametrize("given", [b"bytes", {"a": 1}, ["a", 1.5], [True], 3])
async def test_inputs_of_the_wrong_kind_are_refused(given: object) -> None:
    router, provider = fake_router()
    with pytest.raises(InvalidRequestError):
        await modelport.embed("fake/e", given, router=router)  # type: ignore[arg-type]
    assert provider.embedded == []


async def test_the_same_text_gives_the_same_vector() -> None:
    router, _provider = fake_router()
    first = await modelport.embed("fake/e", ["x", "y", "x"], router=router)
    assert first.embeddings[0] == first.embeddings[2] != first.embeddings[1]


def test_embed_sync_over_http() -> None:
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/embeddings", Reply.json(answer))
        set_connection("up", {"compat": "openai", "base_url": f"{upstream.url}/v1"})
        response = modelport.embed_sync("up/text-embedding-3-small", "hello there", extra={"x": 1})
        assert response.embeddings == [[0.25, -0.5]]
        assert response.model == "up/text-embedding-3-small"
        assert response.usage.input_tokens == 2
        assert upstream.requests[0].json() == {
            "model": "text-embedding-3-small",
            "input": ["hello there"],
            "encoding_format": "float",
            "x": 1,
        }


def test_embed_sync_takes_the_same_arguments() -> None:
    assert list(inspect.signature(modelport.embed).parameters) == list(
        inspect.signature(modelport.embed_sync).parameters
    )
    assert "embed" in modelport.__all__ and "embed_sync" in modelport.__all__
