"""Cross translation: each SDK on a model behind the other vendor's API.

Both directions go upstream decoder → canonical events → client encoder;
the assertions compare what the client got with what the fixture streamed.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from modelport.testing import FakeUpstream, RecordedRequest, Reply, Responder
from tests.server._sse import anthropic_deltas, openai_delta_text
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def test_openai_client_on_anthropic_model_streams_thinking_and_text(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    fixture = "anthropic/messages-stream-thinking-signature.sse"
    upstream.route("POST", "/v1/messages", Reply.fixture(fixture, chunks="random", split_seed=2))
    stream = gateway.openai().chat.completions.create(
        model="ant/claude-sonnet-4-5",
        messages=[{"role": "system", "content": "Be brief."}, *USER],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=2048,
        reasoning_effort="medium",
    )
    chunks = list(stream)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert text == anthropic_deltas(fixture, "text_delta")
    assert reasoning == anthropic_deltas(fixture, "thinking_delta")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 133
    body = upstream.requests[-1].json()
    assert body["model"] == "claude-sonnet-4-5"
    assert body["thinking"]["type"] == "enabled"  # reasoning_effort became a budget
    assert body["max_tokens"] > body["thinking"]["budget_tokens"]
    assert "Be brief." in json.dumps(body["system"])


def test_openai_client_on_anthropic_model_gets_tool_calls(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text-and-two-tool_use.sse")
    )
    completion = gateway.openai().chat.completions.create(
        model="ant/claude-sonnet-4-5",
        messages=USER,  # type: ignore[arg-type]
        tools=[
            {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {}}},
        ],
    )
    ChatCompletion.model_validate(completion.model_dump())
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    for call in calls:
        json.loads(call.function.arguments)  # type: ignore[union-attr]
    tools = upstream.requests[-1].json()["tools"]
    assert [t["name"] for t in tools] == ["get_weather", "get_time"]
    assert "input_schema" in tools[0]


def test_anthropic_client_on_openai_model_streams_reasoning(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    fixture = "deepseek/chat-stream-reasoning_content.sse"
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture(fixture, chunks="random", split_seed=8)
    )
    client = gateway.anthropic()
    with client.messages.stream(
        model="oai/deepseek-reasoner",
        max_tokens=1024,
        system="Be brief.",
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    Message.model_validate(message.model_dump())
    blocks = {block.type: block for block in message.content}
    assert blocks["thinking"].thinking == openai_delta_text(fixture, "reasoning_content")  # type: ignore[union-attr]
    assert blocks["text"].text == openai_delta_text(fixture)  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 212
    body = upstream.requests[-1].json()
    assert body["model"] == "deepseek-reasoner"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_anthropic_client_on_openai_model_gets_tool_use(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openai/chat-stream-parallel-tool-calls-split-args.sse", chunks=[7] * 400),
    )
    client = gateway.anthropic()
    message = client.messages.create(
        model="oai/gpt-4o",
        max_tokens=1024,
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],  # type: ignore[list-item]
        messages=USER,  # type: ignore[arg-type]
    )
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert uses[0].name == "get_weather"
    assert uses[0].input == {"city": "Mexico City"}
    assert uses[0].id == "call_NS4iQj14cDFwc0BnrKqDHavt"
    sent = upstream.requests[-1].json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    # The next turn sends the tool result back in OpenAI form.
    _ = client.messages.create(
        model="oai/gpt-4o",
        max_tokens=1024,
        messages=[
            *USER,
            {"role": "assistant", "content": [u.model_dump() for u in uses]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "21C"}],
            },
        ],  # type: ignore[arg-type]
    )
    messages = upstream.requests[-1].json()["messages"]
    assert messages[1]["tool_calls"][0]["id"] == uses[0].id
    assert messages[2] == {"role": "tool", "tool_call_id": uses[0].id, "content": "21C"}


PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)


def test_openai_client_image_reaches_an_anthropic_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    gateway.openai().chat.completions.create(
        model="ant/claude-sonnet-4-5",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://img.example/cat.jpg"}},
                ],
            }
        ],
    )
    content = upstream.requests[-1].json()["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://img.example/cat.jpg"},
    }


def test_anthropic_client_image_reaches_an_openai_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-completion-refusal.json")
    )
    gateway.anthropic().messages.create(
        model="oai/gpt-4o",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://img.example/a.png"},
                    },
                    {"type": "text", "text": "Describe it."},
                ],
            }
        ],
    )
    content = upstream.requests[-1].json()["messages"][0]["content"]
    assert content[0]["type"] == "image_url"
    assert content[0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert content[1]["image_url"]["url"] == "https://img.example/a.png"
    assert content[2] == {"type": "text", "text": "Describe it."}


def test_openai_clients_tool_result_turn_reaches_an_anthropic_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    gateway.openai().chat.completions.create(
        model="ant/claude-sonnet-4-5",
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_01A",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "21C"},
        ],  # type: ignore[arg-type]
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    )
    messages = upstream.requests[-1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    (use,) = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
    assert use == {
        "type": "tool_use",
        "id": "toolu_01A",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    (result,) = messages[2]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_01A"
    assert json.dumps(result["content"]).count("21C") == 1


# --- signed thinking through an OpenAI client, there and back ------------------------------

THINKING_THEN_TOOL = "anthropic/messages-stream-thinking-then-tool_use.sse"
VERSION_TOOL = [
    {
        "type": "function",
        "function": {
            "name": "fixed_version",
            "description": "The version",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def _recorded_block() -> tuple[str, str]:
    """The thinking text and signature the fixture streams (what Anthropic signed)."""
    return anthropic_deltas(THINKING_THEN_TOOL, "thinking_delta"), anthropic_deltas(
        THINKING_THEN_TOOL, "signature_delta"
    )


def _like_anthropic(second_turn: Reply) -> Responder:
    """An upstream that checks a tool-result turn as the real Messages API does.

    With thinking on, the assistant turn that called the tool must start with the
    thinking block exactly as it was signed; otherwise Anthropic answers 400.
    """
    thinking, signature = _recorded_block()

    def respond(request: RecordedRequest) -> Reply:
        messages = request.json()["messages"]
        if len(messages) == 1:
            return Reply.fixture(THINKING_THEN_TOOL)
        assistant = messages[1]["content"]
        first = assistant[0] if isinstance(assistant, list) and assistant else {}
        if first != {"type": "thinking", "thinking": thinking, "signature": signature}:
            return Reply.json(
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "messages.1.content.0.type: Expected `thinking` or "
                        "`redacted_thinking`, but found `tool_use`. When `thinking` is enabled, "
                        "a final `assistant` message must start with a thinking block.",
                    },
                },
                status=400,
            )
        (use,) = [b for b in assistant if b["type"] == "tool_use"]
        (result,) = messages[2]["content"]
        assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
        return second_turn

    return respond


def _first_turn_streamed(client: Any) -> dict[str, Any]:
    """The assistant message an OpenAI client rebuilds from the stream, extension included."""
    with client.chat.completions.stream(
        model="ant/claude-haiku-4-5",
        messages=USER,
        tools=VERSION_TOOL,
        reasoning_effort="low",
    ) as stream:
        completion = stream.get_final_completion()
    return completion.choices[0].message.model_dump(exclude_none=True, exclude={"parsed"})


@pytest.mark.parametrize("streamed", [False, True])
def test_an_openai_client_hands_signed_thinking_back_to_an_anthropic_model(
    gateway: Gateway, upstream: FakeUpstream, streamed: bool
) -> None:
    second = Reply.fixture(
        "anthropic/messages-stream-text.sse" if streamed else "anthropic/message-text.json"
    )
    upstream.route("POST", "/v1/messages", _like_anthropic(second))
    client = gateway.openai()
    if streamed:
        assistant = _first_turn_streamed(client)
    else:
        first = client.chat.completions.create(
            model="ant/claude-haiku-4-5",
            messages=USER,  # type: ignore[arg-type]
            tools=VERSION_TOOL,  # type: ignore[arg-type]
            reasoning_effort="low",
        )
        assistant = first.choices[0].message.model_dump(exclude_none=True)
    thinking, signature = _recorded_block()
    blocks = [{k: v for k, v in b.items() if k != "index"} for b in assistant["thinking_blocks"]]
    assert blocks == [{"type": "thinking", "thinking": thinking, "signature": signature}]
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "fixed_version"
    # The second turn: the assistant message as the SDK gave it, then the tool's result.
    messages = [*USER, assistant, {"role": "tool", "tool_call_id": call["id"], "content": "1.2.3"}]
    if streamed:
        answer = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="ant/claude-haiku-4-5",
                messages=messages,  # type: ignore[arg-type]
                tools=VERSION_TOOL,  # type: ignore[arg-type]
                reasoning_effort="low",
                stream=True,
            )
            if c.choices
        )
    else:
        answer = (
            client.chat.completions.create(
                model="ant/claude-haiku-4-5",
                messages=messages,  # type: ignore[arg-type]
                tools=VERSION_TOOL,  # type: ignore[arg-type]
                reasoning_effort="low",
            )
            .choices[0]
            .message.content
            or ""
        )
    assert answer  # the upstream accepted the turn
    assert len(upstream.requests) == 2
    sent = upstream.requests[1].json()["messages"][1]["content"]
    assert [b["type"] for b in sent] == ["thinking", "tool_use"]


def test_a_turn_without_the_signed_block_is_refused_as_anthropic_would(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # The check above can fail: an assistant turn handed back with only reasoning_content.
    upstream.route(
        "POST", "/v1/messages", _like_anthropic(Reply.fixture("anthropic/message-text.json"))
    )
    thinking, _ = _recorded_block()
    assistant = {
        "role": "assistant",
        "reasoning_content": thinking,
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "fixed_version", "arguments": "{}"},
            }
        ],
    }
    messages = [*USER, assistant, {"role": "tool", "tool_call_id": "toolu_1", "content": "1.2.3"}]
    with pytest.raises(openai.BadRequestError, match="must start with a thinking block"):
        gateway.openai().chat.completions.create(
            model="ant/claude-haiku-4-5",
            messages=messages,  # type: ignore[arg-type]
            tools=VERSION_TOOL,  # type: ignore[arg-type]
        )
