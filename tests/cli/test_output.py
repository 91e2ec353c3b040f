"""The terminal renderer (``cli/_output.py``) on every recorded stream that carries tool calls.

Each fixture is decoded with its own wire module, fed to :class:`EventPrinter`
one event at a time (as ``modelport chat`` does), and the printed calls must be
exactly the calls the events aggregate to: every call, each with its whole
arguments, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.aggregate import aggregate
from modelport.cli._output import EventPrinter, format_tool_call
from modelport.errors import ModelportError
from modelport.events import (
    FinishEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
)
from modelport.wire import anthropic_messages, ollama_ndjson, openai_chat
from tests._fixtures import FIXTURES

Decode = Callable[[bytes], list[StreamEvent]]


def _stream(module: object) -> Decode:
    def decode(data: bytes) -> list[StreamEvent]:
        decoder = module.StreamDecoder()  # type: ignore[attr-defined]
        return decoder.feed(data) + decoder.close()

    return decode


def _openai_jsonl(data: bytes) -> list[StreamEvent]:
    decoder = openai_chat.StreamDecoder()
    events: list[StreamEvent] = []
    for line in data.splitlines():
        if line.strip():
            events += decoder.feed_json(json.loads(line))
    return events + decoder.end()


def _decoder_for(path: Path) -> Decode | None:
    """The wire decoder that reads ``path``, or ``None`` for what no chat decoder reads."""
    name, folder, suffix = path.name, path.parent.name, path.suffix
    if name.endswith(".request.json") or suffix == ".md" or name.startswith("error-"):
        return None
    if folder == "anthropic":
        if suffix == ".sse":
            return _stream(anthropic_messages)
        return anthropic_messages.decode_response
    if folder == "ollama":
        if name.startswith("v1-"):
            return openai_chat.decode_response
        if name.startswith("api-chat"):
            return _stream(ollama_ndjson) if suffix == ".ndjson" else ollama_ndjson.decode_response
        return None
    if folder in ("openai", "openai-compatible", "openrouter", "deepseek", "vllm"):
        if name.startswith("responses-") or name == "completion.json":
            return None
        if suffix == ".jsonl":
            return _openai_jsonl
        return _stream(openai_chat) if suffix == ".sse" else openai_chat.decode_response
    return None


def _tool_call_fixtures() -> list[tuple[str, list[StreamEvent]]]:
    found = []
    for path in sorted(FIXTURES.rglob("*")):
        decode = _decoder_for(path) if path.is_file() else None
        if decode is None:
            continue
        try:
            events = decode(path.read_bytes())
        except ModelportError:
            continue  # a recorded failure (a mid-stream error) carries no calls to show
        if any(isinstance(event, ToolCallStartEvent) for event in events):
            found.append((str(path.relative_to(FIXTURES)), events))
    return found


TOOL_CALL_FIXTURES = _tool_call_fixtures()


def test_the_fixtures_cover_many_recordings_with_several_calls() -> None:
    # Guard against a decoder rule that quietly finds nothing to check.
    assert len(TOOL_CALL_FIXTURES) >= 10
    several = [
        name
        for name, events in TOOL_CALL_FIXTURES
        if sum(isinstance(e, ToolCallStartEvent) for e in events) > 1
    ]
    assert len(several) >= 4, several


@pytest.mark.parametrize(
    ("name", "events"), TOOL_CALL_FIXTURES, ids=[name for name, _ in TOOL_CALL_FIXTURES]
)
def test_every_streamed_tool_call_is_shown_with_its_arguments(
    name: str, events: list[StreamEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = aggregate(events, model="m").tool_calls
    printer = EventPrinter(model="m")
    for event in events:
        printer.add(event)
    response = printer.close()

    out = capsys.readouterr().out
    # Arguments may span lines (pretty-printed JSON): look for each whole call, in order.
    assert out.count("→ tool ") == len(expected)
    position = 0
    for call in expected:
        shown = format_tool_call(call) + "\n"
        assert shown in out[position:], (shown, out)
        position = out.index(shown, position) + len(shown)
    assert response.tool_calls == expected


def test_two_calls_in_a_row_both_keep_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """The report's stream: the last call used to be printed before its arguments arrived."""
    events: list[StreamEvent] = [
        ToolCallStartEvent(index=0, id="a", name="get_weather"),
        ToolCallDeltaEvent(index=0, arguments='{"location": '),
        ToolCallDeltaEvent(index=0, arguments='"Paris", "unit": "c"}'),
        ToolCallStartEvent(index=1, id="b", name="get_time"),
        ToolCallDeltaEvent(index=1, arguments='{"tz": '),
        ToolCallDeltaEvent(index=1, arguments='"Europe/Paris"}'),
        FinishEvent(reason="tool_calls"),
    ]
    printer = EventPrinter(model="m")
    for event in events:
        printer.add(event)
    printer.close()

    assert capsys.readouterr().out.splitlines() == [
        '→ tool get_weather({"location": "Paris", "unit": "c"})',
        '→ tool get_time({"tz": "Europe/Paris"})',
    ]


def test_a_call_is_shown_as_soon_as_the_next_one_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = EventPrinter(model="m")
    printer.add(ToolCallStartEvent(index=0, id="a", name="first"))
    printer.add(ToolCallDeltaEvent(index=0, arguments='{"n": 1}'))
    printer.add(ToolCallStartEvent(index=1, id="b", name="second"))

    assert capsys.readouterr().out == '→ tool first({"n": 1})\n'

    printer.add(ToolCallDeltaEvent(index=1, arguments='{"n": 2}'))
    printer.add(TextEvent(text="done"))
    printer.close()
    assert capsys.readouterr().out == '→ tool second({"n": 2})\ndone\n'


def test_interleaved_calls_wait_until_their_arguments_are_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = EventPrinter(model="m")
    printer.add(ToolCallStartEvent(index=0, id="a", name="first"))
    printer.add(ToolCallDeltaEvent(index=0, arguments='{"n": '))
    printer.add(ToolCallStartEvent(index=1, id="b", name="second"))
    printer.add(ToolCallDeltaEvent(index=1, arguments="{}"))
    printer.add(ToolCallDeltaEvent(index=0, arguments="1}"))
    printer.add(FinishEvent(reason="tool_calls"))
    printer.close()

    assert capsys.readouterr().out.splitlines() == [
        '→ tool first({"n": 1})',
        "→ tool second({})",
    ]
