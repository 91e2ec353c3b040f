"""Embedding requests and answers of each format, client side.

No recorded embedding traffic exists in tests/fixtures. Ollama's answers come
from its API documentation (``ollama/docs-api.md``, a verbatim copy); the
OpenAI and Gemini answers are the shapes their API references document.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.errors import InvalidRequestError, ParseError
from modelport.types import EmbeddingRequest, Usage
from modelport.wire import embeddings
from tests._fixtures import fixture_bytes


def ollama_documented_answers() -> list[dict[str, object]]:
    """The two ``/api/embed`` responses in Ollama's docs/api.md, in order."""
    docs = fixture_bytes("ollama/docs-api.md").decode()
    section = docs[docs.index("POST /api/embed") : docs.index("## List Running Models")]
    blocks = re.findall(r"#### Response\n\n```json\n(.*?)```", section, re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_openai_body() -> None:
    request = EmbeddingRequest(
        model="text-embedding-3-small",
        input=["a", [1, 2]],
        dimensions=256,
        vendor={"openai": {"user": "u1"}, "gemini": {"taskType": "X"}},
        extra={"x": 1},
    )
    assert embeddings.openai_body(request) == {
        "model": "text-embedding-3-small",
        "input": ["a", [1, 2]],
        "encoding_format": "float",
        "dimensions": 256,
        "user": "u1",
        "x": 1,
    }


def test_openai_answer_in_either_encoding_and_any_order() -> None:
    # OpenAI's documented answer, with the items out of order and one in base64.
    packed = embeddings.float32_base64([0.5, -2.0])
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": packed},
            {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    answer = embeddings.decode_openai(json.dumps(body).encode())
    assert answer.vectors == [[0.0023064255, -0.009327292], [0.5, -2.0]]
    assert answer.usage == Usage(input_tokens=8)
    assert embeddings.decode_openai(body) == answer


def test_ollama_documented_answers() -> None:
    single, multiple = ollama_documented_answers()
    answer = embeddings.decode_ollama(json.dumps(single).encode())
    assert answer.vectors == single["embeddings"]
    assert len(answer.vectors[0]) == 10 and answer.vectors[0][0] == 0.010071029
    assert answer.usage == Usage(input_tokens=8)
    both = embeddings.decode_ollama(json.dumps(multiple).encode())
    assert [v[0] for v in both.vectors] == [0.010071029, -0.0098027075]
    assert both.usage == Usage()


def test_ollama_body_and_token_arrays() -> None:
    request = EmbeddingRequest(model="all-minilm", input=["Why is the sky blue?"], dimensions=8)
    assert embeddings.ollama_body(request) == {
        "model": "all-minilm",
        "input": ["Why is the sky blue?"],
        "dimensions": 8,
    }
    with pytest.raises(InvalidRequestError, match="Ollama embeds text only"):
        embeddings.ollama_body(EmbeddingRequest(model="m", input=[[1, 2]]))


def test_gemini_bodies() -> None:
    request = EmbeddingRequest(
        model="gemini-embedding-001",
        input=["a", "b"],
        dimensions=768,
        vendor={"gemini": {"taskType": "RETRIEVAL_DOCUMENT"}},
    )
    path = "models/gemini-embedding-001"
    assert embeddings.gemini_body(request, ["a"], path) == {
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 768,
        "taskType": "RETRIEVAL_DOCUMENT",
    }
    assert embeddings.gemini_body(request, ["a", "b"], path) == {
        "requests": [
            {
                "model": path,
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 768,
                "taskType": "RETRIEVAL_DOCUMENT",
            }
            for text in ("a", "b")
        ]
    }
    with pytest.raises(InvalidRequestError, match="Gemini embeds text only"):
        embeddings.gemini_texts(EmbeddingRequest(model="m", input=[[1]]))


def test_gemini_answers() -> None:
    one = embeddings.decode_gemini(b'{"embedding": {"values": [0.1, 0.2]}}')
    many = embeddings.decode_gemini(b'{"embeddings": [{"values": [1]}, {"values": [2]}]}')
    assert (one.vectors, many.vectors) == ([[0.1, 0.2]], [[1.0], [2.0]])
    assert one.usage == Usage()
    with pytest.raises(ParseError, match="no embedding"):
        embeddings.decode_gemini(b"{}")


@pytest.mark.parametrize(
    "decode", [embeddings.decode_openai, embeddings.decode_ollama, embeddings.decode_gemini]
)
@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=80))
def test_garbage_answers_are_parse_errors(decode: object, body: bytes) -> None:
    try:
        decode(body)  # type: ignore[operator]
    except ParseError:
        pass


_FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(_FLOAT32, max_size=64))
def test_base64_is_little_endian_float32_both_ways(vector: list[float]) -> None:
    text = embeddings.float32_base64(vector)
    assert struct.unpack(f"<{len(vector)}f", base64.b64decode(text)) == tuple(vector)
    assert embeddings.vectors_from_base64(text) == vector


def test_base64_rounds_to_float32() -> None:
    [value] = embeddings.vectors_from_base64(embeddings.float32_base64([0.1]))
    assert value != 0.1 and math.isclose(value, 0.1, rel_tol=1e-7)


@pytest.mark.parametrize("text", ["not base64!", "AAA="])
def test_unreadable_base64(text: str) -> None:
    with pytest.raises(ParseError):
        embeddings.vectors_from_base64(text)
