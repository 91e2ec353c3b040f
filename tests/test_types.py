from __future__ import annotations

import msgspec
import pytest

from modelport.events import StreamEvent, TextEvent, UsageEvent
from modelport.providers import ConnectionSettings
from modelport.types import (
    ChatRequest,
    ImagePart,
    Message,
    ModelInfo,
    TextPart,
    ThinkingPart,
    ToolCall,
    Usage,
)


def test_values_are_frozen_and_keyword_only() -> None:
    part = TextPart(text="x")
    with pytest.raises(AttributeError):
        part.text = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TextPart("x")  # type: ignore[misc]


def test_parts_and_events_carry_their_tag() -> None:
    assert TextPart(text="a").type == "text"
    assert ThinkingPart(text="t", signature="s").type == "thinking"
    assert TextEvent(text="a").type == "text"
    usage = UsageEvent(input_tokens=1)
    assert usage.type == "usage" and isinstance(usage, Usage)
    assert usage.to_usage() == Usage(input_tokens=1)


def test_messages_round_trip_through_json() -> None:
    message = Message(
        role="assistant",
        content=[ThinkingPart(text="hm", signature="s"), TextPart(text="hi", cache=True)],
        tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": 1}')],
    )
    assert msgspec.json.decode(msgspec.json.encode(message), type=Message) == message
    user = Message(role="user", content=[ImagePart(data="AAA", media_type="image/png")])
    assert msgspec.json.decode(msgspec.json.encode(user), type=Message) == user


def test_events_decode_by_tag() -> None:
    events = msgspec.json.decode(
        b'[{"type":"text","text":"x"},{"type":"usage","input_tokens":3},'
        b'{"type":"finish","reason":"stop"}]',
        type=list[StreamEvent],
    )
    assert [e.type for e in events] == ["text", "usage", "finish"]


def test_message_views() -> None:
    message = Message(
        role="user", content=[TextPart(text="a"), ImagePart(url="u"), TextPart(text="b")]
    )
    assert message.text == "ab"
    assert Message(role="user", content="hi").parts == [TextPart(text="hi")]
    assert Message(role="user").parts == []


def test_model_address_and_request_defaults() -> None:
    assert ModelInfo(id="anthropic/claude", connection="openrouter").address == (
        "openrouter/anthropic/claude"
    )
    request = ChatRequest(model="m", messages=[])
    assert request.tools == [] and request.extra == {} and request.vendor == {}


def test_connection_settings_never_show_the_key() -> None:
    settings = ConnectionSettings(name="x", compat="openai", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(settings)
