"""Helpers for gateway tests: read recorded fixtures and raw SSE bodies."""

from __future__ import annotations

import json
from typing import Any

from modelport.testing import fixtures_dir
from modelport.wire._sse import SSEDecoder, SSEEvent


def fixture_chunks(relative: str) -> list[dict[str, Any]]:
    """The JSON payloads of an OpenAI-style ``.sse`` fixture (``[DONE]`` left out)."""
    decoder = SSEDecoder()
    events = decoder.feed((fixtures_dir() / relative).read_bytes()) + decoder.close()
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


def fixture_json(relative: str) -> Any:
    return json.loads((fixtures_dir() / relative).read_bytes())


def openai_delta_text(relative: str, field: str = "content") -> str:
    """Everything the fixture streamed in ``choices[0].delta[field]``."""
    return "".join(
        chunk["choices"][0]["delta"].get(field) or ""
        for chunk in fixture_chunks(relative)
        if chunk.get("choices")
    )


def sse_events(body: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(body) + decoder.close()


def anthropic_events(relative: str) -> list[dict[str, Any]]:
    """The JSON payloads of an Anthropic ``.sse`` fixture, in order."""
    decoder = SSEDecoder()
    events = decoder.feed((fixtures_dir() / relative).read_bytes()) + decoder.close()
    return [json.loads(e.data) for e in events]


def anthropic_deltas(relative: str, kind: str) -> str:
    """All ``content_block_delta`` payload text of one delta ``kind`` (``text_delta``…)."""
    field = {
        "text_delta": "text",
        "thinking_delta": "thinking",
        "signature_delta": "signature",
        "input_json_delta": "partial_json",
    }[kind]
    return "".join(
        e["delta"][field]
        for e in anthropic_events(relative)
        if e["type"] == "content_block_delta" and e["delta"]["type"] == kind
    )
