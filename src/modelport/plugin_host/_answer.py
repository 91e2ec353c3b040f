"""A plugin's answer to ``provider.stream`` / ``provider.complete`` as canonical events.

A plugin sends zero or more ``provider.chunk`` notifications, then a final
answer. Authors write that final answer in several ways: the whole
``chat.completion`` (what the protocol asked for first), the last
``chat.completion.chunk`` they relayed (what the most common SDK's guide
does), or ``{}``/``null``. :class:`AnswerFold` accepts them all:

* chunks were sent: they are the answer. The final answer only supplies the
  finish reason and usage the chunks lacked (its text is never added again),
  and a stream the plugin ended without a finish reason ends with ``stop``
  (``tool_calls`` when tools were called). Nothing in a thin final answer can
  fail a stream whose text the caller already has.
* no chunks: the final answer is the answer, as a ``chat.completion`` or as a
  single chunk; one with neither is a :class:`~modelport.errors.PluginError`.
* for ``provider.complete``, a final ``chat.completion`` wins over any chunks.

An explicit in-band ``error`` in the final answer is raised, whatever came before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelport.errors import ParseError, PluginError
from modelport.events import FinishEvent, StreamEvent, UsageEvent
from modelport.wire.openai_chat import StreamDecoder, decode_completion

__all__ = ["AnswerFold"]


def _first_choice(answer: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, Mapping) and not choice.get("index"):
            return choice
    return None


def is_completion(answer: Any) -> bool:
    """Whether ``answer`` is a ``chat.completion`` (its first choice holds a message)."""
    if not isinstance(answer, Mapping):
        return False
    choice = _first_choice(answer)
    return choice is not None and isinstance(choice.get("message"), Mapping)


def _is_chunk(answer: Any) -> bool:
    if not isinstance(answer, Mapping):
        return False
    choice = _first_choice(answer)
    return answer.get("object") == "chat.completion.chunk" or (
        choice is not None and isinstance(choice.get("delta"), Mapping)
    )


class AnswerFold:
    """Feed chunks with :meth:`chunk`; :meth:`final` gives the events the final answer adds."""

    def __init__(self) -> None:
        self._decoder = StreamDecoder()
        self.chunks = 0
        self._finished = False
        self._usage = False

    def _note(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for event in events:
            self._finished |= isinstance(event, FinishEvent)
            self._usage |= isinstance(event, UsageEvent)
        return events

    def chunk(self, chunk: Any) -> list[StreamEvent]:
        """The events of one ``provider.chunk``; anything but an object is ignored."""
        if not isinstance(chunk, Mapping):
            return []
        self.chunks += 1
        return self._note(self._decoder.feed_json(chunk))

    def final(self, answer: Any, *, plugin: str, method: str) -> list[StreamEvent]:
        """The events the final answer adds (see the module docstring)."""
        if isinstance(answer, Mapping) and answer.get("error") is not None:
            decode_completion(answer)  # raises the in-band error it carries
        out: list[StreamEvent] = []
        if self.chunks == 0:
            if is_completion(answer):
                return decode_completion(answer)  # type: ignore[arg-type]
            if not _is_chunk(answer):
                raise PluginError(
                    f"The plugin answered {method} with neither chunks nor a chat.completion",
                    plugin=plugin,
                )
            out += self.chunk(answer)
            answer = None
        out += self._note(self._decoder.end())
        closing = self._closing(answer if isinstance(answer, Mapping) else {})
        if closing is not None:
            try:
                out += self._note(self._decoder.feed_json(closing))
            except ParseError:
                # A usage of a shape we cannot read: the text is delivered, so
                # keep the finish reason and drop the usage rather than fail.
                closing.pop("usage", None)
                out += self._note(self._decoder.feed_json(closing))
        return out

    def _closing(self, answer: Mapping[str, Any]) -> dict[str, Any] | None:
        """A chunk with the finish reason and usage still missing, taken from ``answer``."""
        closing: dict[str, Any] = {"choices": []}
        if not self._usage and isinstance(answer.get("usage"), Mapping):
            closing["usage"] = dict(answer["usage"])
        if not self._finished:
            choice = _first_choice(answer) or {}
            reason = choice.get("finish_reason")
            reason = reason if isinstance(reason, str) and reason else "stop"
            closing["choices"] = [{"index": 0, "delta": {}, "finish_reason": reason}]
        return closing if closing["choices"] or "usage" in closing else None
