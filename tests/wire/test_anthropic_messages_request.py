"""Canonical requests → Anthropic Messages bodies, checked against exact golden bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelport.errors import InvalidRequestError
from modelport.types import (
    ChatRequest,
    ImagePart,
    Message,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from modelport.wire import anthropic_messages as wire
from modelport.wire import anthropic_messages_server as server
from modelport.wire import openai_chat_server as openai_server
from tests._fixtures import FIXTURES, fixture_bytes

WEATHER = ToolDefinition(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = ToolDefinition(
    name="get_time",
    description="Time in a zone",
    parameters={"type": "object", "properties": {"zone": {"type": "string"}}},
    cache=True,
)

CONVERSATION = ChatRequest(
    model="claude-sonnet-4-5",
    messages=[
        Message(role="system", content="You are terse.", cache=True),
        Message(
            role="user",
            content=[
                TextPart(text="What is in these, and the weather and time in Paris?"),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg", cache=True),
            ],
        ),
        Message(
            role="assistant",
            content=[
                TextPart(text="Let me check."),
                ThinkingPart(text="Two tools needed.", signature="sig-abc"),
                RedactedThinkingPart(data="opaque=="),
            ],
            tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="toolu_2", name="get_time", arguments='{"zone":"Europe/Paris"}'),
            ],
        ),
        Message(role="tool", tool_call_id="toolu_1", content="18C, cloudy"),
        Message(role="tool", tool_call_id="toolu_2", content="14:05", cache=True),
        Message(role="user", content="Thanks. Summarise."),
    ],
    tools=[WEATHER, TIME],
    tool_choice=ToolChoice(mode="required"),
    temperature=1.0,
    top_p=0.9,
    max_tokens=1000,
    stop=["END"],
    reasoning=Reasoning(budget_tokens=2048),
    metadata={"user_id": "u-1", "ignored": True},
    vendor={"anthropic": {"top_k": 5}, "openai": {"seed": 1}},
    extra={"service_tier": "auto"},
)

EPHEMERAL = {"type": "ephemeral"}

GOLDEN: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "system": [{"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these, and the weather and time in Paris?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {
                    "type": "image",
                    "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                    "cache_control": EPHEMERAL,
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two tools needed.", "signature": "sig-abc"},
                {"type": "redacted_thinking", "data": "opaque=="},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_time",
                    "input": {"zone": "Europe/Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, cloudy"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "14:05",
                    "cache_control": EPHEMERAL,
                },
                {"type": "text", "text": "Thanks. Summarise."},
            ],
        },
    ],
    # max_tokens (1000) did not exceed the budget, so the budget is added on top.
    "max_tokens": 3048,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {
            "name": "get_time",
            "description": "Time in a zone",
            "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
            "cache_control": EPHEMERAL,
        },
    ],
    "tool_choice": {"type": "any"},
    "stop_sequences": ["END"],
    "temperature": 1.0,
    "top_p": 0.9,
    "metadata": {"user_id": "u-1"},
    "stream": True,
    "top_k": 5,
    "service_tier": "auto",
}


def test_golden_conversation() -> None:
    body = wire.build_request(CONVERSATION, stream=True)
    assert body == GOLDEN
    # Thinking first, and the body survives JSON exactly.
    assert body["messages"][1]["content"][0]["type"] == "thinking"
    assert json.loads(json.dumps(body)) == GOLDEN


def test_plain_system_is_a_string_and_defaults_apply() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="One."),
            Message(role="user", content="Hi"),
            Message(role="system", content=[TextPart(text="Two.")]),
        ],
    )
    assert wire.build_request(request, stream=False) == {
        "model": "m",
        "system": "One.\n\nTwo.",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": wire.DEFAULT_MAX_TOKENS,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice(), {"type": "auto"}),
        (ToolChoice(mode="required"), {"type": "any"}),
        (ToolChoice.tool("get_weather"), {"type": "tool", "name": "get_weather"}),
        (ToolChoice(mode="none"), {"type": "none"}),
    ],
)
def test_tool_choice(choice: ToolChoice, expected: dict[str, str]) -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", content="x")], tools=[WEATHER], tool_choice=choice
    )
    assert wire.build_request(request, stream=False)["tool_choice"] == expected


@pytest.mark.parametrize(("effort", "budget"), sorted(wire.EFFORT_BUDGETS.items()))
def test_effort_maps_to_a_budget_below_max_tokens(effort: Any, budget: int) -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", content="x")], reasoning=Reasoning(effort=effort)
    )
    body = wire.build_request(request, stream=False)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget


def test_consecutive_same_role_turns_merge() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="a"),
            Message(role="user", content=[TextPart(text="b", cache=True)]),
            Message(role="assistant", content="c"),
            Message(role="assistant", content="", tool_calls=[ToolCall(id="t", name="f")]),
        ],
    )
    assert wire.build_request(request, stream=False)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": EPHEMERAL},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "c"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            ],
        },
    ]


def test_invalid_tool_arguments_are_refused() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="assistant", tool_calls=[ToolCall(id="t", name="f", arguments="{oops")])
        ],
    )
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        wire.build_request(request, stream=False)


def test_tool_message_without_call_id_is_refused() -> None:
    request = ChatRequest(model="m", messages=[Message(role="tool", content="x")])
    with pytest.raises(InvalidRequestError, match="tool_call_id"):
        wire.build_request(request, stream=False)


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    """A recorded body as we would write it: ``stream: false`` left out, a system
    prompt without cache markers as one string."""
    body = dict(body)
    if body.get("stream") is False:
        del body["stream"]
    system = body.get("system")
    if isinstance(system, list) and not any("cache_control" in b for b in system):
        body["system"] = "\n\n".join(b["text"] for b in system)
    return body


REQUEST_FIXTURES = sorted(path.name for path in (FIXTURES / "anthropic").glob("*.request.json"))


@pytest.mark.parametrize("name", REQUEST_FIXTURES)
def test_recorded_requests_survive_parse_then_build(name: str) -> None:
    recorded = json.loads(fixture_bytes(f"anthropic/{name}"))
    request = server.parse_request(recorded)
    rebuilt = wire.build_request(request, stream=bool(recorded.get("stream")))
    assert rebuilt == _normalised(recorded)


def test_build_then_parse_keeps_signatures_and_tool_ids() -> None:
    parsed = server.parse_request(wire.build_request(CONVERSATION, stream=False))
    assistant = next(m for m in parsed.messages if m.role == "assistant")
    assert assistant.parts[:2] == [
        ThinkingPart(text="Two tools needed.", signature="sig-abc"),
        RedactedThinkingPart(data="opaque=="),
    ]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in assistant.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_time", {"zone": "Europe/Paris"}),
    ]
    tools = [m for m in parsed.messages if m.role == "tool"]
    assert [(m.tool_call_id, m.content, m.cache) for m in tools] == [
        ("toolu_1", "18C, cloudy", False),
        ("toolu_2", "14:05", True),
    ]
    assert parsed.reasoning == Reasoning(budget_tokens=2048)
    assert parsed.tool_choice == ToolChoice(mode="required")
    assert parsed.tools == [WEATHER, TIME]
    assert parsed.vendor == {
        "anthropic": {"top_k": 5, "service_tier": "auto"},
        "openai": {"user": "u-1"},
        "openai-responses": {"user": "u-1"},
    }
    # …and building again gives the same body.
    assert wire.build_request(parsed, stream=False) == wire.build_request(
        CONVERSATION, stream=False
    )


def test_unsigned_thinking_is_dropped_and_signed_and_redacted_stay() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="Hi"),
            Message(
                role="assistant",
                content=[
                    ThinkingPart(text="another vendor's thoughts"),
                    ThinkingPart(text="empty signature", signature=""),
                    ThinkingPart(text="signed", signature="sig-1"),
                    RedactedThinkingPart(data="opaque=="),
                    TextPart(text="Hello"),
                ],
                tool_calls=[ToolCall(id="toolu_1", name="get_weather", arguments="{}")],
            ),
            Message(role="tool", tool_call_id="toolu_1", content="18C"),
        ],
    )
    assert wire.build_request(request, stream=False)["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "signed", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        ],
    }


def test_reasoning_from_an_openai_client_does_not_reach_anthropic() -> None:
    request = openai_server.parse_request(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello", "reasoning_content": "Say hello."},
                {"role": "user", "content": "Again"},
            ],
        }
    )
    assert wire.build_request(request, stream=False)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "Again"},
    ]
    # A turn that held nothing but unsigned thinking is left out, not sent empty.
    only_thinking = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="Hi"),
            Message(role="assistant", content=[ThinkingPart(text="hmm")]),
            Message(role="user", content="Well?"),
        ],
    )
    assert wire.build_request(only_thinking, stream=False)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Well?"}],
        }
    ]


def test_strict_is_sent_only_when_true_and_read_back() -> None:
    tools = [
        ToolDefinition(name="on", parameters={"type": "object"}, strict=True),
        ToolDefinition(name="off", parameters={"type": "object"}, strict=False),
        ToolDefinition(name="unsaid", parameters={"type": "object"}, cache=True),
    ]
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")], tools=tools)
    body = wire.build_request(request, stream=False)
    assert body["tools"] == [
        {"name": "on", "description": "", "input_schema": {"type": "object"}, "strict": True},
        {"name": "off", "description": "", "input_schema": {"type": "object"}},
        {
            "name": "unsaid",
            "description": "",
            "input_schema": {"type": "object"},
            "cache_control": EPHEMERAL,
        },
    ]
    assert [tool.strict for tool in server.parse_request(body).tools] == [True, None, None]
