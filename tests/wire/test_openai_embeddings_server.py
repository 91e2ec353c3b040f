"""``/v1/embeddings`` bodies from OpenAI clients → requests, and vectors → the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelport.errors import InvalidRequestError
from modelport.types import EmbeddingRequest, EmbeddingResponse, Usage
from modelport.wire import openai_embeddings_server as wire
from modelport.wire.embeddings import vectors_from_base64


@pytest.mark.parametrize(
    ("sent", "inputs"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3.0]], [[1, 2], [3]]),
    ],
)
def test_every_input_form(sent: Any, inputs: list[Any]) -> None:
    request, encoding = wire.parse_request(
        {"model": "openai/text-embedding-3-small", "input": sent}
    )
    assert request == EmbeddingRequest(model="openai/text-embedding-3-small", input=inputs)
    assert encoding == "float"


def test_options() -> None:
    body = {
        "model": "m",
        "input": "x",
        "encoding_format": "base64",
        "dimensions": 256.0,
        "user": "u-1",
        "extra_field": None,
    }
    request, encoding = wire.parse_request(json.dumps(body).encode())
    assert (request.dimensions, request.vendor, encoding) == (
        256,
        {"openai": {"user": "u-1"}},
        "base64",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "must not be empty"),
        ({"model": "m", "input": ""}, "an input is empty"),
        ({"model": "m", "input": ["a", ""]}, r"\$\.input\[1\]"),
        ({"model": "m", "input": ["a", 1]}, "mixes token ids"),
        ({"model": "m", "input": [[1], []]}, "token array is empty"),
        ({"model": "m", "input": [-1]}, "not a token id"),
        ({"model": "m", "input": [2**31]}, "not a token id"),
        ({"model": "m", "input": [1.5]}, "whole number"),
        ({"model": "m", "input": [True]}, "input"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions must be at least 1"),
        ({"model": "m", "input": "x", "dimensions": 1.5}, "dimensions"),
    ],
)
def test_bad_bodies(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        wire.parse_request(body)


def test_answer_as_floats_and_as_base64() -> None:
    response = EmbeddingResponse(
        model="local/nomic", embeddings=[[0.5, -1.0], [0.25, 2.0]], usage=Usage(input_tokens=7)
    )
    floats = json.loads(wire.encode_response(response))
    assert floats == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]},
        ],
        "model": "local/nomic",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    packed = json.loads(wire.encode_response(response, encoding_format="base64"))
    assert [vectors_from_base64(item["embedding"]) for item in packed["data"]] == [
        [0.5, -1.0],
        [0.25, 2.0],
    ]
