"""What the current Messages API accepts and Claude Code sends: mid-conversation system
messages, adaptive thinking and ``output_config``, ``metadata.user_id`` — read, translated
for other APIs, and passed through untouched to Anthropic."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from modelport.errors import InvalidRequestError
from modelport.types import Message, Reasoning, TextPart
from modelport.wire import _openai_request, _responses_request
from modelport.wire._anthropic_request import build_request
from modelport.wire.anthropic_messages_server import parse_request

USER = {"role": "user", "content": "hi"}


def _parse(**fields: Any) -> Any:
    return parse_request({"model": "m", "max_tokens": 100, "messages": [USER], **fields})


@pytest.mark.parametrize(
    ("fields", "reasoning"),
    [
        ({"thinking": {"type": "adaptive"}}, Reasoning(effort="high", adaptive=True)),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}},
            Reasoning(effort="low", adaptive=True),
        ),
        ({"output_config": {"effort": "max"}}, Reasoning(effort="high", adaptive=True)),
        ({"output_config": {"effort": "xhigh"}}, Reasoning(effort="high", adaptive=True)),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, None),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 2048},
                "output_config": {"effort": "medium"},
            },
            Reasoning(effort="medium", budget_tokens=2048),
        ),
        ({"output_config": {"effort": "unheard-of"}}, None),
    ],
)
def test_thinking_and_effort_become_a_reasoning_effort(
    fields: dict[str, Any], reasoning: Any
) -> None:
    assert _parse(**fields).reasoning == reasoning


def test_adaptive_thinking_reaches_anthropic_as_sent() -> None:
    fields = {
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }
    body = build_request(_parse(**fields), stream=True)
    for key, value in fields.items():
        assert body[key] == value
    assert body["max_tokens"] == 100  # no budget of ours added to it


def test_effort_alone_adds_no_thinking_for_anthropic() -> None:
    body = build_request(_parse(output_config={"effort": "low"}), stream=False)
    assert "thinking" not in body and body["output_config"] == {"effort": "low"}


def test_other_apis_get_an_effort_a_user_and_a_schema() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    chat = _parse(
        thinking={"type": "adaptive"},
        output_config={"effort": "medium", "format": {"type": "json_schema", "schema": schema}},
        metadata={"user_id": "u-1"},
    )
    body = _openai_request.build_request(chat, stream=False)
    assert body["reasoning_effort"] == "medium"
    assert body["user"] == "u-1"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    for key in ("thinking", "output_config", "metadata"):
        assert key not in body
    responses = _responses_request.build_request(chat, stream=False)
    assert responses["reasoning"] == {"effort": "medium"} and responses["user"] == "u-1"
    assert responses["text"]["format"]["schema"] == schema


def test_a_system_message_in_the_middle_stays_in_place() -> None:
    chat = parse_request(
        {
            "model": "m",
            "max_tokens": 100,
            "system": "Top.",
            "messages": [
                USER,
                {"role": "system", "content": "Mid."},
                {"role": "assistant", "content": "ok"},
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "Cached.", "cache_control": {"type": "ephemeral"}}
                    ],
                },
            ],
        }
    )
    assert [m.role for m in chat.messages] == ["system", "user", "system", "assistant", "system"]
    assert chat.messages[4] == Message(
        role="system", content=[TextPart(text="Cached.", cache=True)]
    )

    # A Chat Completions upstream keeps it in place ...
    body = _openai_request.build_request(chat, stream=False)
    assert [m["role"] for m in body["messages"]] == [
        "system",
        "user",
        "system",
        "assistant",
        "system",
    ]
    # ... so does Anthropic with the beta on; without it, it joins the top-level system.
    in_place = build_request(chat, stream=False, system_in_place=True)
    assert in_place["system"] == "Top."
    assert in_place["messages"][1] == {"role": "system", "content": "Mid."}
    assert in_place["messages"][3] == {
        "role": "system",
        "content": [{"type": "text", "text": "Cached.", "cache_control": {"type": "ephemeral"}}],
    }
    merged = build_request(chat, stream=False)
    assert [m["role"] for m in merged["messages"]] == ["user", "assistant"]
    assert [b["text"] for b in merged["system"]] == ["Top.", "Mid.", "Cached."]


def test_a_system_message_holds_text_only() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}
    with pytest.raises(InvalidRequestError, match="text blocks only"):
        parse_request(
            {
                "model": "m",
                "max_tokens": 9,
                "messages": [USER, {"role": "system", "content": [image]}],
            }
        )
    with pytest.raises(InvalidRequestError, match="needs a schema"):
        _parse(output_config={"format": {"type": "json_schema"}})


def test_what_another_api_cannot_use_is_dropped_and_said_at_debug_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = _parse(context_management={"edits": []}, thinking={"type": "adaptive"})
    with caplog.at_level(logging.DEBUG, logger="modelport.wire"):
        body = _openai_request.build_request(chat, stream=False)
    assert "context_management" not in body
    [record] = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert "anthropic options context_management, thinking" in record.getMessage()
