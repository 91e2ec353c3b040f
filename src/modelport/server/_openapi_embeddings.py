"""The embeddings schemas of the gateway's OpenAPI document (``POST /v1/embeddings``)."""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import _MODEL, _nullable, _object
from modelport.wire.openai_embeddings_server import MAX_TOKEN_ID

__all__ = ["_EMBEDDING_SCHEMAS"]

_TOKENS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID},
    "minItems": 1,
}
_TEXT = {"type": "string", "minLength": 1}

# --- what the route reads (wire/openai_embeddings_server.py) ----------------------

_EMBEDDING_SCHEMAS: dict[str, Any] = {
    "EmbeddingRequest": _object(
        {
            "model": _MODEL,
            "input": {
                "anyOf": [
                    _TEXT,
                    {"type": "array", "items": _TEXT, "minItems": 1},
                    _TOKENS,
                    {"type": "array", "items": _TOKENS, "minItems": 1},
                ],
                "description": "A text, a list of texts, a token array or a list of them",
            },
            "encoding_format": _nullable({"enum": ["float", "base64"]}),
            "dimensions": _nullable({"type": "integer", "minimum": 1}),
            "user": _nullable({"type": "string"}),
        },
        ("model", "input"),
    ),
    "EmbeddingList": _object(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "object": {"const": "embedding"},
                        "index": {"type": "integer", "minimum": 0},
                        "embedding": {
                            "anyOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "string", "contentEncoding": "base64"},
                            ],
                            "description": "Floats, or little-endian float32 in base64",
                        },
                    },
                    ("object", "index", "embedding"),
                ),
            },
            "model": {"type": "string"},
            "usage": _object(
                {
                    "prompt_tokens": {"type": "integer", "minimum": 0},
                    "total_tokens": {"type": "integer", "minimum": 0},
                },
                ("prompt_tokens", "total_tokens"),
            ),
        },
        ("object", "data", "model", "usage"),
    ),
}
