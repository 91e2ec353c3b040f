"""Canonical requests → generateContent bodies: the recorded requests, and signatures sent back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelport.aggregate import aggregate
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
from modelport.wire import gemini
from tests._fixtures import fixture_bytes

SYSTEM = Message(role="system", content="You are a helpful chatbot.")


def recorded(relative: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(relative))


def _without_role(instruction: dict[str, Any]) -> dict[str, Any]:
    # Google accepts a systemInstruction with or without a role; pydantic-ai sent one.
    return {key: value for key, value in instruction.items() if key != "role"}


def test_the_recorded_text_request() -> None:
    sent = recorded("google/streamGenerateContent-sse-text.request.json")
    body = gemini.build_request(
        ChatRequest(
            model="gemini-2.0-flash-exp",
            messages=[SYSTEM, Message(role="user", content="What is the capital of France?")],
            temperature=0.0,
        ),
        stream=True,
    )
    assert body == {
        "systemInstruction": _without_role(sent["systemInstruction"]),
        "contents": sent["contents"],
        "generationConfig": sent["generationConfig"],
    }


def test_the_recorded_function_call_request() -> None:
    sent = recorded("google/streamGenerateContent-sse-functionCall.request.json")
    tools = [
        ToolDefinition(
            name=declaration["name"],
            description=declaration["description"],
            parameters=declaration["parameters"],
        )
        for declaration in sent["tools"][0]["functionDeclarations"]
    ]
    body = gemini.build_request(
        ChatRequest(
            model="gemini-2.0-flash",
            messages=[
                SYSTEM,
                Message(role="user", content=sent["contents"][0]["parts"][0]["text"]),
            ],
            tools=tools,
        ),
        stream=True,
    )
    assert body["contents"] == sent["contents"]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": d["name"],
                    "description": d["description"],
                    "parametersJsonSchema": d["parameters"],
                }
                for d in sent["tools"][0]["functionDeclarations"]
            ]
        }
    ]
    assert "generationConfig" not in body


def test_thinking_on_request() -> None:
    sent = recorded("google/streamGenerateContent-sse-thinking.request.json")
    body = gemini.build_request(
        ChatRequest(
            model="gemini-2.5-pro",
            messages=[Message(role="user", content="How do I cross the street?")],
            reasoning=Reasoning(effort="high"),
        ),
        stream=True,
    )
    assert body["contents"] == sent["contents"]
    assert body["generationConfig"] == {
        "thinkingConfig": {**sent["generationConfig"]["thinkingConfig"], "thinkingBudget": 16384}
    }
    budget = gemini.build_request(
        ChatRequest(model="m", messages=[], reasoning=Reasoning(budget_tokens=0)), stream=False
    )
    assert budget["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False}
    }


def test_a_whole_conversation() -> None:
    request = ChatRequest(
        model="gemini-2.5-flash",
        messages=[
            Message(role="system", content="Be brief."),
            Message(
                role="user",
                content=[
                    TextPart(text="What is in these, and the weather?"),
                    ImagePart(data="iVBORw0KGgo="),
                    ImagePart(url="https://example.com/cat.webp"),
                    ImagePart(url="data:image/gif;base64,R0lGOD=="),
                ],
            ),
            Message(
                role="assistant",
                content=[
                    ThinkingPart(text="Two tools.", signature="sig-think"),
                    RedactedThinkingPart(data="anthropic-only"),
                    TextPart(text="Checking."),
                ],
                tool_calls=[
                    ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
                    ToolCall(id="c2", name="get_time", arguments="{}"),
                ],
            ),
            Message(role="tool", tool_call_id="c1", content='{"temp": 21}'),
            Message(role="tool", tool_call_id="c2", content="14:05"),
            Message(role="user", content="Thanks"),
        ],
        tools=[
            ToolDefinition(name="get_weather"),
            ToolDefinition(name="get_time", description="t"),
        ],
        tool_choice=ToolChoice.tool("get_weather"),
        temperature=0.5,
        top_p=0.9,
        max_tokens=100,
        stop=["END"],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        vendor={
            "gemini": {"generationConfig": {"topK": 3}, "cachedContent": "c/1"},
            "openai": {"seed": 1},
        },
        extra={"labels": {"team": "a"}},
    )
    assert gemini.build_request(request, stream=True) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in these, and the weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {
                        "fileData": {
                            "mimeType": "image/webp",
                            "fileUri": "https://example.com/cat.webp",
                        }
                    },
                    {"inlineData": {"mimeType": "image/gif", "data": "R0lGOD=="}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Two tools.", "thought": True},
                    {"text": "Checking.", "thoughtSignature": "sig-think"},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                    {"functionResponse": {"name": "get_time", "response": {"output": "14:05"}}},
                ],
            },
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "parametersJsonSchema": {"type": "object", "properties": {}},
                    },
                    {
                        "name": "get_time",
                        "description": "t",
                        "parametersJsonSchema": {"type": "object", "properties": {}},
                    },
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
            "topK": 3,
        },
        "cachedContent": "c/1",
        "labels": {"team": "a"},
    }


@pytest.mark.parametrize(
    ("mode", "wire"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")]
)
def test_tool_choice_modes(mode: str, wire: str) -> None:
    body = gemini.build_request(
        ChatRequest(model="m", messages=[], tool_choice=ToolChoice(mode=mode)),
        stream=True,  # type: ignore[arg-type]
    )
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": wire}}


# --- signatures go back on the part they came with ---------------------------------


def _next_turn(relative: str, model: str) -> dict[str, Any]:
    decoder = gemini.StreamDecoder()
    events = decoder.feed(fixture_bytes(relative)) + decoder.close()
    answer = aggregate(events, model=model).to_message()
    results = [
        Message(role="tool", tool_call_id=call.id, content="France") for call in answer.tool_calls
    ]
    request = ChatRequest(
        model=model, messages=[Message(role="user", content="Go"), answer, *results]
    )
    return gemini.build_request(request, stream=True)


def test_a_function_calls_signature_goes_back_on_that_call() -> None:
    relative = "google/streamGenerateContent-sse-functionCall-thoughtSignature.sse"
    first = json.loads(fixture_bytes(relative).split(b"\n")[0].removeprefix(b"data: "))
    part = first["candidates"][0]["content"]["parts"][0]
    body = _next_turn(relative, "gemini-3-pro-preview")
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_country", "args": {}},
                "thoughtSignature": part["thoughtSignature"],
            }
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_country", "response": {"output": "France"}}}],
    }


def test_a_thinking_signature_goes_back_on_the_answer_text() -> None:
    relative = "google/streamGenerateContent-sse-thinking.sse"
    lines = [
        json.loads(line[6:])
        for line in fixture_bytes(relative).split(b"\n")
        if line.startswith(b"data: ")
    ]
    signature = lines[4]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    [thought, answer] = _next_turn(relative, "gemini-2.5-pro")["contents"][1]["parts"]
    assert thought["thought"] is True and thought["text"].startswith("**Clarifying User Goals**")
    assert "thoughtSignature" not in thought
    assert answer["thoughtSignature"] == signature
    assert answer["text"].startswith("This is a great question!")


def test_streamed_partial_arguments_go_back_whole() -> None:
    lines = fixture_bytes("google/vertex-stream-partialArgs.jsonl").splitlines()
    sse = b"".join(b"data: " + line + b"\n\n" for line in lines if line.strip())
    decoder = gemini.StreamDecoder()
    answer = aggregate(decoder.feed(sse) + decoder.close(), model="gemini-3.1-pro").to_message()
    parts = gemini.build_request(
        ChatRequest(model="gemini-3.1-pro-preview", messages=[answer]), stream=True
    )["contents"][0]["parts"]
    signature = json.loads(lines[0])["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert parts == [
        {
            "functionCall": {"name": "getWeather", "args": {"location": "Boston"}},
            "thoughtSignature": signature,
        },
        {"functionCall": {"name": "getWeather", "args": {"location": "San Francisco"}}},
    ]


def test_gemini_3_calls_without_a_signature_get_googles_skip_value() -> None:
    calls = [
        ToolCall(id="a", name="f", arguments="{}"),
        ToolCall(id="b", name="g", arguments="{}"),
    ]
    turn = Message(role="assistant", tool_calls=calls)
    for model, expected in [
        ("gemini-3-pro-preview", gemini.SKIP_SIGNATURE),
        ("gemini-3.1-flash", gemini.SKIP_SIGNATURE),
        ("gemini-2.5-flash", None),
    ]:
        parts = gemini.build_request(ChatRequest(model=model, messages=[turn]), stream=True)[
            "contents"
        ][0]["parts"]
        assert parts[0].get("thoughtSignature") == expected
        assert "thoughtSignature" not in parts[1]


def test_a_signature_with_nothing_after_it_keeps_an_empty_part() -> None:
    turn = Message(role="assistant", content=[ThinkingPart(text="", signature="s")])
    parts = gemini.build_request(ChatRequest(model="m", messages=[turn]), stream=True)["contents"][
        0
    ]["parts"]
    assert parts == [{"text": "", "thoughtSignature": "s"}]


def test_a_tool_answer_needs_the_name_of_its_function() -> None:
    with pytest.raises(InvalidRequestError, match="needs the function's name"):
        gemini.build_request(
            ChatRequest(model="m", messages=[Message(role="tool", tool_call_id="x", content="1")]),
            stream=True,
        )
    named = Message(role="tool", tool_call_id="x", name="f", content="[1, 2]")
    [content] = gemini.build_request(ChatRequest(model="m", messages=[named]), stream=True)[
        "contents"
    ]
    assert content["parts"] == [
        {"functionResponse": {"name": "f", "response": {"output": "[1, 2]"}}}
    ]


def test_arguments_that_are_not_json_are_refused() -> None:
    turn = Message(role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments="{oops")])
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        gemini.build_request(ChatRequest(model="m", messages=[turn]), stream=True)
