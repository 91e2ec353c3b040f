"""The one fold from stream events to a :class:`~modelport.types.ChatResponse`.

``complete()`` on every provider, the gateway's non-streaming answers and the
plugin host all go through :class:`Aggregator`, so a stream and its aggregate
can never disagree.
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

__all__ = ["Aggregator", "aaggregate", "aggregate"]


class _PendingCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.arguments: list[str] = []


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
            case ToolCallStartEvent(index=index, id=id, name=name):
                if index in self._calls:
                    # Replacing it would silently lose a call and its arguments.
                    raise ParseError(
                        f"Tool call {name!r} started at index {index}, which "
                        f"{self._calls[index].name!r} already holds",
                        model=self.model,
                    )
                self._calls[index] = _PendingCall(id, name)
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
        """The calls so far, by index, each with complete and valid JSON arguments."""
        calls = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            arguments = "".join(pending.arguments).strip() or "{}"
            try:
                msgspec.json.decode(arguments)
            except msgspec.DecodeError as exc:
                raise ParseError(
                    f"Tool call {pending.name!r} ended with arguments that are not valid JSON: "
                    f"{arguments[:200]!r}",
                    model=self.model,
                ) from exc
            calls.append(ToolCall(id=pending.id, name=pending.name, arguments=arguments))
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
