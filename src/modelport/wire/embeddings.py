"""The embedding endpoints of each format, client side: request → body, answer → vectors.

* **OpenAI** ``POST /embeddings``: ``input`` as given (strings or token
  arrays), ``encoding_format: "float"`` (an answer in base64 is read too),
  ``dimensions``; ``usage.prompt_tokens`` is the input. ``vendor["openai"]``
  (``user``) merges in.
* **Ollama** ``POST /api/embed``: strings only, ``dimensions``;
  ``prompt_eval_count`` is the input.
* **Gemini** ``models/{model}:embedContent`` for one text,
  ``:batchEmbedContents`` for several (:data:`GEMINI_BATCH` at most per call;
  the provider splits longer lists); ``outputDimensionality``;
  ``vendor["gemini"]`` (``taskType``, ``title``) merges into each request.
  Gemini reports no token count.

Token arrays reach only OpenAI-compatible servers; the others cannot read
them, so they are refused rather than sent as text.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import msgspec

from modelport.errors import InvalidRequestError, ParseError
from modelport.types import EmbeddingRequest, Usage
from modelport.wire._json import decode

__all__ = [
    "GEMINI_BATCH",
    "Embedded",
    "decode_gemini",
    "decode_ollama",
    "decode_openai",
    "float32_base64",
    "gemini_body",
    "gemini_texts",
    "ollama_body",
    "openai_body",
    "vectors_from_base64",
]

#: The most texts one ``batchEmbedContents`` call takes.
GEMINI_BATCH = 100


class Embedded(msgspec.Struct, frozen=True):
    """Vectors in input order, and the usage where the API reports it."""

    vectors: list[list[float]]
    usage: Usage


# --- base64 float32, the format OpenAI's SDKs ask for by default ------------------------


def float32_base64(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32, as OpenAI sends ``encoding_format=base64``."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def vectors_from_base64(text: str) -> list[float]:
    """The inverse of :func:`float32_base64`."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ParseError(f"An embedding in base64 could not be read: {text[:40]!r}") from exc
    if len(raw) % 4:
        raise ParseError("An embedding in base64 is not a whole number of float32 values")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _texts(request: EmbeddingRequest, api: str) -> list[str]:
    texts = [item for item in request.input if isinstance(item, str)]
    if len(texts) != len(request.input):
        raise InvalidRequestError(f"{api} embeds text only, not token arrays: send the text")
    return texts


# --- OpenAI ------------------------------------------------------------------------------


class _OpenAIItem(msgspec.Struct, frozen=True):
    embedding: list[float] | str
    index: int | None = None


class _OpenAIUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int | None = None
    total_tokens: int | None = None


class _OpenAIAnswer(msgspec.Struct, frozen=True):
    data: list[_OpenAIItem]
    usage: _OpenAIUsage | None = None


_OPENAI = msgspec.json.Decoder(_OpenAIAnswer, strict=False)


def openai_body(request: EmbeddingRequest) -> dict[str, Any]:
    """The ``POST /embeddings`` body (``request.model`` is the bare id)."""
    body: dict[str, Any] = {
        "model": request.model,
        "input": list(request.input),
        "encoding_format": "float",
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    body.update(request.vendor.get("openai", {}))
    body.update(request.extra)
    return body


def decode_openai(body: bytes | dict[str, Any]) -> Embedded:
    """An OpenAI ``list`` of ``embedding`` objects (or that object already parsed)."""
    if isinstance(body, dict):
        try:
            answer = msgspec.convert(body, _OpenAIAnswer, strict=False)
        except msgspec.ValidationError as exc:
            raise ParseError(f"The embeddings answer had an unexpected shape: {exc}") from exc
    else:
        answer = decode(_OPENAI, body, "The upstream sent an embeddings answer")
    items = sorted(
        enumerate(answer.data), key=lambda pair: pair[0] if pair[1].index is None else pair[1].index
    )
    vectors = [
        vectors_from_base64(item.embedding) if isinstance(item.embedding, str) else item.embedding
        for _, item in items
    ]
    usage = answer.usage
    tokens = (usage.prompt_tokens or usage.total_tokens or 0) if usage is not None else 0
    return Embedded(vectors=vectors, usage=Usage(input_tokens=tokens))


# --- Ollama ------------------------------------------------------------------------------


class _OllamaAnswer(msgspec.Struct, frozen=True):
    embeddings: list[list[float]]
    prompt_eval_count: int | None = None


_OLLAMA = msgspec.json.Decoder(_OllamaAnswer, strict=False)


def ollama_body(request: EmbeddingRequest) -> dict[str, Any]:
    """The ``POST /api/embed`` body."""
    body: dict[str, Any] = {"model": request.model, "input": _texts(request, "Ollama")}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    body.update(request.vendor.get("ollama", {}))
    body.update(request.extra)
    return body


def decode_ollama(body: bytes) -> Embedded:
    answer: _OllamaAnswer = decode(_OLLAMA, body, "Ollama sent an embeddings answer")
    return Embedded(
        vectors=answer.embeddings, usage=Usage(input_tokens=answer.prompt_eval_count or 0)
    )


# --- Gemini ------------------------------------------------------------------------------


class _Values(msgspec.Struct, frozen=True):
    values: list[float]


class _GeminiAnswer(msgspec.Struct, frozen=True):
    embedding: _Values | None = None
    embeddings: list[_Values] | None = None


_GEMINI = msgspec.json.Decoder(_GeminiAnswer, strict=False)


def gemini_body(request: EmbeddingRequest, texts: list[str], model_path: str) -> dict[str, Any]:
    """The body for ``texts``: ``embedContent``'s for one, ``batchEmbedContents``' for more.

    ``model_path`` is ``models/{model}``, which each request of a batch names.
    """
    options: dict[str, Any] = {}
    if request.dimensions is not None:
        options["outputDimensionality"] = request.dimensions
    options.update(request.vendor.get("gemini", {}))
    one = [{"content": {"parts": [{"text": text}]}, **options} for text in texts]
    if len(one) == 1:
        body = one[0]
    else:
        body = {"requests": [{"model": model_path, **item} for item in one]}
    body.update(request.extra)
    return body


def gemini_texts(request: EmbeddingRequest) -> list[str]:
    """The request's texts (Gemini takes no token arrays)."""
    return _texts(request, "Gemini")


def decode_gemini(body: bytes) -> Embedded:
    answer: _GeminiAnswer = decode(_GEMINI, body, "Gemini sent an embeddings answer")
    if answer.embeddings is not None:
        vectors = [item.values for item in answer.embeddings]
    elif answer.embedding is not None:
        vectors = [answer.embedding.values]
    else:
        raise ParseError("Gemini answered the embedding request with no embedding")
    return Embedded(vectors=vectors, usage=Usage())
