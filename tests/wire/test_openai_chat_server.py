"""The gateway side of Chat Completions: requests in, chunks and errors out."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from modelport.errors import (
    AuthError,
    ConfigError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    ParseError,
    PluginError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    ModelInfo,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)
from modelport.wire.openai_chat_server import (
    StreamEncoder,
    encode_error,
    encode_models,
    encode_response,
    parse_messages,
    parse_request,
    parse_tool_choice,
    parse_tools,
)
from tests._fixtures import FIXTURES

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}

# --- parse_request -------------------------------------------------------------------


def realistic_body() -> dict[str, Any]:
    return {
        "model": "local/llama3.1:8b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "name": "ada",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/sky.jpg"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/AAAA", "detail": "low"},
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
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "-3"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21"}]},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather",
                    "parameters": SCHEMA,
                    "strict": True,
                },
            },
            {"name": "flat", "description": "Flat form"},
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "temperature": 0.3,
        "top_p": 1,
        "max_completion_tokens": 500,
        "stop": "STOP",
        "reasoning_effort": "medium",
        "response_format": {"type": "json_object"},
        "metadata": {"run": "7"},
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 42,
        "user": "user-1",
        "n": 1,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "logprobs": True,
        "top_logprobs": 2,
        "parallel_tool_calls": False,
        "service_tier": "auto",
        "store": False,
    }


def test_parse_realistic_request() -> None:
    request = parse_request(json.dumps(realistic_body()).encode())
    assert request == ChatRequest(
        model="local/llama3.1:8b",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="system", content=[TextPart(text="Use metric units.")]),
            Message(
                role="user",
                name="ada",
                content=[
                    TextPart(text="Weather here?"),
                    ImagePart(url="https://x.test/sky.jpg"),
                    ImagePart(data="/9j/AAAA", media_type="image/jpeg"),
                ],
            ),
            Message(
                role="assistant",
                content="",
                tool_calls=[
                    ToolCall(id="call_1", name="weather", arguments='{"city":"Oslo"}'),
                    ToolCall(id="call_2", name="weather", arguments='{"city":"Rome"}'),
                ],
            ),
            Message(role="tool", tool_call_id="call_1", content="-3"),
            Message(role="tool", tool_call_id="call_2", content=[TextPart(text="21")]),
        ],
        tools=[
            ToolDefinition(name="weather", description="Weather", parameters=SCHEMA, strict=True),
            ToolDefinition(name="flat", description="Flat form"),
        ],
        tool_choice=ToolChoice.tool("weather"),
        temperature=0.3,
        top_p=1.0,
        max_tokens=500,
        stop=["STOP"],
        response_format={"type": "json_object"},
        reasoning=Reasoning(effort="medium"),
        metadata={"run": "7"},
        vendor={
            "openai": {
                "max_completion_tokens": 500,
                "seed": 42,
                "user": "user-1",
                "n": 1,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "logit_bias": {"50256": -100},
                "logprobs": True,
                "top_logprobs": 2,
                "parallel_tool_calls": False,
                "service_tier": "auto",
                "store": False,
            }
        },
    )


def test_parse_accepts_a_dict_and_str_alike() -> None:
    body = realistic_body()
    assert parse_request(body) == parse_request(json.dumps(body))


def test_assistant_reasoning_becomes_a_thinking_part_and_refusal_text() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "assistant", "content": "Paris.", "reasoning_content": "Capital..."},
                {"role": "assistant", "content": None, "refusal": "I can't."},
            ],
        }
    )
    assert request.messages == [
        Message(
            role="assistant", content=[ThinkingPart(text="Capital..."), TextPart(text="Paris.")]
        ),
        Message(role="assistant", content="I can't."),
    ]


def test_thinking_blocks_handed_back_become_the_leading_parts() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "Let me look.",  # the same text: not sent twice
                    "thinking_blocks": [
                        {
                            "index": 0,
                            "type": "thinking",
                            "thinking": "Let me look.",
                            "signature": "S",
                        },
                        {"type": "redacted_thinking", "data": "R"},
                    ],
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                }
            ],
        }
    )
    assert request.messages == [
        Message(
            role="assistant",
            content=[
                ThinkingPart(text="Let me look.", signature="S"),
                RedactedThinkingPart(data="R"),
            ],
            tool_calls=[ToolCall(id="t1", name="f", arguments="{}")],
        )
    ]


def test_only_signed_and_redacted_blocks_are_returned_on_an_answer() -> None:
    response = ChatResponse(
        content="Hi",
        reasoning="unsigned signed",
        thinking=[
            ThinkingPart(text="unsigned"),
            ThinkingPart(text="signed", signature="S"),
            RedactedThinkingPart(data="R"),
        ],
        model="a/m",
        id="x",
    )
    message = json.loads(encode_response(response))["choices"][0]["message"]
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "signed", "signature": "S"},
        {"type": "redacted_thinking", "data": "R"},
    ]
    plain = ChatResponse(
        content="Hi", reasoning="r", thinking=[ThinkingPart(text="r")], model="a/m", id="y"
    )
    assert "thinking_blocks" not in json.loads(encode_response(plain))["choices"][0]["message"]


def test_a_stream_sends_each_signed_block_whole_as_it_closes() -> None:
    from openai.lib.streaming._deltas import accumulate_delta

    encoder = StreamEncoder(model="a/m", id="c")
    events: list[StreamEvent] = [
        ReasoningEvent(text="Let "),
        ReasoningEvent(text="me look."),
        ReasoningEvent(signature="S1"),
        ReasoningEvent(text="never signed"),
        ReasoningEvent(redacted="R"),
        ReasoningEvent(text="again", signature="S2"),
        TextEvent(text="Hi"),
        FinishEvent(reason="stop"),
    ]
    body = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    chunks = [
        json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: {")
    ]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    # What the OpenAI SDK's stream helper assembles from the deltas.
    message: dict[str, Any] = {}
    for chunk in chunks:
        accumulate_delta(message, chunk["choices"][0]["delta"])
    assert message["reasoning_content"] == "Let me look.never signedagain"
    assert message["thinking_blocks"] == [
        {"index": 0, "type": "thinking", "thinking": "Let me look.", "signature": "S1"},
        {"index": 1, "type": "redacted_thinking", "data": "R"},
        {"index": 2, "type": "thinking", "thinking": "again", "signature": "S2"},
    ]
    assert message["content"] == "Hi"


def test_legacy_functions() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "function", "name": "f", "content": "done"},
            ],
            "functions": [{"name": "f", "parameters": SCHEMA}],
            "function_call": {"name": "f"},
        }
    )
    assert request.messages == [
        Message(role="assistant", tool_calls=[ToolCall(id="call_f", name="f", arguments="{}")]),
        Message(role="tool", tool_call_id="call_f", name="f", content="done"),
    ]
    assert request.tools == [ToolDefinition(name="f", parameters=SCHEMA)]
    assert request.tool_choice == ToolChoice.tool("f")


@pytest.mark.parametrize(
    ("fields", "reasoning", "vendor"),
    [
        ({"reasoning_effort": "high"}, Reasoning(effort="high"), {}),
        ({"reasoning_effort": "xhigh"}, None, {"reasoning_effort": "xhigh"}),
        ({"reasoning_effort": "none"}, None, {"reasoning_effort": "none"}),
        ({"reasoning": {"effort": "low"}}, Reasoning(effort="low"), {}),
        ({"reasoning": {"max_tokens": 2000}}, Reasoning(budget_tokens=2000), {}),
        ({"reasoning": {"enabled": True}}, None, {"reasoning": {"enabled": True}}),
    ],
)
def test_reasoning_forms(fields: dict[str, Any], reasoning: Reasoning | None, vendor: dict) -> None:
    request = parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    )
    assert request.reasoning == reasoning
    assert request.vendor.get("openai", {}) == vendor


def test_max_tokens_and_stop_list() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 9,
            "stop": ["a", "b"],
        }
    )
    assert (request.max_tokens, request.stop, request.vendor) == (9, ["a", "b"], {})


_ONE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "missing required field `model`"),
        ({"model": "m"}, "missing required field `messages`"),
        ({"model": "m", "messages": []}, "at least one message"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "at `$.model`"),
        ({"model": "m", "messages": "hi"}, "at `$.messages`"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "'robot'"),
        ({"model": "m", "messages": [{"role": "user"}]}, "`content` - at `$.messages[0]`"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "`tool_call_id`"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "'input_audio' - at `$.messages[0].content[0].type`",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            "at `$.temperature`",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "any"},
            "tool_choice must be one of",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function"}],
            },
            "needs a function name",
        ),
        # Numbers out of range and overlong names stop at the edge, naming the field.
        ({**_ONE, "max_tokens": 10**400}, "<= 2147483647 - at `$.max_tokens`"),
        ({**_ONE, "max_completion_tokens": 0}, ">= 1 - at `$.max_completion_tokens`"),
        ({**_ONE, "reasoning": {"max_tokens": 1e300}}, "at `$.reasoning.max_tokens`"),
        ({**_ONE, "temperature": 1e300}, "<= 2.0 - at `$.temperature`"),
        ({**_ONE, "top_p": 1.5}, "at `$.top_p`"),
        ({**_ONE, "seed": 10**30}, "at `$.seed`"),
        ({**_ONE, "n": 10**6}, "at `$.n`"),
        ({**_ONE, "presence_penalty": -3}, "at `$.presence_penalty`"),
        ({**_ONE, "model": "x" * 5_000_000}, "length <= 256 - at `$.model`"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request(body)
    assert message in caught.value.message


def test_a_refused_name_is_not_echoed() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request({**_ONE, "model": "x" * 5_000_000})
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", "null", 5, None])
def test_bodies_that_are_not_objects(body: Any) -> None:
    with pytest.raises(InvalidRequestError):
        parse_request(body)


OPENAI_REQUEST_FIXTURES = sorted(
    str(path.relative_to(FIXTURES))
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible", "vllm")
    for path in (FIXTURES / folder).glob("*.request.json")
    if "messages" in json.loads(path.read_text())
) + sorted(
    str(path.relative_to(FIXTURES)) for path in (FIXTURES / "ollama").glob("v1-*.request.json")
)


def test_request_fixtures_found() -> None:
    assert len(OPENAI_REQUEST_FIXTURES) == 23


@pytest.mark.parametrize("relative", OPENAI_REQUEST_FIXTURES)
def test_request_fixtures_parse(relative: str) -> None:
    raw = json.loads((FIXTURES / relative).read_text())
    request = parse_request((FIXTURES / relative).read_bytes())
    assert request.model == raw["model"]
    assert len(request.messages) == len(raw["messages"])
    assert [m.role for m in request.messages] == [
        "system" if m["role"] == "developer" else m["role"] for m in raw["messages"]
    ]
    assert [t.name for t in request.tools] == [t["function"]["name"] for t in raw.get("tools", [])]
    for message, original in zip(request.messages, raw["messages"], strict=True):
        assert [c.id for c in message.tool_calls] == [
            c["id"] for c in original.get("tool_calls", [])
        ]


def test_parse_tools_both_forms_and_parse_tool_choice() -> None:
    tools = parse_tools(
        [
            {"type": "function", "function": {"name": "a", "parameters": SCHEMA}},
            {"name": "b", "description": "B"},
            ToolDefinition(name="c"),
        ]
    )
    assert tools == [
        ToolDefinition(name="a", parameters=SCHEMA),
        ToolDefinition(name="b", description="B"),
        ToolDefinition(name="c"),
    ]
    assert parse_tool_choice("required") == ToolChoice(mode="required")
    assert parse_tool_choice({"type": "function", "function": {"name": "a"}}) == ToolChoice.tool(
        "a"
    )
    assert parse_tool_choice(None) is None
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        parse_tool_choice(7)
    with pytest.raises(InvalidRequestError, match=r"tools\[0\]"):
        parse_tools([{"name": 5}])


def test_parse_tools_reads_strict_in_either_form() -> None:
    tools = parse_tools(
        [
            {"type": "function", "function": {"name": "a", "parameters": SCHEMA, "strict": True}},
            {"type": "function", "function": {"name": "b", "strict": False}},
            {"name": "c", "strict": True},
            {"type": "function", "function": {"name": "d"}},
        ]
    )
    assert [(tool.name, tool.strict) for tool in tools] == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("d", None),
    ]
    assert tools[0].parameters == SCHEMA
    with pytest.raises(InvalidRequestError, match=r"tools\[1\]"):
        parse_tools(
            [{"name": "ok"}, {"type": "function", "function": {"name": "x", "strict": "yes"}}]
        )


def test_parse_messages_keeps_messages_and_names_the_bad_one() -> None:
    kept = Message(role="user", content="hi")
    assert parse_messages([kept, {"role": "user", "content": "yo"}]) == [
        kept,
        Message(role="user", content="yo"),
    ]
    with pytest.raises(InvalidRequestError, match=r"messages\[1\]"):
        parse_messages([kept, {"role": "user", "content": 5}])


# --- StreamEncoder -------------------------------------------------------------------


def frames(data: bytes) -> list[str]:
    assert data.endswith(b"\n\n")
    parts = data.decode().split("\n\n")[:-1]
    assert all(p.startswith("data: ") for p in parts)
    return [p[len("data: ") :] for p in parts]


def encode_all(events: list[StreamEvent], **options: Any) -> bytes:
    encoder = StreamEncoder(model="gpt-x", id="chatcmpl-1", created=123, **options)
    return encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()


def test_stream_golden_bytes() -> None:
    data = encode_all([TextEvent(text="Hi"), FinishEvent(reason="stop")])
    head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":123,"model":"gpt-x"'
    assert frames(data) == [
        head + ',"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},'
        '"finish_reason":null}]}',
        head + ',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        "[DONE]",
    ]


EVENTS: list[StreamEvent] = [
    ReasoningEvent(text='Let me think "hard" — ünïcode\n'),
    ReasoningEvent(text="", signature="sig"),
    ReasoningEvent(redacted="opaque"),
    TextEvent(text=""),
    TextEvent(text="Calling </script> tools"),
    ToolCallStartEvent(index=0, id="call_a", name="weather"),
    ToolCallDeltaEvent(index=0, arguments='{"city":'),
    ToolCallDeltaEvent(index=0, arguments='"Oslo"}'),
    ToolCallStartEvent(index=1, id="call_b", name="time"),
    UsageEvent(input_tokens=10, output_tokens=5, cache_read_tokens=4, reasoning_tokens=2),
    FinishEvent(reason="tool_calls"),
]


def test_every_chunk_validates_against_the_sdk() -> None:
    data = encode_all(EVENTS, include_usage=True)
    chunks = [ChatCompletionChunk.model_validate_json(f) for f in frames(data)[:-1]]
    assert frames(data)[-1] == "[DONE]"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.model_extra == {
        "reasoning_content": 'Let me think "hard" — ünïcode\n'
    }
    # The signed block whole as it closes, then the redacted one, for the client to hand back.
    assert chunks[1].choices[0].delta.model_extra == {
        "thinking_blocks": [
            {
                "type": "thinking",
                "thinking": 'Let me think "hard" — ünïcode\n',
                "signature": "sig",
                "index": 0,
            }
        ]
    }
    assert chunks[2].choices[0].delta.model_extra == {
        "thinking_blocks": [{"type": "redacted_thinking", "data": "opaque", "index": 1}]
    }
    assert chunks[3].choices[0].delta.content == "Calling </script> tools"
    start = chunks[4].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (start.index, start.id, start.type, start.function.name) == (
        0,
        "call_a",
        "function",
        "weather",
    )  # type: ignore[union-attr]
    assert chunks[6].choices[0].delta.tool_calls[0].function.arguments == '"Oslo"}'  # type: ignore[index, union-attr]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 5, 15)
    assert usage.prompt_tokens_details.cached_tokens == 4  # type: ignore[union-attr]
    assert usage.completion_tokens_details.reasoning_tokens == 2  # type: ignore[union-attr]
    assert {c.id for c in chunks} == {"chatcmpl-1"}


def test_the_official_client_reads_the_stream() -> None:
    data = encode_all(EVENTS, include_usage=True)
    client = _client(lambda request: httpx.Response(200, content=data, headers=_SSE))
    stream = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Calling </script> tools"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


def test_the_official_client_raises_on_the_error_frame() -> None:
    encoder = StreamEncoder(model="gpt-x")
    data = encoder.encode(TextEvent(text="partial")) + encoder.error(
        NetworkError("The upstream closed the stream before it finished", connection="local")
    )
    client = _client(lambda request: httpx.Response(200, content=data, headers=_SSE))
    stream = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="closed the stream before it finished"):
        list(stream)


def test_usage_is_not_sent_unless_asked_and_zero_when_unknown() -> None:
    assert all('"usage"' not in f for f in frames(encode_all(EVENTS)))
    last = json.loads(frames(encode_all([TextEvent(text="a")], include_usage=True))[-2])
    assert last["usage"]["total_tokens"] == 0


def test_finish_is_made_up_when_the_provider_sent_none() -> None:
    assert (
        json.loads(frames(encode_all([TextEvent(text="a")]))[-2])["choices"][0]["finish_reason"]
        == "stop"
    )
    made_up = frames(encode_all([ToolCallStartEvent(index=0, id="c", name="f")]))[-2]
    assert json.loads(made_up)["choices"][0]["finish_reason"] == "tool_calls"


def test_an_empty_stream_still_announces_the_assistant() -> None:
    only = frames(encode_all([]))
    assert json.loads(only[0])["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant"},
        "finish_reason": "stop",
    }
    ChatCompletionChunk.model_validate_json(only[0])


def test_refusal_is_sent_as_stop_and_a_second_finish_is_dropped() -> None:
    encoder = StreamEncoder(model="m")
    first = encoder.encode(FinishEvent(reason="refusal"))
    assert json.loads(frames(first)[0])["choices"][0]["finish_reason"] == "stop"
    assert encoder.encode(FinishEvent(reason="stop")) == b""
    assert encoder.finish() == b"data: [DONE]\n\n"


def test_ids_are_generated_and_model_is_escaped() -> None:
    encoder = StreamEncoder(model='we"ird')
    chunk = json.loads(frames(encoder.encode(TextEvent(text="a")))[0])
    assert chunk["id"].startswith("chatcmpl-") and chunk["model"] == 'we"ird'
    assert encoder.start() == b""


def test_error_frame() -> None:
    data = StreamEncoder(model="m").error(RateLimitError("Slow down", retry_after=3))
    assert data == (
        b'data: {"error":{"message":"Slow down","type":"rate_limit_error","param":null,'
        b'"code":"rate_limit_exceeded"}}\n\n'
    )


# --- encode_response -----------------------------------------------------------------


def test_encode_response_validates_and_carries_everything() -> None:
    response = ChatResponse(
        id="resp_1",
        model="gpt-x",
        content="",
        reasoning="thought",
        tool_calls=[ToolCall(id="c1", name="f", arguments='{"a":1}')],
        usage=Usage(input_tokens=7, output_tokens=3, cache_read_tokens=1, reasoning_tokens=2),
        finish_reason="tool_calls",
    )
    completion = ChatCompletion.model_validate_json(encode_response(response))
    message = completion.choices[0].message
    assert completion.id == "resp_1" and completion.object == "chat.completion"
    assert message.content is None
    assert message.model_extra == {"reasoning_content": "thought"}
    assert message.tool_calls[0].function.arguments == '{"a":1}'  # type: ignore[index, union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"
    usage = completion.usage
    assert usage is not None and usage.total_tokens == 10
    assert usage.prompt_tokens_details.cached_tokens == 1  # type: ignore[union-attr]
    assert usage.completion_tokens_details.reasoning_tokens == 2  # type: ignore[union-attr]


def test_encode_response_text_and_refusal() -> None:
    plain = json.loads(encode_response(ChatResponse(id="r", model="m", content="Hi")))
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": "Hi", "refusal": None}
    assert plain["choices"][0]["finish_reason"] == "stop"
    refused = ChatCompletion.model_validate_json(
        encode_response(ChatResponse(id="r", model="m", content="No.", finish_reason="refusal"))
    )
    assert refused.choices[0].message.refusal == "No."
    assert refused.choices[0].message.content is None
    assert refused.choices[0].finish_reason == "stop"


# --- encode_error --------------------------------------------------------------------

_SSE = {"content-type": "text/event-stream"}


def _client(handler: Any) -> openai.OpenAI:
    transport = httpx.MockTransport(handler)
    return openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )


@pytest.mark.parametrize(
    ("error", "status", "kind", "code", "sdk_class"),
    [
        (
            AuthError("Bad key"),
            401,
            "authentication_error",
            "invalid_api_key",
            openai.AuthenticationError,
        ),
        (
            RateLimitError("Slow", retry_after=1.5),
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            openai.RateLimitError,
        ),
        (
            ContextTooLongError("Too long", limit=8192, actual=9000),
            400,
            "invalid_request_error",
            "context_length_exceeded",
            openai.BadRequestError,
        ),
        (InvalidRequestError("Bad"), 400, "invalid_request_error", None, openai.BadRequestError),
        (
            ModelNotFoundError("No model"),
            404,
            "invalid_request_error",
            "model_not_found",
            openai.NotFoundError,
        ),
        (
            UpstreamError("Conflict", status=409),
            409,
            "invalid_request_error",
            "upstream_error",
            openai.ConflictError,
        ),
        (
            UpstreamError("Overloaded", status=529),
            529,
            "server_error",
            "upstream_error",
            openai.InternalServerError,
        ),
        (
            UpstreamError("Odd", status=302),
            502,
            "server_error",
            "upstream_error",
            openai.InternalServerError,
        ),
        (UpstreamError("None"), 502, "server_error", "upstream_error", openai.InternalServerError),
        (
            NetworkError("Refused"),
            502,
            "server_error",
            "upstream_unreachable",
            openai.InternalServerError,
        ),
        (
            ParseError("Garbled"),
            502,
            "server_error",
            "upstream_bad_response",
            openai.InternalServerError,
        ),
        (
            PluginError("Crashed", plugin="p"),
            502,
            "server_error",
            "plugin_error",
            openai.InternalServerError,
        ),
        (
            ConfigError("Broken config"),
            500,
            "server_error",
            "config_error",
            openai.InternalServerError,
        ),
        (ModelportError("Base"), 500, "server_error", None, openai.InternalServerError),
    ],
)
def test_encode_error_maps_to_the_sdk_exception(
    error: ModelportError, status: int, kind: str, code: str | None, sdk_class: type[Exception]
) -> None:
    got_status, body, headers = encode_error(error)
    assert got_status == status
    detail = json.loads(body)["error"]
    assert (detail["type"], detail["code"]) == (kind, code)
    assert detail["message"].startswith(error.message)
    client = _client(lambda request: httpx.Response(status, content=body, headers=headers))
    with pytest.raises(sdk_class) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert error.message in str(caught.value)


def test_retry_after_headers() -> None:
    _, _, headers = encode_error(RateLimitError("Slow", retry_after=1.5))
    assert headers == {"retry-after": "2", "retry-after-ms": "1500"}
    assert encode_error(RateLimitError("Slow"))[2] == {}


def test_context_error_names_the_limit() -> None:
    _, body, _ = encode_error(ContextTooLongError("Prompt too long", limit=8192, actual=9000))
    assert json.loads(body)["error"]["message"] == (
        "Prompt too long (this model's maximum context length is 8192 tokens, "
        "but the request has 9000 tokens)"
    )
    _, body, _ = encode_error(ContextTooLongError("Limit is 8192 tokens", limit=8192))
    assert json.loads(body)["error"]["message"] == "Limit is 8192 tokens"


def test_no_secret_from_a_url_reaches_the_body() -> None:
    error = AuthError(
        "Bad key",
        connection="gemini",
        model="g-1",
        url="https://user:hunter2@api.test:8443/v1/models?key=SECRET#frag",
        body='{"key": "SECRET"}',
    )
    _, body, _ = encode_error(error)
    message = json.loads(body)["error"]["message"]
    assert (
        message == "Bad key (connection 'gemini', model 'g-1', url https://api.test:8443/v1/models)"
    )
    assert b"SECRET" not in body and b"hunter2" not in body


def test_null_fields_are_unset() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 100,
            "max_completion_tokens": None,
            "reasoning_effort": None,
            "seed": None,
            "logit_bias": None,
            "temperature": None,
            "user": "u",
        }
    )
    assert request.max_tokens == 100
    assert request.reasoning is None and request.temperature is None
    assert request.vendor == {"openai": {"user": "u"}}


# --- what schemathesis found (tests/server/test_schemathesis.py) ---------------

USER = [{"role": "user", "content": "x"}]


def test_whole_numbers_written_with_a_fraction_are_counts() -> None:
    # JSON Schema (and OpenAI's API) read 64.0 as the integer 64.
    request = parse_request(
        {
            "model": "m",
            "messages": USER,
            "max_completion_tokens": 64.0,
            "reasoning": {"max_tokens": 2e3},
        }
    )
    assert request.max_tokens == 64 and isinstance(request.max_tokens, int)
    assert request.reasoning == Reasoning(budget_tokens=2000)
    assert request.vendor == {"openai": {"max_completion_tokens": 64}}
    with pytest.raises(InvalidRequestError, match=r"whole number - at `\$.max_tokens`"):
        parse_request({"model": "m", "messages": USER, "max_tokens": 1.5})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # The legacy fields are checked even when the current ones take precedence.
        ({"tools": [], "functions": [{"name": ""}]}, "needs a function name"),
        ({"tool_choice": "auto", "function_call": "sometimes"}, "tool_choice must be one of"),
        ({"tools": [{"type": "custom", "function": {"name": "f"}}]}, "at `$.tools[0].type`"),
        ({"tool_choice": {"type": "custom", "name": "f"}}, "at `$.tool_choice.type`"),
        ({"stream": "yes"}, "at `$.stream`"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "include_usage"),
        ({"stream_options": []}, "at `$.stream_options`"),
    ],
)
def test_fields_the_document_constrains_are_checked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request({"model": "m", "messages": USER, **fields})
    assert message in caught.value.message


def test_assistant_tool_calls_must_be_functions() -> None:
    call = {"id": "c", "type": "custom", "function": {"name": "f"}}
    with pytest.raises(InvalidRequestError, match=r"tool_calls\[0\]\.type"):
        parse_request({"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]})


def test_encode_models_is_the_sdk_model_list() -> None:
    models = [
        ModelInfo(id="gpt-4o", connection="openai"),
        ModelInfo(id="meta/llama-3", connection="router", name="Llama 3"),
    ]
    body = json.loads(encode_models(models))
    assert body["object"] == "list"
    listed = [openai.types.Model.model_validate(item, strict=True) for item in body["data"]]
    assert [(m.id, m.owned_by, m.object) for m in listed] == [
        ("openai/gpt-4o", "openai", "model"),
        ("router/meta/llama-3", "router", "model"),
    ]
    assert json.loads(encode_models([])) == {"object": "list", "data": []}
