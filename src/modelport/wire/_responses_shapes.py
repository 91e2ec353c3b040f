"""The msgspec shapes of what an OpenAI Responses API upstream sends (client side).

Only the fields the decoder reads are declared; everything else is skipped by
msgspec without being built. Fields are lenient (``None`` defaults) because the
API adds fields and leaves others out from one model to the next.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "EVENT",
    "RESPONSE",
    "ContentPart",
    "ErrorInfo",
    "Event",
    "Item",
    "Response",
    "Usage",
]


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class ErrorInfo(msgspec.Struct):
    code: str | int | None = None
    message: str | None = None
    type: str | None = None


class _IncompleteDetails(msgspec.Struct):
    reason: str | None = None


class ContentPart(msgspec.Struct):
    """A part of a ``message`` item (``output_text``, ``refusal``) or of a reasoning item."""

    type: str = ""
    text: str | None = None
    refusal: str | None = None


class Item(msgspec.Struct):
    """An output item: ``message``, ``function_call``, ``reasoning``, or a hosted tool's call."""

    type: str = ""
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    content: list[ContentPart] | None = None
    summary: list[ContentPart] | None = None
    encrypted_content: str | None = None


class Response(msgspec.Struct):
    id: str | None = None
    status: str | None = None
    output: list[Item] | None = None
    usage: Usage | None = None
    error: ErrorInfo | None = None
    incomplete_details: _IncompleteDetails | None = None


class Event(msgspec.Struct):
    """One streamed event; ``type`` says which of the other fields it carries."""

    type: str
    delta: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    summary_index: int | None = None
    item: Item | None = None
    response: Response | None = None
    # An ``error`` event carries these at the top level (some servers nest them in ``error``).
    code: str | int | None = None
    message: str | None = None
    error: Any = None


EVENT = msgspec.json.Decoder(Event)
RESPONSE = msgspec.json.Decoder(Response)
