"""Reading JSON at the two edges, the same way in every wire module.

:func:`decode` reads what an upstream sent and raises ``ParseError``;
:func:`request_object` and :func:`convert_request` read what a gateway client
sent and raise ``InvalidRequestError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from modelport.errors import InvalidRequestError, ParseError

__all__ = [
    "NESTED_TOO_DEEPLY",
    "convert_request",
    "decode",
    "decode_request",
    "request_object",
    "whole_number",
]

#: What a client whose JSON is nested beyond what Python can read or write is told.
NESTED_TOO_DEEPLY = (
    "The request's JSON is nested too deeply to read; no API needs more than a few dozen levels."
)


def decode(decoder: msgspec.json.Decoder[Any], data: bytes | str | msgspec.Raw, what: str) -> Any:
    """``decoder.decode(data)``, or a ``ParseError``: "``{what}`` that could not be read".

    ``what`` names the sender and the thing, as in ``"Ollama sent a stream line"``.
    """
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ParseError(f"{what} that could not be read ({exc}): {_head(data)!r}") from exc


def _head(data: bytes | str | msgspec.Raw, limit: int = 200) -> str:
    if isinstance(data, str):
        return data[:limit]
    # A character is at most four bytes: enough for `limit` characters, never the whole body.
    return bytes(memoryview(data)[: 4 * limit]).decode("utf-8", "replace")[:limit]


def decode_request(body: bytes | bytearray | memoryview | str) -> Any:
    """A client's JSON body, or an ``InvalidRequestError`` (not JSON, or nested too deeply)."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec recurses once per level: ~990 levels exhaust Python's stack.
        raise InvalidRequestError(NESTED_TOO_DEEPLY) from None


def request_object(body: Any) -> dict[str, Any]:
    """A client's request body (bytes, str or an already-parsed mapping) as a dict."""
    if isinstance(body, bytes | bytearray | memoryview | str):
        body = decode_request(body)
    if not isinstance(body, Mapping):
        raise InvalidRequestError("The request body must be a JSON object")
    return dict(body)


def convert_request(value: Any, shape: Any, where: str = "") -> Any:
    """``msgspec.convert(value, shape)``, or an ``InvalidRequestError`` naming the bad field.

    ``where`` is the path of ``value`` inside the request (``"messages[2]"``), so
    that the field named is the client's, not one relative to ``value``.
    """
    try:
        return msgspec.convert(value, shape)
    except RecursionError:
        raise InvalidRequestError(NESTED_TOO_DEEPLY) from None
    except msgspec.ValidationError as exc:
        detail = str(exc)
        if where and "`$" in detail:
            detail = detail.replace("`$", f"`$.{where}", 1)
        elif where:
            detail = f"{detail} - at `$.{where}`"
        raise InvalidRequestError(f"Invalid request: {detail}") from exc


def whole_number(value: float | None, where: str) -> int | None:
    """A count a client sent: JSON's ``1024.0`` is the integer 1024, ``1.5`` is a mistake.

    Request shapes declare such fields ``int | float``, since a JSON Schema
    ``integer`` (and the vendors' own servers) accept a whole number written
    with a fraction.
    """
    if value is None or isinstance(value, int):
        return value
    if not value.is_integer():
        raise InvalidRequestError(f"Invalid request: Expected a whole number - at `$.{where}`")
    return int(value)
