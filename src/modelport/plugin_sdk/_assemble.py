"""Folding ``chat.completion.chunk`` objects into the ``chat.completion`` they add up to.

The protocol's answer to ``provider.stream`` is the whole response, not the
last chunk: text joined, tool calls joined by index and ordered by it, the
finish reason (``tool_calls`` whenever tools were called) and the usage.
This mirrors :class:`modelport.aggregate.Aggregator` on the OpenAI wire shape,
so a plugin needs nothing from the host side to build it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["ChunkAssembler", "normalise_chunk"]


def normalise_chunk(chunk: Any, *, model: str, id: str, created: int) -> dict[str, Any]:
    """A full ``chat.completion.chunk`` from what a handler yielded (a dict or plain text)."""
    if isinstance(chunk, str):
        chunk = {"choices": [{"index": 0, "delta": {"content": chunk}}]}
    if not isinstance(chunk, dict):
        raise TypeError(f"a stream handler must yield dicts or strings, not {type(chunk).__name__}")
    full = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
    full.update(chunk)
    full.setdefault("choices", [])
    return full


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class ChunkAssembler:
    """Feed chunks with :meth:`add`; :meth:`result` is the ``chat.completion``."""

    def __init__(self, *, model: str, id: str | None = None) -> None:
        self.id = id or f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._refusal: list[str] = []

    def add(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._content.append(delta["content"])
            if delta.get("reasoning_content"):
                self._reasoning.append(delta["reasoning_content"])
            if delta.get("refusal"):
                self._refusal.append(delta["refusal"])
            for fragment in delta.get("tool_calls") or []:
                call = self._calls.setdefault(int(fragment.get("index", 0)), _Call())
                call.id = fragment.get("id") or call.id
                function = fragment.get("function") or {}
                call.name = function.get("name") or call.name
                if function.get("arguments"):
                    call.arguments.append(function["arguments"])
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        calls = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.arguments) or "{}"},
            }
            for index, call in sorted(self._calls.items())
        ]
        finish = self._finish
        if calls and finish in (None, "stop"):
            finish = "tool_calls"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self._content) if self._content or not calls else None,
        }
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._refusal:
            message["refusal"] = "".join(self._refusal)
        if calls:
            message["tool_calls"] = calls
        result: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
        }
        if self._usage is not None:
            result["usage"] = self._usage
        return result
