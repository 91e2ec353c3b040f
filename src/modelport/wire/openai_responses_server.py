"""The OpenAI Responses API, server side: what the gateway says to Responses clients.

:func:`parse_request` reads a ``POST /v1/responses`` body into a
:class:`~modelport.types.ChatRequest`; :class:`StreamEncoder` writes canonical
events back as the typed server-sent events (``response.created`` …
``response.completed``) the official SDKs and Codex read;
:func:`encode_response` writes a whole ``response`` object and
:func:`encode_error` an error (the Chat Completions shape: it is the same API
family and the SDKs raise from it alike). Both encoders take the client's
request body, to echo what the API echoes (``instructions``, ``tools``,
``reasoning`` …) and to give tool names back as the client named them.

Choices made here, where the API and the canonical types differ:

* ``instructions`` is a leading system message; ``developer`` messages are
  system messages, in place. An assistant's consecutive ``reasoning``,
  ``message`` and ``function_call`` items are one assistant turn;
  ``function_call_output`` is a tool message. ``item_reference`` and
  ``input_file`` are refused by name; the record of a hosted tool's call
  (``web_search_call`` …) has no canonical form and is dropped (debug log).
* Tools: a ``namespace`` tool's functions become functions named
  ``<namespace>__<name>`` (:class:`ToolNames`), and calls to them are answered
  with the namespace and name the client used. A ``custom`` tool becomes a
  function of one string, ``input``, and is called back as a
  ``custom_tool_call``. Hosted tools (``web_search``, ``file_search``, ``mcp``
  …) reach only a Responses upstream (``vendor["openai-responses"]["tools"]``).
* Reasoning: ``reasoning.effort`` is the canonical effort (``none`` and
  ``xhigh`` travel to Chat Completions as ``reasoning_effort``). A reasoning
  item's summary is thinking text and its ``encrypted_content`` the thinking
  block's signature, so an Anthropic model's signed thinking or an OpenAI
  model's encrypted reasoning round-trips through the client. Redacted
  thinking travels as ``encrypted_content`` prefixed ``modelport-redacted:``.
  Answers carry ``encrypted_content`` when ``include`` asks for
  ``reasoning.encrypted_content``; the reasoning text is sent as the summary.
* Every other field the client sent (``include``, ``prompt_cache_key``,
  ``client_metadata``, ``truncation``, ``text`` …) is kept as sent in
  ``vendor["openai-responses"]`` for a Responses upstream; ``user``,
  ``safety_identifier`` and, with tools, ``parallel_tool_calls`` also reach a
  Chat Completions upstream. ``store``, ``previous_response_id``, ``stream``,
  ``stream_options`` and ``background`` are the gateway's, never sent on.
* A turn cut at the output limit ends ``incomplete`` (``max_output_tokens``),
  one stopped by a filter ``incomplete`` (``content_filter``); a stream that
  fails after it began sends ``error`` then ``response.failed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from modelport.aggregate import Aggregator
from modelport.errors import InvalidRequestError, ModelportError, RateLimitError
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import ChatResponse, FinishReason, RedactedThinkingPart, ThinkingPart, Usage
from modelport.wire import openai_chat_server
from modelport.wire._responses_server_request import REDACTED_PREFIX, ToolNames, parse_request

__all__ = ["StreamEncoder", "ToolNames", "encode_error", "encode_response", "parse_request"]

_encode = msgspec.json.encode

#: What the response object echoes from the request, and the value when not sent.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "reasoning": {"effort": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}


class _Echo:
    """What every response object of one request shares."""

    def __init__(self, request: Mapping[str, Any] | None, id: str, model: str) -> None:
        request = request or {}
        self.id = id
        self.model = model
        self.created_at = int(time.time())
        self.fields = {
            key: request[key] if request.get(key) is not None else default
            for key, default in _ECHOED.items()
        }
        include = request.get("include")
        self.encrypted = isinstance(include, list) and "reasoning.encrypted_content" in include
        self.names = ToolNames.of(request.get("tools"))

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        finish: FinishReason | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        incomplete = None
        if finish in ("length", "content_filter"):
            status = "incomplete"
            reason = "max_output_tokens" if finish == "length" else "content_filter"
            incomplete = {"reason": reason}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": output,
            **self.fields,
            "usage": _usage(usage) if usage is not None else None,
        }

    def call_item(self, item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
        namespace, original, kind = self.names.original(name)
        if kind == "custom":
            item: dict[str, Any] = {
                "id": item_id,
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": call_id,
                "name": original,
                "input": _custom_input(arguments),
            }
        else:
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "arguments": arguments,
                "call_id": call_id,
                "name": original,
            }
        if namespace is not None:
            item["namespace"] = namespace
        return item

    def reasoning_item(self, item_id: str, text: str, signature: str | None) -> dict[str, Any]:
        summary = [{"type": "summary_text", "text": text}] if text else []
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
        if signature is not None and self.encrypted:
            item["encrypted_content"] = signature
        return item


def _custom_input(arguments: str) -> str:
    try:
        value = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return value["input"]
    return arguments


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": content,
    }


_MESSAGE_ADDED = {"type": "message", "status": "in_progress", "role": "assistant", "content": []}


# --- non-streaming ---------------------------------------------------------------


def _output_items(response: ChatResponse, echo: _Echo) -> list[dict[str, Any]]:
    stem = echo.id.removeprefix("resp_")
    items: list[dict[str, Any]] = []
    for position, part in enumerate(response.thinking):
        item_id = f"rs_{stem}_{position}"
        if isinstance(part, RedactedThinkingPart):
            items.append(echo.reasoning_item(item_id, "", REDACTED_PREFIX + part.data))
        elif isinstance(part, ThinkingPart):
            items.append(echo.reasoning_item(item_id, part.text, part.signature))
    if response.content:
        items.append(_message_item(f"msg_{stem}", response.content))
    for position, call in enumerate(response.tool_calls):
        items.append(echo.call_item(f"fc_{stem}_{position}", call.id, call.name, call.arguments))
    return items


def encode_response(response: ChatResponse, *, request: Mapping[str, Any] | None = None) -> bytes:
    """A ``response`` object for a finished response; ``request`` is the client's body."""
    echo = _Echo(request, response.id, response.model)
    body = echo.response(
        "completed", _output_items(response, echo), response.usage, response.finish_reason
    )
    return _encode(body)


def encode_error(exc: ModelportError) -> tuple[int, bytes, dict[str, str]]:
    """Status, ``{"error": {...}}`` body and headers: the OpenAI error the SDKs raise from."""
    return openai_chat_server.encode_error(exc)


# --- streaming -------------------------------------------------------------------


class _OpenItem:
    __slots__ = ("call_id", "id", "kind", "name", "output_index", "parts")

    def __init__(self, kind: str, id: str, output_index: int) -> None:
        self.kind = kind
        self.id = id
        self.output_index = output_index
        self.parts: list[str] = []
        self.call_id = ""
        self.name = ""


class StreamEncoder:
    """Canonical events → the typed SSE events of a streamed Responses API answer.

    A message or reasoning item stays open while its kind of event continues
    and closes when another begins; function calls stay open until the end,
    so fragments of parallel calls may interleave. ``on_complete`` is called
    with the aggregated answer when the stream finishes well (the gateway
    keeps it for ``previous_response_id``).
    """

    def __init__(
        self,
        *,
        model: str,
        id: str | None = None,
        request: Mapping[str, Any] | None = None,
        on_complete: Callable[[ChatResponse], None] | None = None,
    ) -> None:
        self.id = id or f"resp_{time.time_ns():x}"
        self._echo = _Echo(request, self.id, model)
        self._stem = self.id.removeprefix("resp_")
        # 0 and 1 are start()'s, which the gateway may call after the first encode().
        self._sequence = 2
        self._items: list[dict[str, Any] | None] = []  # the output, by output index
        self._open: _OpenItem | None = None  # the open message or reasoning item
        self._calls: dict[int, _OpenItem] = {}
        # Only what keeps the answer needs it folded.
        self._aggregator = Aggregator(model=model, id=self.id) if on_complete else None
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._on_complete = on_complete

    def _event(self, kind: str, sequence: int | None = None, **fields: Any) -> bytes:
        if sequence is None:
            sequence = self._sequence
            self._sequence += 1
        payload = {"type": kind, **fields, "sequence_number": sequence}
        return b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n"

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        response = self._echo.response("in_progress", [])
        return self._event("response.created", 0, response=response) + self._event(
            "response.in_progress", 1, response=response
        )

    def _add(self, kind: str, prefix: str, item: dict[str, Any]) -> tuple[_OpenItem, bytes]:
        index = len(self._items)
        opened = _OpenItem(kind, f"{prefix}_{self._stem}_{index}", index)
        item = {"id": opened.id, **item}
        self._items.append(None)
        return opened, self._event("response.output_item.added", output_index=index, item=item)

    def encode(self, event: StreamEvent) -> bytes:
        """The frames for one event (``b""`` when nothing is due yet)."""
        if self._aggregator is not None:
            self._aggregator.add(event)
        match event:
            case TextEvent(text=text):
                return self._text(text) if text else b""
            case ReasoningEvent(text=text, signature=signature, redacted=redacted):
                if redacted is not None:
                    out = self._close()
                    return out + self._whole_reasoning(REDACTED_PREFIX + redacted)
                out = self._reasoning(text) if text else b""
                if signature is not None:
                    if self._open is None or self._open.kind != "reasoning":
                        return out + self._close() + self._whole_reasoning(signature)
                    out += self._close(signature)
                return out
            case ToolCallStartEvent(index=index, id=call_id, name=name):
                out = self._close()
                namespace, original, kind = self._echo.names.original(name)
                if kind == "custom":
                    item = {"type": "custom_tool_call", "status": "in_progress", "input": ""}
                    item |= {"call_id": call_id, "name": original}
                else:
                    item = {"type": "function_call", "status": "in_progress", "arguments": ""}
                    item |= {"call_id": call_id, "name": original}
                if namespace is not None:
                    item["namespace"] = namespace
                call, added = self._add(kind, "fc" if kind == "function" else "ctc", item)
                call.call_id, call.name = call_id, name
                self._calls[index] = call
                return out + added
            case ToolCallDeltaEvent(index=index, arguments=arguments):
                call = self._calls.get(index)
                if call is None or not arguments:
                    return b""
                call.parts.append(arguments)
                if call.kind == "custom":
                    return b""  # its input is known only once the JSON is whole
                return self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.id,
                    output_index=call.output_index,
                    delta=arguments,
                )
            case UsageEvent():
                self._usage = event.to_usage()
                return b""
            case FinishEvent(reason=reason):
                self._finish = reason
                return b""
        raise TypeError(f"StreamEncoder cannot encode {event!r}")

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "message":
            out = self._close()
            self._open, added = self._add("message", "msg", _MESSAGE_ADDED)
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            out += added + self._event(
                "response.content_part.added",
                item_id=self._open.id,
                output_index=self._open.output_index,
                content_index=0,
                part=part,
            )
        self._open.parts.append(text)
        return out + self._event(
            "response.output_text.delta",
            item_id=self._open.id,
            output_index=self._open.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _reasoning(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "reasoning":
            out = self._close()
            self._open, added = self._add("reasoning", "rs", {"type": "reasoning", "summary": []})
            out += added + self._event(
                "response.reasoning_summary_part.added",
                item_id=self._open.id,
                output_index=self._open.output_index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        self._open.parts.append(text)
        return out + self._event(
            "response.reasoning_summary_text.delta",
            item_id=self._open.id,
            output_index=self._open.output_index,
            summary_index=0,
            delta=text,
        )

    def _whole_reasoning(self, encrypted: str) -> bytes:
        """A reasoning item with nothing to show, only its encrypted content."""
        opened, added = self._add("reasoning", "rs", {"type": "reasoning", "summary": []})
        item = self._echo.reasoning_item(opened.id, "", encrypted)
        self._items[opened.output_index] = item
        return added + self._event(
            "response.output_item.done", output_index=opened.output_index, item=item
        )

    def _close(self, signature: str | None = None) -> bytes:
        """Close the open message or reasoning item (``b""`` when none is open)."""
        opened, self._open = self._open, None
        if opened is None:
            return b""
        text = "".join(opened.parts)
        where = {"item_id": opened.id, "output_index": opened.output_index}
        if opened.kind == "message":
            item = _message_item(opened.id, text)
            part = item["content"][0]
            out = self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            out += self._event("response.content_part.done", **where, content_index=0, part=part)
        else:
            item = self._echo.reasoning_item(opened.id, text, signature)
            part = {"type": "summary_text", "text": text}
            out = self._event(
                "response.reasoning_summary_text.done", **where, summary_index=0, text=text
            )
            out += self._event(
                "response.reasoning_summary_part.done", **where, summary_index=0, part=part
            )
        self._items[opened.output_index] = item
        return out + self._event(
            "response.output_item.done", output_index=opened.output_index, item=item
        )

    def _close_call(self, call: _OpenItem) -> bytes:
        arguments = "".join(call.parts) or "{}"
        item = self._echo.call_item(call.id, call.call_id, call.name, arguments)
        self._items[call.output_index] = item
        where = {"item_id": call.id, "output_index": call.output_index}
        if call.kind == "custom":
            value = item["input"]
            out = self._event("response.custom_tool_call_input.delta", **where, delta=value)
            out += self._event("response.custom_tool_call_input.done", **where, input=value)
        else:
            out = self._event("response.function_call_arguments.done", **where, arguments=arguments)
        return out + self._event(
            "response.output_item.done", output_index=call.output_index, item=item
        )

    def finish(self) -> bytes:
        """Close every open item, then ``response.completed`` (or ``.incomplete``)."""
        out = self._close()
        for call in self._calls.values():
            out += self._close_call(call)
        output = [item for item in self._items if item is not None]
        finish = self._finish or ("tool_calls" if self._calls else "stop")
        response = self._echo.response("completed", output, self._usage or Usage(), finish)
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        out += self._event(kind, response=response)
        if self._on_complete is not None and self._aggregator is not None:
            try:
                answer = self._aggregator.response()
            except ModelportError:
                answer = None  # arguments that are not JSON: a turn no one can continue
            if answer is not None:
                self._on_complete(answer)
        return out

    def error(self, exc: ModelportError) -> bytes:
        """``error`` then ``response.failed``: what makes Codex and the SDKs see a failure."""
        error = _encode_error_fields(exc)
        out = self._event("error", **error)
        output = [item for item in self._items if item is not None]
        failed = self._echo.response(
            "failed", output, error={"code": _failed_code(exc), "message": error["message"]}
        )
        return out + self._event("response.failed", response=failed)


def _failed_code(exc: ModelportError) -> str:
    """``response.failed`` takes one of a fixed list of codes (the ``error`` event says more)."""
    if isinstance(exc, RateLimitError):
        return "rate_limit_exceeded"
    if isinstance(exc, InvalidRequestError):
        return "invalid_prompt"  # Codex does not retry it, as it should not
    return "server_error"


def _encode_error_fields(exc: ModelportError) -> dict[str, Any]:
    _status, body, _headers = openai_chat_server.encode_error(exc)
    error = msgspec.json.decode(body)["error"]
    code = error.get("code") or error.get("type")
    return {"code": code, "message": error.get("message"), "param": error.get("param")}
