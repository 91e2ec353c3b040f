"""The OpenAI embeddings format, server side: ``POST /v1/embeddings`` for OpenAI clients.

:func:`parse_request` reads the body into an
:class:`~modelport.types.EmbeddingRequest` and the encoding the client wants;
:func:`encode_response` answers with the ``list`` of ``embedding`` objects the
SDKs parse. Choices made here:

* ``input`` is a string, a list of strings, one token array or a list of
  them, as OpenAI takes; an empty input (or an empty string or token array
  in it) is refused as OpenAI refuses it, and so is a token id outside
  0…:data:`MAX_TOKEN_ID`.
* ``encoding_format`` is ``float`` (the API's default) or ``base64``, which
  the official SDKs ask for unless told otherwise: little-endian float32,
  exactly as OpenAI sends it.
* ``dimensions`` is a whole number above 0; ``user`` and any other field go
  to an OpenAI upstream in ``vendor["openai"]``.
* Errors use the Chat Completions error body
  (:func:`modelport.wire.openai_chat_server.encode_error`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from modelport.errors import InvalidRequestError
from modelport.types import EmbeddingRequest, EmbeddingResponse
from modelport.wire._json import convert_request, request_object, whole_number
from modelport.wire._limits import ModelName
from modelport.wire.embeddings import float32_base64
from modelport.wire.openai_chat_server import encode_error

__all__ = ["MAX_TOKEN_ID", "EncodingFormat", "encode_error", "encode_response", "parse_request"]

EncodingFormat = Literal["float", "base64"]


class _RequestIn(msgspec.Struct, frozen=True):
    model: ModelName
    input: str | list[str | int | float | list[int | float]]
    encoding_format: EncodingFormat | None = None
    dimensions: int | float | None = None


_OWN_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions"})
#: Token ids are vocabulary indices; anything outside this range is no token.
MAX_TOKEN_ID = 2**31 - 1


def parse_request(body: Any) -> tuple[EmbeddingRequest, EncodingFormat]:
    """A client's ``/v1/embeddings`` body → the request and the encoding it wants back."""
    data = request_object(body)
    parsed = convert_request(data, _RequestIn)
    dimensions = whole_number(parsed.dimensions, "dimensions")
    if dimensions is not None and dimensions < 1:
        raise InvalidRequestError("Invalid request: dimensions must be at least 1")
    vendor = {k: v for k, v in data.items() if k not in _OWN_FIELDS and v is not None}
    request = EmbeddingRequest(
        model=parsed.model,
        input=_inputs(parsed.input),
        dimensions=dimensions,
        vendor={"openai": vendor} if vendor else {},
    )
    return request, parsed.encoding_format or "float"


def _inputs(value: str | list[str | int | float | list[int | float]]) -> list[str | list[int]]:
    if isinstance(value, str):
        value = [value]
    if not value:
        raise InvalidRequestError("Invalid request: input must not be empty - at `$.input`")
    if all(isinstance(item, int | float) for item in value):
        return [_tokens(value, "input")]  # type: ignore[arg-type]
    items: list[str | list[int]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if isinstance(item, int | float):
            raise InvalidRequestError(
                f"Invalid request: input mixes token ids with other values - at `$.{where}`"
            )
        if isinstance(item, str):
            if not item:
                raise InvalidRequestError(f"Invalid request: an input is empty - at `$.{where}`")
            items.append(item)
        else:
            items.append(_tokens(item, where))
    return items


def _tokens(values: list[int | float], where: str) -> list[int]:
    if not values:
        raise InvalidRequestError(f"Invalid request: a token array is empty - at `$.{where}`")
    tokens = [whole_number(value, f"{where}[{i}]") for i, value in enumerate(values)]
    for i, token in enumerate(tokens):
        if token is None or not 0 <= token <= MAX_TOKEN_ID:
            raise InvalidRequestError(
                f"Invalid request: {token} is not a token id - at `$.{where}[{i}]`"
            )
    return tokens  # type: ignore[return-value]


def encode_response(
    response: EmbeddingResponse, *, encoding_format: EncodingFormat = "float"
) -> bytes:
    """The ``{"object": "list", "data": [...], "model", "usage"}`` body."""
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": float32_base64(vector) if encoding_format == "base64" else vector,
        }
        for index, vector in enumerate(response.embeddings)
    ]
    tokens = response.usage.input_tokens
    return msgspec.json.encode(
        {
            "object": "list",
            "data": data,
            "model": response.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
