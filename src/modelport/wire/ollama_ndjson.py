"""Ollama's native API, client side: ``POST /api/chat`` (NDJSON stream) and ``GET /api/tags``.

Choices this module makes where the API leaves room:

* **Reasoning.** ``think`` is ``true`` for a token budget (Ollama has no budget
  knob) and the effort level for an effort (``"low"``/``"medium"``/``"high"``;
  ``minimal`` is sent as ``"low"``). Levels are what gpt-oss understands; for a
  model that takes only a boolean, ``vendor={"ollama": {"think": True}}``
  overrides the level.
* **Tool calls** arrive whole and without ids, so the decoder gives each one a
  fresh ``call_<hex>`` id (unique across turns, so histories never hold two
  calls with the same id) and sends its arguments as one fragment.
* **Images** must travel as base64: Ollama cannot fetch URLs, so an image given
  by URL is refused rather than dropped.
* ``tool_choice`` has no ``/api/chat`` equivalent and is not sent; cache
  markers, thinking signatures and redacted thinking mean nothing to Ollama and
  are dropped; an assistant turn's thinking text goes back in its ``thinking``.
* The legacy ``/api/generate`` stream decodes too: its ``response`` field is
  read as text, so one decoder serves both endpoints.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from modelport.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    ParseError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import (
    Capabilities,
    ChatRequest,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    ThinkingPart,
)
from modelport.wire._errors import describe_body, error_for_status, excerpt, truncated_stream
from modelport.wire._json import decode
from modelport.wire._vendor import note_unsent

__all__ = [
    "StreamDecoder",
    "build_request",
    "decode_models",
    "decode_response",
    "error_from_response",
]

#: A single NDJSON line longer than this is not a stream we could ever finish reading.
MAX_LINE_BYTES = 16 * 1024 * 1024

_DONE_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


# --- request -------------------------------------------------------------


def build_request(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``POST /api/chat`` body for ``request`` (``request.model`` is the bare name)."""
    note_unsent(request, "ollama")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _messages(request.messages),
        "stream": stream,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.stop:
        options["stop"] = list(request.stop)
    if request.response_format is not None:
        body["format"] = _format(request.response_format)
    if request.reasoning is not None:
        effort = request.reasoning.effort
        body["think"] = True if effort is None else ("low" if effort == "minimal" else effort)
    vendor = dict(request.vendor.get("ollama", {}))
    options.update(vendor.pop("options", None) or {})
    if options:
        body["options"] = options
    body.update(vendor)
    body.update(request.extra)
    return body


def _format(response_format: dict[str, Any]) -> Any:
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = response_format.get("json_schema", {})
        return schema.get("schema", schema) if isinstance(schema, dict) else schema
    if kind == "text":
        return ""
    raise InvalidRequestError(f"Ollama cannot produce response_format {kind!r}")


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text}
        thinking = "".join(part.text for part in message.parts if isinstance(part, ThinkingPart))
        if thinking and message.role == "assistant":
            # Thinking models (gpt-oss) reason better in tool loops with their own thoughts back.
            entry["thinking"] = thinking
        images = [_image(part) for part in message.parts if isinstance(part, ImagePart)]
        if images:
            entry["images"] = images
        if message.tool_calls:
            entry["tool_calls"] = [
                _tool_call(call.name, call.arguments) for call in message.tool_calls
            ]
            names.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool":
            name = message.name or names.get(message.tool_call_id or "")
            if name:
                entry["tool_name"] = name
        out.append(entry)
    return out


def _image(part: ImagePart) -> str:
    if part.data is None:
        raise InvalidRequestError(
            "Ollama cannot fetch images by URL; download the image and pass it as base64 data"
        )
    return part.data


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    try:
        parsed = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"The arguments of tool call {name!r} are not valid JSON: {arguments[:200]!r}"
        ) from exc
    return {"function": {"name": name, "arguments": parsed}}


# --- upstream JSON shapes --------------------------------------------------


class _Function(msgspec.Struct):
    name: str
    arguments: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Call(msgspec.Struct):
    function: _Function


class _Message(msgspec.Struct):
    content: str | None = None
    thinking: str | None = None
    tool_calls: list[_Call] | None = None


class _Chunk(msgspec.Struct):
    message: _Message | None = None
    response: str | None = None
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: str | None = None


class _Details(msgspec.Struct):
    family: str | None = None
    families: list[str] | None = None
    parameter_size: str | None = None
    quantization_level: str | None = None


class _Tag(msgspec.Struct):
    name: str
    model: str | None = None
    details: _Details | None = None
    capabilities: list[str] | None = None


class _Tags(msgspec.Struct):
    models: list[_Tag]


class _ErrorBody(msgspec.Struct):
    error: str | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)
_TAGS = msgspec.json.Decoder(_Tags)
_ERROR_BODY = msgspec.json.Decoder(_ErrorBody)
_MISSING_MODEL = re.compile(r"model ['\"]?([^'\"\s]+)['\"]? not found")
_VISION_FAMILIES = frozenset({"clip", "mllama", "gemma3", "qwen25vl"})


# --- errors ----------------------------------------------------------------


def _error(
    message: str, status: int, headers: Mapping[str, str], body: bytes | None
) -> ModelportError:
    missing = _MISSING_MODEL.search(message)
    if missing or (status == 404 and "not found" in message):
        name = missing.group(1) if missing else "MODEL"
        return ModelNotFoundError(
            f"Ollama has no model {name!r} — run `ollama pull {name}` and try again",
            status=status,
            body=excerpt(body) if body is not None else None,
        )
    return error_for_status(status, f"Ollama: {message}", headers=headers, body=body)


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelportError:
    """The error for a non-2xx answer (``{"error": "..."}``)."""
    try:
        message = _ERROR_BODY.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        message = None
    return _error(message or describe_body(body, 200) or f"HTTP {status}", status, headers, body)


# --- streaming -------------------------------------------------------------


class StreamDecoder:
    """Turns the NDJSON lines of a streaming ``/api/chat`` answer into canonical events."""

    def __init__(self) -> None:
        self._buffer = b""
        self._calls = 0
        self._done = False

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        buffer = self._buffer + chunk
        start = 0
        while (newline := buffer.find(b"\n", start)) != -1:
            self._line(buffer[start:newline], events)
            start = newline + 1
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ParseError("An NDJSON line from Ollama exceeded 16 MiB without ending")
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        buffer, self._buffer = self._buffer, b""
        self._line(buffer, events)
        if not self._done:
            raise truncated_stream()
        return events

    def _line(self, line: bytes, events: list[StreamEvent]) -> None:
        line = line.strip()
        if not line or self._done:
            return
        self._calls = _chunk_events(
            decode(_CHUNK, line, "Ollama sent a stream line"), events, self._calls
        )
        if events and isinstance(events[-1], FinishEvent):
            self._done = True


def _chunk_events(chunk: _Chunk, events: list[StreamEvent], calls: int) -> int:
    """Append the events of one chunk; returns the number of tool calls seen so far."""
    if chunk.error is not None:
        raise _error(chunk.error, 500, {}, None)
    message = chunk.message
    thinking = message.thinking if message is not None else chunk.thinking
    if thinking:
        events.append(ReasoningEvent(text=thinking))
    text = message.content if message is not None else chunk.response
    if text:
        events.append(TextEvent(text=text))
    if message is not None and message.tool_calls:
        for call in message.tool_calls:
            events.append(
                ToolCallStartEvent(
                    index=calls, id=f"call_{uuid.uuid4().hex[:24]}", name=call.function.name
                )
            )
            events.append(ToolCallDeltaEvent(index=calls, arguments=_arguments(call.function)))
            calls += 1
    if chunk.done:
        input_tokens = chunk.prompt_eval_count or 0
        events.append(UsageEvent(input_tokens=input_tokens, output_tokens=chunk.eval_count or 0))
        reason = _DONE_REASONS.get(chunk.done_reason or "stop", "stop")
        events.append(FinishEvent(reason="tool_calls" if calls and reason == "stop" else reason))
    return calls


def _arguments(function: _Function) -> str:
    raw = bytes(function.arguments).strip()
    if not raw or raw == b"null":
        return "{}"
    if raw.startswith(b'"'):
        # Some Ollama-compatible servers send the arguments as a JSON string.
        try:
            return msgspec.json.decode(raw, type=str) or "{}"
        except msgspec.DecodeError as exc:
            raise ParseError(f"Ollama sent unreadable tool arguments: {raw[:200]!r}") from exc
    return raw.decode()


# --- non-streaming ---------------------------------------------------------


def decode_response(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming ``/api/chat`` body stands for."""
    events: list[StreamEvent] = []
    _chunk_events(decode(_CHUNK, body, "Ollama sent a response"), events, 0)
    return events


def decode_models(body: bytes, connection: str) -> list[ModelInfo]:
    """``GET /api/tags`` → one :class:`ModelInfo` per pulled model."""
    tags: _Tags = decode(_TAGS, body, "Ollama sent a model list")
    return [_model(tag, connection) for tag in tags.models]


def _model(tag: _Tag, connection: str) -> ModelInfo:
    details = tag.details or _Details()
    shown = ", ".join(filter(None, [details.parameter_size, details.quantization_level]))
    families = set(details.families or []) | ({details.family} if details.family else set())
    capabilities = Capabilities(vision=bool(families & _VISION_FAMILIES))
    if tag.capabilities is not None:
        # Newer servers say outright what a model can do.
        capabilities = Capabilities(
            tools="tools" in tag.capabilities,
            vision="vision" in tag.capabilities,
            reasoning="thinking" in tag.capabilities,
        )
    return ModelInfo(
        id=tag.name,
        connection=connection,
        name=f"{tag.name} ({shown})" if shown else tag.name,
        capabilities=capabilities,
    )
