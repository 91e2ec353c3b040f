"""build_request: the exact body a canonical request becomes."""

from __future__ import annotations

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
from modelport.wire.openai_chat import build_request, effort_for_budget

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def conversation() -> ChatRequest:
    return ChatRequest(
        model="gpt-4o",
        messages=[
            Message(role="system", content="You are terse.", cache=True),
            Message(
                role="user",
                content=[
                    TextPart(text="Compare these two pictures.", cache=True),
                    ImagePart(url="https://example.com/a.png"),
                    ImagePart(data="iVBORw0KGgoAAAANSUhEUg==", media_type="image/png"),
                ],
            ),
            Message(
                role="assistant",
                content=[
                    ThinkingPart(text="Two cities to look up.", signature="sig"),
                    RedactedThinkingPart(data="opaque"),
                ],
                tool_calls=[
                    ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
                    ToolCall(id="call_2", name="get_weather", arguments='{"city":"Oslo"}'),
                ],
            ),
            Message(role="tool", tool_call_id="call_1", content="18°C and sunny"),
            Message(role="tool", tool_call_id="call_2", content="4°C, snow"),
        ],
        tools=[
            ToolDefinition(
                name="get_weather", description="Weather now", parameters=WEATHER_SCHEMA
            ),
            ToolDefinition(name="noop"),
        ],
        tool_choice=ToolChoice.tool("get_weather"),
        temperature=0.2,
        top_p=0.9,
        max_tokens=300,
        stop=["END"],
        response_format={"type": "json_object"},
        reasoning=Reasoning(effort="low"),
        metadata={"trace": "abc"},
        vendor={"openai": {"seed": 7, "temperature": 0.5}, "anthropic": {"top_k": 3}},
        extra={"seed": 8, "user": "u-1"},
    )


def test_golden_conversation_streaming() -> None:
    assert build_request(conversation(), stream=True) == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these two pictures."},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C and sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "4°C, snow"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": WEATHER_SCHEMA,
                },
            },
            {
                "type": "function",
                "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}},
            },
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        # vendor["openai"] overrides the canonical value; extra overrides vendor.
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 300,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 8,
        "user": "u-1",
    }


def test_non_streaming_omits_unset_fields() -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")])
    assert build_request(request, stream=False) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_body_key_order_is_stable() -> None:
    keys = list(build_request(conversation(), stream=True))
    assert keys[:3] == ["model", "messages", "tools"]
    assert keys[-2:] == ["seed", "user"]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice(mode="auto"), "auto"),
        (ToolChoice(mode="none"), "none"),
        (ToolChoice(mode="required"), "required"),
        (ToolChoice.tool("f"), {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: ToolChoice, wire: object) -> None:
    request = ChatRequest(model="m", messages=[], tool_choice=choice)
    assert build_request(request, stream=False)["tool_choice"] == wire


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(0, None), (1024, "low"), (2048, "low"), (4096, "medium"), (8192, "medium"), (16384, "high")],
)
def test_budget_becomes_the_nearest_effort(budget: int, effort: str | None) -> None:
    assert effort_for_budget(budget) == effort
    request = ChatRequest(model="m", messages=[], reasoning=Reasoning(budget_tokens=budget))
    assert build_request(request, stream=False).get("reasoning_effort") == effort


def test_effort_wins_over_budget() -> None:
    request = ChatRequest(
        model="m", messages=[], reasoning=Reasoning(effort="minimal", budget_tokens=20000)
    )
    assert build_request(request, stream=False)["reasoning_effort"] == "minimal"


def test_max_completion_tokens_from_vendor_replaces_max_tokens() -> None:
    request = ChatRequest(
        model="o3", messages=[], max_tokens=100, vendor={"openai": {"max_completion_tokens": 100}}
    )
    body = build_request(request, stream=False)
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 100


def test_single_text_part_is_sent_as_a_string() -> None:
    # An aggregated turn with thinking comes back as [ThinkingPart, TextPart]; many
    # servers (DeepSeek, older vLLM) accept only string content for assistants.
    message = Message(role="assistant", content=[ThinkingPart(text="hmm"), TextPart(text="Paris.")])
    request = ChatRequest(model="m", messages=[message])
    assert build_request(request, stream=False)["messages"] == [
        {"role": "assistant", "content": "Paris."}
    ]


def test_two_text_parts_stay_parts_and_names_are_kept() -> None:
    message = Message(role="user", name="ada", content=[TextPart(text="a"), TextPart(text="b")])
    request = ChatRequest(model="m", messages=[message])
    assert build_request(request, stream=False)["messages"] == [
        {
            "role": "user",
            "name": "ada",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    ]


def test_assistant_with_text_and_a_tool_call_keeps_its_text() -> None:
    message = Message(
        role="assistant",
        content="Looking it up.",
        tool_calls=[ToolCall(id="c", name="f")],
    )
    body = build_request(ChatRequest(model="m", messages=[message]), stream=False)
    assert body["messages"][0]["content"] == "Looking it up."
    assert body["messages"][0]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        ("/9j/4AAQSkZJRg==", "image/jpeg"),
        ("R0lGODlhAQABAAAAACw=", "image/gif"),
        ("UklGRiQAAABXRUJQ", "image/webp"),
        ("iVBORw0KGgo=", "image/png"),
    ],
)
def test_base64_image_without_media_type_is_sniffed(data: str, media_type: str) -> None:
    message = Message(role="user", content=[ImagePart(data=data), TextPart(text="?")])
    body = build_request(ChatRequest(model="m", messages=[message]), stream=False)
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url == f"data:{media_type};base64,{data}"


def test_tool_message_without_call_id_is_refused() -> None:
    request = ChatRequest(model="m", messages=[Message(role="tool", content="42")])
    with pytest.raises(InvalidRequestError, match="tool_call_id"):
        build_request(request, stream=False)


def test_image_without_url_or_data_is_refused() -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content=[ImagePart()])])
    with pytest.raises(InvalidRequestError, match="url or base64"):
        build_request(request, stream=False)


def test_strict_goes_inside_function_only_when_set() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message(role="user", content="hi")],
        tools=[
            ToolDefinition(name="on", parameters=WEATHER_SCHEMA, strict=True),
            ToolDefinition(name="off", description="Off", strict=False),
            ToolDefinition(name="unsaid"),
        ],
    )
    assert build_request(request, stream=False)["tools"] == [
        {
            "type": "function",
            "function": {"name": "on", "parameters": WEATHER_SCHEMA, "strict": True},
        },
        {
            "type": "function",
            "function": {
                "name": "off",
                "description": "Off",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            },
        },
        {
            "type": "function",
            "function": {"name": "unsaid", "parameters": {"type": "object", "properties": {}}},
        },
    ]
