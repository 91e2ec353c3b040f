"""The one fold from stream events to a :class:`~modelport.types.ChatResponse`.

``complete()`` on every provider, the gateway's non-streaming answers and the
plugin host all go through :class:`Aggregator`, so a stream and its aggregate
can never disagree. :func:`response_events` goes the other way: the events a
response stands for, so that what consumes streams (the usage ledger) can
consume a ``complete()`` answer too.

A turn cut off at ``max_tokens`` in the middle of a tool call (finish reason
``length``) keeps that call's arguments as the raw, incomplete JSON text the
model produced — as OpenAI's own non-streaming answer does — rather than
failing: the streamed turn carried the same text. Such a call's
:meth:`~modelport.types.ToolCall.parsed_arguments` raises; check
``finish_reason`` first. With any other finish, arguments that are not valid
JSON raise :class:`~modelport.errors.ParseError`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Iterable

import msgspec

from modelport.errors import ParseError
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
    ChatResponse,
    FinishReason,
    RedactedThinkingPart,
    ThinkingPart,
    ToolCall,
    Usage,
)

__all__ = ["Aggregator", "aaggregate", "aggregate", "response_events"]


class _PendingCall:
    __slots__ = ("arguments", "id", "name", "signature")

    def __init__(self, id: str, name: str, signature: str | None) -> None:
        self.id = id
        self.name = name
        self.signature = signature
        self.arguments: list[str] = []

    def call(self, arguments: str) -> ToolCall:
        return ToolCall(id=self.id, name=self.name, arguments=arguments, signature=self.signature)


class Aggregator:
    """Feed events with :meth:`add`; read the result with :meth:`response`.

    Tool-call fragments are joined by their ``index``, never by "the last call
    seen". Usage events are snapshots: the latest replaces the earlier ones.
    A turn that produced tool calls finishes with ``tool_calls`` whatever word
    the provider used.
    """

    def __init__(self, *, model: str, id: str | None = None) -> None:
        self.model = model
        self.id = id or f"resp_{uuid.uuid4().hex}"
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._thinking: list[ThinkingPart | RedactedThinkingPart] = []
        self._open_thinking: list[str] = []
        self._calls: dict[int, _PendingCall] = {}
        self._usage: Usage = Usage()
        self._finish: FinishReason | None = None

    def add(self, event: StreamEvent) -> None:
        match event:
            case TextEvent(text=text):
                self._text.append(text)
            case ReasoningEvent(text=text, signature=signature, redacted=redacted):
                if redacted is not None:
                    self._close_thinking(None)
                    self._thinking.append(RedactedThinkingPart(data=redacted))
                    return
                if text:
                    self._reasoning.append(text)
                    self._open_thinking.append(text)
                if signature is not None:
                    self._close_thinking(signature)
            case ToolCallStartEvent(index=index, id=id, name=name, signature=signature):
                if index in self._calls:
                    # Replacing it would silently lose a call and its arguments.
                    raise ParseError(
                        f"Tool call {name!r} started at index {index}, which "
                        f"{self._calls[index].name!r} already holds",
                        model=self.model,
                    )
                self._calls[index] = _PendingCall(id, name, signature)
            case ToolCallDeltaEvent(index=index, arguments=arguments):
                call = self._calls.get(index)
                if call is None:
                    raise ParseError(
                        f"Tool-call arguments arrived for index {index} before the call started",
                        model=self.model,
                    )
                call.arguments.append(arguments)
            case UsageEvent():
                self._usage = event.to_usage()
            case FinishEvent(reason=reason):
                self._finish = reason

    def _close_thinking(self, signature: str | None) -> None:
        if self._open_thinking or signature is not None:
            self._thinking.append(
                ThinkingPart(text="".join(self._open_thinking), signature=signature)
            )
        self._open_thinking = []

    def tool_calls(self) -> list[ToolCall]:
        """The calls so far, by index, each with complete and valid JSON arguments.

        After a ``length`` finish, arguments are kept as produced even when the
        cut left them incomplete (see the module docstring).
        """
        calls = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            arguments = "".join(pending.arguments).strip() or "{}"
            if self._finish == "length":
                calls.append(pending.call(arguments))
                continue
            try:
                msgspec.json.decode(arguments)
            except msgspec.DecodeError as exc:
                raise ParseError(
                    f"Tool call {pending.name!r} ended with arguments that are not valid JSON: "
                    f"{arguments[:200]!r}",
                    model=self.model,
                ) from exc
            calls.append(pending.call(arguments))
        return calls

    def response(self) -> ChatResponse:
        thinking = list(self._thinking)
        if self._open_thinking:
            thinking.append(ThinkingPart(text="".join(self._open_thinking)))
        calls = self.tool_calls()
        finish = self._finish
        if calls and finish in (None, "stop"):
            finish = "tool_calls"
        return ChatResponse(
            id=self.id,
            model=self.model,
            content="".join(self._text),
            reasoning="".join(self._reasoning),
            thinking=thinking,
            tool_calls=calls,
            usage=self._usage,
            finish_reason=finish,
        )


def aggregate(events: Iterable[StreamEvent], *, model: str, id: str | None = None) -> ChatResponse:
    """Fold a finished sequence of events into one response."""
    aggregator = Aggregator(model=model, id=id)
    for event in events:
        aggregator.add(event)
    return aggregator.response()


async def aaggregate(
    events: AsyncIterable[StreamEvent], *, model: str, id: str | None = None
) -> ChatResponse:
    """Consume an event stream and fold it into one response."""
    aggregator = Aggregator(model=model, id=id)
    async for event in events:
        aggregator.add(event)
    return aggregator.response()


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """The events ``response`` stands for, in stream order; :func:`aggregate` of them
    gives the response back (but for ``id`` and ``model``, which events do not carry)."""
    events: list[StreamEvent] = []
    if response.thinking:
        for part in response.thinking:
            if isinstance(part, RedactedThinkingPart):
                events.append(ReasoningEvent(redacted=part.data))
            else:
                events.append(ReasoningEvent(text=part.text, signature=part.signature))
    elif response.reasoning:
        events.append(ReasoningEvent(text=response.reasoning))
    if response.content:
        events.append(TextEvent(text=response.content))
    for index, call in enumerate(response.tool_calls):
        events.append(
            ToolCallStartEvent(index=index, id=call.id, name=call.name, signature=call.signature)
        )
        events.append(ToolCallDeltaEvent(index=index, arguments=call.arguments))
    usage = response.usage
    if usage != Usage():
        events.append(
            UsageEvent(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost=usage.cost,
            )
        )
    if response.finish_reason is not None:
        events.append(FinishEvent(reason=response.finish_reason))
    return events
