"""How a plugin's chunks and final answer become events, whatever shape the final answer has."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.errors import PluginError, RateLimitError
from modelport.events import FinishEvent, TextEvent, ToolCallStartEvent, UsageEvent
from modelport.plugin_host._answer import AnswerFold

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "choices": [choice], **extra}


def _fold(chunks: list[Any], final: Any) -> list[Any]:
    fold = AnswerFold()
    events = [event for chunk in chunks for event in fold.chunk(chunk)]
    return events + fold.final(final, plugin="p", method="provider.stream")


def test_the_last_chunk_as_final_answer_adds_no_text_twice() -> None:
    last = _chunk({"content": "lo"}, "stop")
    events = _fold([_chunk({"content": "Hel"}), last], last)
    assert [e.text for e in events if isinstance(e, TextEvent)] == ["Hel", "lo"]
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(reason="stop")]


def test_usage_and_finish_come_from_whichever_carries_them() -> None:
    completion = {
        "choices": [{"index": 0, "message": {"content": "ignored"}, "finish_reason": "length"}],
        "usage": USAGE,
    }
    events = _fold([_chunk({"content": "a"})], completion)
    assert [e.text for e in events if isinstance(e, TextEvent)] == ["a"]
    assert FinishEvent(reason="length") in events
    assert [e.output_tokens for e in events if isinstance(e, UsageEvent)] == [2]
    # The chunks' own finish reason wins over the final answer's.
    events = _fold([_chunk({"content": "a"}, "stop")], completion)
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(reason="stop")]


@pytest.mark.parametrize("final", [{}, None, [], "done", {"choices": "x"}, {"usage": "lots"}])
def test_a_thin_or_odd_final_answer_after_text_never_fails(final: Any) -> None:
    call = {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}
    events = _fold([_chunk({"content": "a"}), _chunk({"tool_calls": [call]})], final)
    assert isinstance(events[-1], FinishEvent) and events[-1].reason == "tool_calls"
    assert any(isinstance(e, ToolCallStartEvent) for e in events)


def test_without_chunks_the_final_answer_is_the_answer() -> None:
    events = _fold([], {"choices": [{"index": 0, "message": {"content": "whole"}}]})
    assert TextEvent(text="whole") in events and isinstance(events[-1], FinishEvent)
    events = _fold([], _chunk({"content": "one chunk"}))
    assert TextEvent(text="one chunk") in events and events[-1] == FinishEvent(reason="stop")
    for nothing in ({}, None):
        with pytest.raises(PluginError, match="neither chunks nor a chat.completion"):
            _fold([], nothing)


def test_an_explicit_error_in_the_final_answer_is_raised() -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit_error", "code": 429}}
    with pytest.raises(RateLimitError):
        _fold([_chunk({"content": "a"})], error)
