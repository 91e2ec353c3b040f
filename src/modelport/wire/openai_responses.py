"""The OpenAI Responses API, client side: canonical request → body, answers → events.

For models OpenAI serves only at ``POST /v1/responses`` (and servers that copy
it). Choices this module makes:

* **Stream**: text comes from ``response.output_text.delta`` (and
  ``response.refusal.delta``, which makes the turn finish with ``refusal``);
  reasoning from ``response.reasoning_summary_text.delta`` and
  ``response.reasoning_text.delta`` (a new summary part starts on a new
  paragraph). A reasoning item's ``encrypted_content`` becomes the
  ``signature`` that closes its thinking block, so it goes back verbatim on
  the next turn. Function calls are numbered in the order their items are
  added; their arguments come from the deltas, or whole from the item when a
  server sent no deltas. Items of hosted tools (``web_search_call`` …) have no
  canonical form and are skipped.
* **End**: ``response.completed`` finishes with ``stop`` (``tool_calls`` when
  a function was called); ``response.incomplete`` with ``length``, or
  ``content_filter`` when that was the reason; ``response.failed`` and an
  ``error`` event raise the matching error class (``insufficient_quota`` is a
  :class:`~modelport.errors.RateLimitError`). A body that ends before any of
  them raises :class:`~modelport.errors.NetworkError`.
* **Usage**: ``input_tokens`` already includes ``cached_tokens`` (the cache
  read) and ``cache_write_tokens``, and ``output_tokens`` includes
  ``reasoning_tokens``, as canonically.
* **Request** (:mod:`modelport.wire._responses_request`): see there.
"""

from __future__ import annotations

import msgspec

from modelport.errors import ModelportError, ParseError
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import FinishReason
from modelport.wire import _responses_shapes as _shapes
from modelport.wire._errors import error_for_status, excerpt, status_for_code, truncated_stream
from modelport.wire._responses_request import build_request
from modelport.wire._sse import SSEEvent
from modelport.wire._sse_stream import SSEStreamDecoder
from modelport.wire.openai_chat import decode_models, error_from_response

__all__ = [
    "StreamDecoder",
    "build_request",
    "decode_models",
    "decode_response",
    "error_from_response",
]

#: ``incomplete_details.reason`` → finish reason (anything else: the output limit).
_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
_STARTS = frozenset({"response.created", "response.in_progress", "response.queued"})


def _usage_event(usage: _shapes.Usage) -> UsageEvent:
    input_details, output_details = usage.input_tokens_details, usage.output_tokens_details
    cached = input_details.cached_tokens if input_details else None
    written = input_details.cache_write_tokens if input_details else None
    reasoning = output_details.reasoning_tokens if output_details else None
    return UsageEvent(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=cached or 0,
        cache_write_tokens=written or 0,
        reasoning_tokens=reasoning or 0,
    )


def _error(info: _shapes.ErrorInfo | None, fallback: str) -> ModelportError:
    if info is None:
        return error_for_status(500, fallback)
    status, code = status_for_code(info.code, info.type)
    return error_for_status(status, info.message or info.type or fallback, code=code)


def _finish(response: _shapes.Response, calls: bool, refused: bool) -> FinishReason:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _INCOMPLETE.get(reason or "", "length")
    if calls:
        return "tool_calls"
    return "refusal" if refused else "stop"


class StreamDecoder(SSEStreamDecoder):
    """A Responses API event stream → canonical events; any split of the bytes, same events.

    ``id`` is the response's id once ``response.created`` has been read.
    """

    def __init__(self) -> None:
        super().__init__()
        self.id: str | None = None
        self._refused = False
        self._calls: dict[str, int] = {}  # item id, and "#<output index>" → call index
        self._call_count = 0
        self._argued: set[int] = set()  # calls whose arguments have been sent
        self._streamed: set[str] = set()  # message/reasoning items that sent deltas
        self._summary_index: int | None = None

    def close(self) -> list[StreamEvent]:
        """End of the body. Raises ``NetworkError`` if the stream stopped before it finished."""
        out = self._close_tail()
        if not self._done:
            raise truncated_stream()
        return out

    def _dispatch(self, events: list[SSEEvent], out: list[StreamEvent]) -> None:
        for sse in events:
            data = sse.data
            if not data or data.isspace() or data == "[DONE]":
                continue
            try:
                self._event(_decode_event(data), out)
            except ModelportError as exc:
                self._defer(exc, out)
                return
            if self._done:
                return

    def _event(self, event: _shapes.Event, out: list[StreamEvent]) -> None:
        kind = event.type
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            if event.delta:
                self._refused |= kind == "response.refusal.delta"
                self._streamed.add(event.item_id or "")
                out.append(TextEvent(text=event.delta))
        elif kind == "response.function_call_arguments.delta":
            if event.delta:
                index = self._call_index(event)
                self._argued.add(index)
                out.append(ToolCallDeltaEvent(index=index, arguments=event.delta))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if event.delta:
                text = event.delta
                if (
                    event.summary_index is not None
                    and self._summary_index is not None
                    and event.summary_index != self._summary_index
                ):
                    text = "\n\n" + text
                self._summary_index = event.summary_index
                self._streamed.add(event.item_id or "")
                out.append(ReasoningEvent(text=text))
        elif kind == "response.output_item.added" and event.item is not None:
            if event.item.type == "function_call":
                self._start_call(event.item, event.output_index, out)
            elif event.item.type == "reasoning":
                self._summary_index = None
        elif kind == "response.output_item.done" and event.item is not None:
            self._item_done(event.item, event.output_index, out)
        elif kind in _STARTS:
            if event.response is not None and event.response.id:
                self.id = event.response.id
        elif kind in ("response.completed", "response.incomplete"):
            response = event.response or _shapes.Response()
            if response.usage is not None:
                out.append(_usage_event(response.usage))
            out.append(FinishEvent(reason=_finish(response, self._call_count > 0, self._refused)))
            self._done = True
        elif kind == "response.failed":
            info = event.response.error if event.response is not None else None
            raise _error(info, "The upstream reported that the response failed")
        elif kind == "error":
            raise _error(_error_info(event), "The upstream reported an error")

    def _start_call(
        self, item: _shapes.Item, output_index: int | None, out: list[StreamEvent]
    ) -> int:
        if not item.name:
            raise ParseError("The upstream streamed a function call that has no name")
        index = self._call_count
        self._call_count += 1
        for key in (item.id, None if output_index is None else f"#{output_index}"):
            if key is not None:
                self._calls[key] = index
        call_id = item.call_id or item.id or f"call_{index}"
        out.append(ToolCallStartEvent(index=index, id=call_id, name=item.name))
        if item.arguments:
            self._argued.add(index)
            out.append(ToolCallDeltaEvent(index=index, arguments=item.arguments))
        return index

    def _call_index(self, event: _shapes.Event) -> int:
        index = self._calls.get(event.item_id or "")
        if index is None and event.output_index is not None:
            index = self._calls.get(f"#{event.output_index}")
        if index is None:
            raise ParseError("The upstream streamed function-call arguments before the call")
        return index

    def _item_done(
        self, item: _shapes.Item, output_index: int | None, out: list[StreamEvent]
    ) -> None:
        if item.type == "function_call":
            index = self._calls.get(item.id or "")
            if index is None and output_index is not None:
                index = self._calls.get(f"#{output_index}")
            if index is None:
                self._start_call(item, output_index, out)
            elif index not in self._argued and item.arguments:
                self._argued.add(index)
                out.append(ToolCallDeltaEvent(index=index, arguments=item.arguments))
        elif item.type == "reasoning":
            if (item.id or "") not in self._streamed:
                text = _reasoning_text(item)
                if text:
                    out.append(ReasoningEvent(text=text))
            if item.encrypted_content:
                out.append(ReasoningEvent(signature=item.encrypted_content))
        elif item.type == "message" and (item.id or "") not in self._streamed:
            # A server that sent the message whole, without deltas.
            self._refused |= bool(_refusal(item))
            out.extend(_message_events(item))


def _error_info(event: _shapes.Event) -> _shapes.ErrorInfo:
    """An ``error`` event's fields, at its top level or nested in ``error``."""
    if isinstance(event.error, dict):
        try:
            return msgspec.convert(event.error, _shapes.ErrorInfo, strict=False)
        except msgspec.ValidationError:
            pass
    message = event.error if isinstance(event.error, str) else event.message
    return _shapes.ErrorInfo(code=event.code, message=message)


def _decode_event(data: str) -> _shapes.Event:
    try:
        return _shapes.EVENT.decode(data)
    except msgspec.ValidationError as exc:
        raise ParseError(
            f"A Responses API event had an unexpected shape ({exc}): {excerpt(data, 200)}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ParseError(f"The stream sent data that is not JSON: {excerpt(data, 200)}") from exc


def _reasoning_text(item: _shapes.Item) -> str:
    parts = item.summary or item.content or []
    return "\n\n".join(part.text for part in parts if part.text)


def _refusal(item: _shapes.Item) -> str:
    return "".join(part.refusal or "" for part in item.content or () if part.type == "refusal")


def _message_events(item: _shapes.Item) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for part in item.content or ():
        text = part.refusal if part.type == "refusal" else part.text
        if text:
            out.append(TextEvent(text=text))
    return out


# --- non-streaming ----------------------------------------------------------------


def decode_response(body: bytes) -> list[StreamEvent]:
    """The events of a non-streaming ``response`` object, in stream order."""
    try:
        response = _shapes.RESPONSE.decode(body)
    except msgspec.ValidationError as exc:
        raise ParseError(
            f"The response object had an unexpected shape ({exc}): {excerpt(body, 200)}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ParseError(
            f"The upstream answered with data that is not JSON: {excerpt(body, 200)}"
        ) from exc
    return response_events(response)


def response_events(response: _shapes.Response) -> list[StreamEvent]:
    """The events a finished (or failed) response object stands for."""
    if response.status == "failed" or response.error is not None:
        raise _error(response.error, "The upstream reported that the response failed")
    if response.output is None:
        return []
    out: list[StreamEvent] = []
    calls = 0
    refused = False
    for item in response.output:
        if item.type == "reasoning":
            text = _reasoning_text(item)
            if text or item.encrypted_content:
                out.append(ReasoningEvent(text=text, signature=item.encrypted_content))
        elif item.type == "message":
            refused |= bool(_refusal(item))
            out.extend(_message_events(item))
        elif item.type == "function_call":
            if not item.name:
                raise ParseError("The response holds a function call that has no name")
            call_id = item.call_id or item.id or f"call_{calls}"
            out.append(ToolCallStartEvent(index=calls, id=call_id, name=item.name))
            if item.arguments:
                out.append(ToolCallDeltaEvent(index=calls, arguments=item.arguments))
            calls += 1
    if response.usage is not None:
        out.append(_usage_event(response.usage))
    out.append(FinishEvent(reason=_finish(response, calls > 0, refused)))
    return out
