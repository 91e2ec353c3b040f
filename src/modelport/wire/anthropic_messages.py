"""The Anthropic Messages API, client side: canonical request → body, answers → events.

Choices this module makes where the API leaves room:

* **System prompt.** Every ``system`` message is hoisted into ``system``: a plain
  string (texts joined by a blank line), or a list of text blocks as soon as one
  of them carries a cache marker, because only blocks can hold ``cache_control``.
* **Reasoning.** ``Reasoning(budget_tokens=N)`` is sent as is; an effort becomes
  a budget from :data:`EFFORT_BUDGETS`. ``max_tokens`` must exceed the budget, so
  when it does not, the budget is added on top of it (the caller's
  ``max_tokens`` then bounds the visible answer).
* **Server tools** (``server_tool_use``, ``web_search_tool_result``,
  ``bash_code_execution_tool_result`` …) run on Anthropic's side and their results
  are already folded into the text that follows, so the decoder surfaces nothing
  for them: they are not calls the client could answer. ``citations_delta`` is
  dropped for the same reason (the cited text arrives as ordinary text).
* **Usage.** Anthropic's ``input_tokens`` leaves out cache reads and writes; the
  decoder adds them back (see :mod:`modelport.types`). ``message_delta`` carries
  cumulative counts, which are merged into the snapshot, never added.
* **Thinking sent back.** Signed thinking blocks and redacted ones go back
  exactly as received, ahead of the turn's other content. A thinking part with
  no signature was written by another vendor's model (it came through a
  translation) and is dropped: Anthropic refuses unsigned thinking.
* **Strict tools.** ``ToolDefinition(strict=True)`` is sent as ``"strict": true``
  on the tool; ``False`` is the API's default and is left out.
* ``response_format`` has no Messages API equivalent and is not sent.
* ``vendor["anthropic"]`` is merged over the body, except that its ``tools``
  (server tools such as code execution, which have no canonical form) are put
  in front of the client tools instead of replacing them.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from modelport.errors import ModelNotFoundError, ModelportError, ParseError
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import Capabilities, FinishReason, ModelInfo
from modelport.wire._anthropic_request import DEFAULT_MAX_TOKENS, EFFORT_BUDGETS, build_request
from modelport.wire._errors import describe_body, error_for_status, excerpt, truncated_stream
from modelport.wire._json import decode
from modelport.wire._sse import SSEEvent
from modelport.wire._sse_stream import SSEStreamDecoder

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "StreamDecoder",
    "build_request",
    "decode_models",
    "decode_response",
    "error_from_response",
]

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}

#: Anthropic error ``type`` → the HTTP status it is documented with.
_ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# --- upstream JSON shapes --------------------------------------------------


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str | None = None
    # Raw keeps the model's JSON text as produced; it is only ever passed through.
    input: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _BlockType(msgspec.Struct):
    type: str


#: Blocks the decoders read; any other (server tools and their results, blocks
#: added after this was written) is only looked at for its type, so its fields
#: can take whatever shape they like.
_KNOWN_BLOCKS = frozenset({"text", "thinking", "redacted_thinking", "tool_use"})


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _Error(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    content: list[msgspec.Raw] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str
    index: int | None = None
    message: _Message | None = None
    content_block: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error | None = None


class _ModelEntry(msgspec.Struct):
    id: str
    display_name: str | None = None


class _ModelList(msgspec.Struct):
    data: list[_ModelEntry]


_EVENT = msgspec.json.Decoder(_Event)
_BLOCK = msgspec.json.Decoder(_Block)
_BLOCK_TYPE = msgspec.json.Decoder(_BlockType)
_MESSAGE = msgspec.json.Decoder(_Message)
_ERROR_BODY = msgspec.json.Decoder(_ErrorBody)
_MODELS = msgspec.json.Decoder(_ModelList)


def _block(raw: msgspec.Raw) -> _Block:
    head: _BlockType = decode(_BLOCK_TYPE, raw, "Anthropic sent a content block")
    if head.type not in _KNOWN_BLOCKS:
        return _Block(type=head.type)
    return decode(_BLOCK, raw, "Anthropic sent a content block")


# --- usage and errors ------------------------------------------------------


class _UsageState:
    """The cumulative usage, merged from ``message_start`` and ``message_delta``."""

    __slots__ = ("cache_read", "cache_write", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0

    def merge(self, usage: _Usage) -> UsageEvent:
        if usage.input_tokens is not None:
            self.input = usage.input_tokens
        if usage.output_tokens is not None:
            self.output = usage.output_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens
        return UsageEvent(
            input_tokens=self.input + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
        )


def _error(
    kind: str, message: str, status: int | None, headers: Mapping[str, str], body: bytes | None
) -> ModelportError:
    status = status or _ERROR_STATUSES.get(kind, 500)
    message = f"Anthropic: {message or kind or f'HTTP {status}'}"
    if kind == "not_found_error" or status == 404:
        return ModelNotFoundError(
            f"{message} — check the model id (`modelport models` lists them)",
            status=status,
            body=excerpt(body) if body is not None else None,
        )
    return error_for_status(status, message, headers=headers, body=body, code=kind or None)


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelportError:
    """The error for a non-2xx answer (``{"type": "error", "error": {"type", "message"}}``)."""
    try:
        parsed = _ERROR_BODY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = _ErrorBody()
    if parsed.error is None:
        return _error("", describe_body(body, 200), status, headers, body)
    return _error(parsed.error.type, parsed.error.message, status, headers, body)


# --- streaming -------------------------------------------------------------

_TEXT, _THINKING, _TOOL, _IGNORED = 0, 1, 2, 3


class StreamDecoder(SSEStreamDecoder):
    """Turns the bytes of a ``stream: true`` answer into canonical events.

    Any split of the bytes yields the same events, then the same error:

    * ``message_start``'s usage is held back until the first content event (or
      the finish), so an ``event: error`` right after it (a 529 before any
      content) fails the stream before anything reached the caller, whichever
      read it arrived in, and the call can be retried.
    * An in-band error (or malformed data) after events decoded in the same
      :meth:`feed` is raised by the next :meth:`feed` or :meth:`close`, once
      those events are out.
    """

    def __init__(self) -> None:
        super().__init__()
        self._usage = _UsageState()
        # content-block index → (kind, tool-call ordinal)
        self._blocks: dict[int, tuple[int, int]] = {}
        self._calls = 0
        self._filled: set[int] = set()
        self._start_input: dict[int, bytes] = {}
        self._held: UsageEvent | None = None
        self.id: str | None = None
        self.model: str | None = None

    def close(self) -> list[StreamEvent]:
        """End of the body. Raises ``NetworkError`` if the stream stopped before it finished."""
        self._raise_deferred()
        events: list[StreamEvent] = []
        if not self._done:
            self._dispatch(self._sse.close(), events)
            self._raise_deferred()
        if not self._done:
            raise truncated_stream()
        return events

    def _dispatch(self, items: list[SSEEvent], out: list[StreamEvent]) -> None:
        for sse in items:
            if self._done:
                return
            before = len(out)
            try:
                self._event(decode(_EVENT, sse.data, "Anthropic sent a stream event"), out)
            except ModelportError as exc:
                self._defer(exc, out)
                return
            if self._held is not None and len(out) > before:
                # The first content (or the finish) is here: the usage goes out just ahead.
                out.insert(before, self._held)
                self._held = None

    def _event(self, event: _Event, out: list[StreamEvent]) -> None:
        kind = event.type
        if kind == "content_block_delta":
            self._delta(event, out)
        elif kind == "content_block_start":
            self._start(event, out)
        elif kind == "content_block_stop":
            self._stop(event, out)
        elif kind == "message_start":
            message = event.message
            if message is None:
                raise ParseError("Anthropic sent message_start without a message")
            self.id, self.model = message.id, message.model
            if message.usage is not None:
                # Held back until content arrives (see the class docstring).
                self._held = self._usage.merge(message.usage)
        elif kind == "message_delta":
            if event.usage is not None:
                self._held = None  # the merged snapshot below includes it
                out.append(self._usage.merge(event.usage))
            if event.delta is not None and event.delta.stop_reason is not None:
                out.append(FinishEvent(reason=_finish_reason(event.delta.stop_reason, self._calls)))
        elif kind == "message_stop":
            self._done = True
            if self._held is not None:
                out.append(self._held)
                self._held = None
        elif kind == "error":
            error = event.error or _Error()
            raise _error(error.type, error.message, None, {}, None)
        # ping and event types added after this was written carry nothing we use.

    def _index(self, event: _Event) -> int:
        if event.index is None:
            raise ParseError(f"Anthropic sent {event.type} without an index")
        return event.index

    def _start(self, event: _Event, out: list[StreamEvent]) -> None:
        index = self._index(event)
        if not event.content_block:
            raise ParseError("Anthropic sent content_block_start without a content_block")
        block = _block(event.content_block)
        if block.type == "text":
            self._blocks[index] = (_TEXT, -1)
            if block.text:
                out.append(TextEvent(text=block.text))
        elif block.type == "thinking":
            self._blocks[index] = (_THINKING, -1)
            if block.thinking:
                out.append(ReasoningEvent(text=block.thinking))
            if block.signature:
                out.append(ReasoningEvent(signature=block.signature))
        elif block.type == "redacted_thinking":
            self._blocks[index] = (_IGNORED, -1)
            out.append(ReasoningEvent(redacted=block.data or ""))
        elif block.type == "tool_use":
            if not block.id or not block.name:
                raise ParseError("Anthropic sent a tool_use block without an id or name")
            ordinal = self._calls
            self._calls += 1
            self._blocks[index] = (_TOOL, ordinal)
            if bytes(block.input).strip() not in (b"{}", b""):
                self._start_input[index] = bytes(block.input)
            out.append(ToolCallStartEvent(index=ordinal, id=block.id, name=block.name))
        else:
            # server_tool_use, *_tool_result and the like: see the module docstring.
            self._blocks[index] = (_IGNORED, -1)

    def _delta(self, event: _Event, out: list[StreamEvent]) -> None:
        index = self._index(event)
        found = self._blocks.get(index)
        delta = event.delta
        if found is None or delta is None:
            raise ParseError(f"Anthropic sent a delta for content block {index} before it started")
        kind, ordinal = found
        if kind == _TEXT:
            if delta.text:
                out.append(TextEvent(text=delta.text))
        elif kind == _THINKING:
            if delta.thinking:
                out.append(ReasoningEvent(text=delta.thinking))
            elif delta.signature:
                out.append(ReasoningEvent(signature=delta.signature))
        elif kind == _TOOL and delta.partial_json:
            self._filled.add(index)
            out.append(ToolCallDeltaEvent(index=ordinal, arguments=delta.partial_json))

    def _stop(self, event: _Event, out: list[StreamEvent]) -> None:
        index = self._index(event)
        found = self._blocks.get(index)
        if found is None:
            raise ParseError(f"Anthropic stopped content block {index} before it started")
        start_input = self._start_input.pop(index, None)
        # Some proxies send the whole input with the block and no deltas.
        if found[0] == _TOOL and start_input is not None and index not in self._filled:
            out.append(ToolCallDeltaEvent(index=found[1], arguments=start_input.decode()))


# --- non-streaming ---------------------------------------------------------


def decode_response(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming Message body stands for."""
    message: _Message = decode(_MESSAGE, body, "Anthropic sent a message")
    events: list[StreamEvent] = []
    calls = 0
    for raw in message.content:
        block = _block(raw)
        if block.type == "text":
            if block.text:
                events.append(TextEvent(text=block.text))
        elif block.type == "thinking":
            events.append(ReasoningEvent(text=block.thinking or "", signature=block.signature))
        elif block.type == "redacted_thinking":
            events.append(ReasoningEvent(redacted=block.data or ""))
        elif block.type == "tool_use":
            if not block.id or not block.name:
                raise ParseError("Anthropic sent a tool_use block without an id or name")
            events.append(ToolCallStartEvent(index=calls, id=block.id, name=block.name))
            arguments = bytes(block.input).decode() or "{}"
            events.append(ToolCallDeltaEvent(index=calls, arguments=arguments))
            calls += 1
    if message.usage is not None:
        events.append(_UsageState().merge(message.usage))
    if message.stop_reason is not None:
        events.append(FinishEvent(reason=_finish_reason(message.stop_reason, calls)))
    return events


def _finish_reason(stop_reason: str, calls: int) -> FinishReason:
    """The canonical finish; a turn that made client tool calls finishes with ``tool_calls``.

    Anthropic may end such a turn with ``end_turn`` or ``stop_sequence`` (a stop
    sequence right after the tool_use block); the calls still await results.
    """
    reason = _STOP_REASONS.get(stop_reason, "stop")
    if reason == "stop" and calls:
        return "tool_calls"
    return reason


def decode_models(body: bytes, connection: str) -> list[ModelInfo]:
    """``GET /v1/models`` → one :class:`ModelInfo` per model."""
    listing: _ModelList = decode(_MODELS, body, "Anthropic sent a model list")
    return [
        ModelInfo(
            id=entry.id,
            connection=connection,
            name=entry.display_name,
            # Every model the API lists today reads images and honours cache_control.
            capabilities=Capabilities(vision=True, prompt_cache=True),
        )
        for entry in listing.data
    ]
