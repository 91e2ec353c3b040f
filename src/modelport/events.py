"""The canonical events of a stream, in the order they may arrive.

A provider's ``stream()`` yields these and nothing else; every decoder turns
its wire format into them and every encoder turns them back into a wire
format. Failures are not events: they are raised as exceptions from
:mod:`modelport.errors`.

* :class:`TextEvent` — the next piece of visible text.
* :class:`ReasoningEvent` — the next piece of reasoning. A ``signature`` closes
  the current thinking block (Anthropic); ``redacted`` carries an opaque
  redacted-thinking block as a whole.
* :class:`ToolCallStartEvent` — a tool call begins at ``index``; a ``signature``
  the provider attached to the call (Gemini) travels with it.
* :class:`ToolCallDeltaEvent` — the next fragment of that call's arguments JSON.
* :class:`UsageEvent` — a *cumulative snapshot* of the usage so far; the latest
  one wins, they are never added up.
* :class:`FinishEvent` — why the turn ended.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from modelport.types import FinishReason, Usage

__all__ = [
    "FinishEvent",
    "ReasoningEvent",
    "StreamEvent",
    "TextEvent",
    "ToolCallDeltaEvent",
    "ToolCallStartEvent",
    "UsageEvent",
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    pass


class TextEvent(_Event, tag="text", kw_only=True):
    text: str

    @property
    def type(self) -> Literal["text"]:
        return "text"


class ReasoningEvent(_Event, tag="reasoning", kw_only=True):
    text: str = ""
    signature: str | None = None
    redacted: str | None = None

    @property
    def type(self) -> Literal["reasoning"]:
        return "reasoning"


class ToolCallStartEvent(_Event, tag="tool_call_start", kw_only=True):
    index: int
    id: str
    name: str
    signature: str | None = None

    @property
    def type(self) -> Literal["tool_call_start"]:
        return "tool_call_start"


class ToolCallDeltaEvent(_Event, tag="tool_call_delta", kw_only=True):
    index: int
    arguments: str

    @property
    def type(self) -> Literal["tool_call_delta"]:
        return "tool_call_delta"


class UsageEvent(Usage, tag="usage", tag_field="type", kw_only=True):
    """A usage snapshot; it *is* a :class:`~modelport.types.Usage`."""

    @property
    def type(self) -> Literal["usage"]:
        return "usage"

    def to_usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cost=self.cost,
        )


class FinishEvent(_Event, tag="finish", kw_only=True):
    reason: FinishReason

    @property
    def type(self) -> Literal["finish"]:
        return "finish"


StreamEvent = (
    TextEvent | ReasoningEvent | ToolCallStartEvent | ToolCallDeltaEvent | UsageEvent | FinishEvent
)
