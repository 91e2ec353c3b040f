"""The recorded OpenAI-compatible traffic decodes to what the files say."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelport.aggregate import aggregate
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    ParseError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import FinishEvent, ReasoningEvent, StreamEvent, UsageEvent
from modelport.types import Capabilities, ChatResponse, ModelInfo, ModelPrices, Usage
from modelport.wire.openai_chat import (
    StreamDecoder,
    decode_completion,
    decode_models,
    decode_response,
    error_from_response,
)
from tests._fixtures import FIXTURES, fixture_bytes


@dataclass(frozen=True)
class Expected:
    content: str
    finish: str
    usage: Usage | None
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    reasoning_start: str = ""
    reasoning_length: int = 0
    signature_start: str | None = None
    #: The answer is long: only its start is written here.
    content_is_prefix: bool = False


def _usage(
    input: int,
    output: int,
    read: int = 0,
    write: int = 0,
    reasoning: int = 0,
    cost: float | None = None,
) -> Usage:
    return Usage(
        input_tokens=input,
        output_tokens=output,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=reasoning,
        cost=cost,
    )


GROK = (
    "I'm Grok, an AI built by xAI. I'm designed to be helpful, maximally truthful, and a bit "
    "witty—think a mix of the Hitchhiker's Guide to the Galaxy and JARVIS from Iron Man. My goal "
    "is to help you understand the universe (and maybe crack a few jokes along the way). What's "
    "on your mind?"
)

STREAMS: dict[str, Expected] = {
    "openai/chat-stream-text-include-usage.sse": Expected(
        content="I'm unable to provide real-time weather updates. To get the current weather in "
        "San Francisco, I recommend checking a reliable weather website or a weather app.",
        finish="stop",
        usage=_usage(14, 30),
    ),
    "openai/chat-stream-content-logprobs.sse": Expected("Foo!", "stop", _usage(9, 2)),
    "openai/chat-stream-finish-length.sse": Expected('{"', "length", _usage(79, 1)),
    # n=3: only choice 0 counts (choices 1 and 2 say 61 and 59 degrees).
    "openai/chat-stream-n3-multiple-choices.sse": Expected(
        '{"city":"San Francisco","temperature":65,"units":"f"}', "stop", _usage(79, 42)
    ),
    "openai/chat-stream-parallel-tool-calls-no-usage.sse": Expected(
        "",
        "tool_calls",
        None,
        calls=[
            ("call_cCPjAyfwTzboEKjVlqFrArNF", "get_current_weather", {"location": "San Francisco"}),
            ("call_Zi4He1Ns0mozwT6f85nW1BOW", "get_current_weather", {"location": "Boston"}),
        ],
    ),
    "openai/chat-stream-parallel-tool-calls-split-args.sse": Expected(
        "",
        "tool_calls",
        _usage(417, 44),
        calls=[
            ("call_NS4iQj14cDFwc0BnrKqDHavt", "get_weather", {"city": "Mexico City"}),
            ("call_SkGkkGDvHQEEk0CGbnAh2AQw", "get_product_name", {}),
        ],
    ),
    "openai/chat-stream-parallel-tool-calls.sse": Expected(
        "",
        "tool_calls",
        _usage(149, 60),
        calls=[
            (
                "call_JMW1whyEaYG438VE1OIflxA2",
                "GetWeatherArgs",
                {"city": "Edinburgh", "country": "GB", "units": "c"},
            ),
            (
                "call_DNYTawLBoN8fj3KN6qU9N1Ou",
                "get_stock_price",
                {"ticker": "AAPL", "exchange": "NASDAQ"},
            ),
        ],
    ),
    "openai/chat-stream-refusal-logprobs.sse": Expected(
        "I'm very sorry, but I can't assist with that.", "refusal", _usage(79, 12)
    ),
    "openai/chat-stream-refusal.sse": Expected(
        "I'm sorry, I can't assist with that request.", "refusal", _usage(79, 11)
    ),
    "openai/chat-stream-single-tool-call.sse": Expected(
        "",
        "tool_calls",
        _usage(44, 16),
        calls=[("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", {"city": "New York City"})],
    ),
    "openai/chat-stream-text-obfuscation.sse": Expected(
        "The capital of the UK is London.", "stop", _usage(78, 9)
    ),
    "openai/chat-stream-tool-call-obfuscation.sse": Expected(
        "",
        "tool_calls",
        _usage(53, 15),
        calls=[("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", {"country": "UK"})],
    ),
    "deepseek/chat-stream-reasoning_content.sse": Expected(
        "Hello there! 😊 How can I help you today?",
        "stop",
        _usage(6, 212, reasoning=198),
        reasoning_start='Hmm, the user just said "Hello". It\'s a simple greeting',
        reasoning_length=882,
    ),
    "openrouter/chat-stream-cached-reasoning-usage.sse": Expected(
        GROK, "stop", _usage(687, 187, read=679, reasoning=118, cost=0.00333825)
    ),
    "openrouter/chat-stream-reasoning.sse": Expected(
        "2 + 2 = 4",
        "stop",
        _usage(43, 36, reasoning=13, cost=0.000669),
        reasoning_start="This is a simple arithmetic question. 2+2 equals 4.",
        reasoning_length=51,
        signature_start="Et0BCkgIChACGAIqQA2s7h7tA7IG35fb",
    ),
    "openai-compatible/groq-chat-stream-reasoning-tool-call.sse": Expected(
        "",
        "tool_calls",
        _usage(304, 49, reasoning=23),
        calls=[
            (
                "fc_bfb39741-3748-4def-9886-a93fc9c64a90",
                "get_something_by_name",
                {"name": "example"},
            )
        ],
        reasoning_start='We need to call the function with correct parameter "name". '
        'Provide a name, e.g., "example".',
        reasoning_length=92,
    ),
    "openai-compatible/zai-chat-stream-reasoning_content.sse": Expected(
        "4",
        "stop",
        _usage(13, 564, reasoning=561),
        reasoning_start="\n1.  **Analyze the User's Request:**",
        reasoning_length=2173,
    ),
}

#: Streams whose decoding ends in an error rather than a response.
FAILING_STREAMS = {"openrouter/chat-stream-midstream-error.sse"}

JSONL_STREAMS: dict[str, Expected] = {
    "deepseek/chat-stream-tool-call-reasoning.jsonl": Expected(
        "",
        "tool_calls",
        _usage(339, 83, read=320, reasoning=39),
        calls=[("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", {"location": "San Francisco"})],
        reasoning_start="The user is asking for the weather in San Francisco.",
    ),
}

COMPLETIONS: dict[str, Expected] = {
    "openai/chat-completion-cached-tokens.json": Expected(
        "1. **Open-Source Library OpenLLMetry Brings LLM Functionality",
        "stop",
        _usage(1149, 353, read=1024),
        content_is_prefix=True,
    ),
    "openai/chat-completion-parallel-tool-calls.json": Expected(
        "",
        "tool_calls",
        _usage(70, 46),
        calls=[
            ("call_3JNWJ9wdfRsmkhKWql4HqJhR", "get_current_weather", {"location": "San Francisco"}),
            ("call_8jQ7TzSBlLV4tzrMRpq5Tg98", "get_current_weather", {"location": "Boston"}),
        ],
    ),
    "openai/chat-completion-reasoning-tokens.json": Expected(
        "3\n\nThere are three 'r' letters in \"strawberry\"",
        "stop",
        _usage(11, 228, reasoning=192),
        content_is_prefix=True,
    ),
    "openai/chat-completion-refusal.json": Expected(
        "I'm very sorry, but I can't assist with that request.", "refusal", _usage(65, 13)
    ),
    "openai/chat-completion-tool-call-reasoning.sorted.json": Expected(
        "",
        "tool_calls",
        _usage(130, 87, reasoning=64),
        calls=[("call_injwxidE5XUzmiKVfOH3rxf2", "get_weather", {"city": "Paris"})],
    ),
    "openai/chat-completion-tool-call.json": Expected(
        "",
        "tool_calls",
        _usage(92, 17),
        calls=[("call_TTY8UFNo7rNCaOBUNtlRSvMG", "lookup_population", {"country": "Crumpet"})],
    ),
    "deepseek/chat-completion-tool-call-reasoning.sorted.json": Expected(
        "Let me load the dice rolling capability!",
        "tool_calls",
        _usage(563, 116, read=512, reasoning=60),
        calls=[("call_00_sXqYgMESDht75NCLLZtt9804", "load_capability", {"id": "DICE_ROLL"})],
        reasoning_start="The user wants to play a dice game.",
    ),
    "vllm/chat-completion.json": Expected(
        "Your question was very interesting <|im_end|>\n<|im_end|>", "length", _usage(57, 20)
    ),
    "ollama/v1-chat-completion-local.sorted.json": Expected(
        '{ "city": "Paris", "country": "France" }',
        "stop",
        _usage(136, 15),
        reasoning_start="Okay, the user is asking for the capital of France.",
    ),
    "ollama/v1-chat-completion-tool-call-cloud.sorted.json": Expected(
        "",
        "tool_calls",
        _usage(206, 194),
        calls=[("call_o2vnpxrw", "final_result", {"city": "Paris", "country": "France"})],
        reasoning_start='The conversation: user asked "What is the capital of France?"',
    ),
}


def decode_stream(data: bytes) -> list[StreamEvent]:
    decoder = StreamDecoder()
    return decoder.feed(data) + decoder.close()


def decode_jsonl(relative: str) -> list[StreamEvent]:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for line in fixture_bytes(relative).splitlines():
        if line.strip():
            events += decoder.feed_json(json.loads(line))
    return events + decoder.end()


def check(response: ChatResponse, events: list[StreamEvent], expected: Expected) -> None:
    if expected.content_is_prefix:
        assert response.content.startswith(expected.content)
        assert len(response.content) > len(expected.content)
    else:
        assert response.content == expected.content
    assert response.finish_reason == expected.finish
    assert [event for event in events if isinstance(event, FinishEvent)] == [
        FinishEvent(reason=expected.finish)  # type: ignore[arg-type]
    ]
    usages = [event for event in events if isinstance(event, UsageEvent)]
    if expected.usage is None:
        assert usages == []
    else:
        assert response.usage == expected.usage
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == expected.calls
    assert response.reasoning.startswith(expected.reasoning_start)
    if expected.reasoning_length:
        assert len(response.reasoning) == expected.reasoning_length
    if not expected.reasoning_start:
        assert response.reasoning == ""
    if expected.signature_start is not None:
        assert response.thinking[-1].signature.startswith(expected.signature_start)  # type: ignore[union-attr]


@pytest.mark.parametrize("relative", sorted(STREAMS))
def test_stream_fixture(relative: str) -> None:
    events = decode_stream(fixture_bytes(relative))
    check(aggregate(events, model="m"), events, STREAMS[relative])


@pytest.mark.parametrize("relative", sorted(JSONL_STREAMS))
def test_jsonl_fixture_through_feed_json(relative: str) -> None:
    events = decode_jsonl(relative)
    check(aggregate(events, model="m"), events, JSONL_STREAMS[relative])


@pytest.mark.parametrize("relative", sorted(JSONL_STREAMS))
def test_jsonl_fixture_rewrapped_as_sse(relative: str) -> None:
    lines = [line for line in fixture_bytes(relative).splitlines() if line.strip()]
    body = b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"
    assert decode_stream(body) == decode_jsonl(relative)


@pytest.mark.parametrize("relative", sorted(COMPLETIONS))
def test_completion_fixture(relative: str) -> None:
    body = fixture_bytes(relative)
    events = decode_response(body)
    check(aggregate(events, model="m"), events, COMPLETIONS[relative])
    assert decode_completion(json.loads(body)) == events


def test_openrouter_midstream_error_raises_after_the_events_before_it() -> None:
    decoder = StreamDecoder()
    body = fixture_bytes("openrouter/chat-stream-midstream-error.sse")
    events = decoder.feed(body)
    assert events == [
        ReasoningEvent(text="We need"),
        ReasoningEvent(text=" to respond to a greeting. The user"),
        FinishEvent(reason="length"),
    ]
    with pytest.raises(InvalidRequestError) as caught:
        decoder.close()
    assert caught.value.message == "Token limit reached"
    assert caught.value.status == 400


def test_vllm_legacy_completion_is_not_a_chat_completion() -> None:
    # vllm/completion.json answers the legacy /v1/completions API (choices[].text).
    with pytest.raises(ParseError, match="legacy /completions"):
        decode_response(fixture_bytes("vllm/completion.json"))


def _openai_compatible_fixtures() -> set[str]:
    found: set[Path] = set()
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible"):
        found |= {p for p in (FIXTURES / folder).glob("*.sse")}
        found |= {p for p in (FIXTURES / folder).glob("*.jsonl")}
        found |= {p for p in (FIXTURES / folder).glob("chat-completion*.json")}
    found |= set((FIXTURES / "ollama").glob("v1-*.json"))
    found |= {FIXTURES / "vllm" / "chat-completion.json"}
    return {
        str(p.relative_to(FIXTURES))
        for p in found
        if not p.name.startswith("responses-") and not p.name.endswith(".request.json")
    }


def test_every_openai_compatible_fixture_is_covered() -> None:
    covered = set(STREAMS) | set(JSONL_STREAMS) | set(COMPLETIONS) | FAILING_STREAMS
    assert _openai_compatible_fixtures() == covered


# --- error bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "status", "cls", "message"),
    [
        (
            "openai/error-400-invalid_value.sorted.json",
            400,
            InvalidRequestError,
            "Invalid 'messages[3]'. Content blocks are expected to be either text or image_url "
            "type.",
        ),
        (
            "openai/error-400-unsupported_parameter.json",
            400,
            InvalidRequestError,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
        ),
        (
            "openai/error-400-unsupported_value.sorted.json",
            400,
            InvalidRequestError,
            "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        ),
        (
            "openai/error-404-model_not_found.sorted.json",
            404,
            ModelNotFoundError,
            "The model `gpt-5.2-proo` does not exist or you do not have access to it.",
        ),
    ],
)
def test_error_fixture(relative: str, status: int, cls: type[ModelportError], message: str) -> None:
    body = fixture_bytes(relative)
    error = error_from_response(status, body, {})
    assert type(error) is cls
    assert error.message == message
    assert error.status == status
    assert error.body is not None and message[:40] in error.body


def test_openrouter_rate_limit_names_the_real_cause_and_honours_retry_after() -> None:
    body = fixture_bytes("openrouter/error-429-upstream-rate-limit.sorted.json")
    error = error_from_response(429, body, {"Retry-After": "7"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    assert error.message.startswith("Provider returned error (Google: google/gemini-2.0-flash")
    assert "temporarily rate-limited upstream" in error.message


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            404,
            b'{"error":"model \\"llama9\\" not found, try pulling it first"}',
            ModelNotFoundError,
            'model "llama9" not found, try pulling it first',
        ),
        (
            400,
            b'{"object":"error","message":"This model\'s maximum context length is 2048 tokens. '
            b'However, you requested 3000 tokens.","type":"BadRequestError","code":400}',
            ContextTooLongError,
            None,
        ),
        (
            400,
            b'{"error":{"message":"too long","type":"invalid_request_error",'
            b'"code":"context_length_exceeded","param":"messages"}}',
            ContextTooLongError,
            "too long",
        ),
        (
            401,
            b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error",'
            b'"code":"invalid_api_key","param":null}}',
            AuthError,
            None,
        ),
        (422, b'{"detail":"field required"}', InvalidRequestError, "field required"),
        (
            502,
            b"<html><body>Bad gateway</body></html>",
            UpstreamError,
            "The upstream answered HTTP 502: an HTML page (Bad gateway)",
        ),
        (
            502,
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>b{}</style>"
            b"</head><body><h1>502 Bad Gateway</h1></body></html>",
            UpstreamError,
            "The upstream answered HTTP 502: an HTML page (502 Bad Gateway)",
        ),
        (503, b"", UpstreamError, "The upstream answered HTTP 503 with an empty body"),
        (500, b'{"error": 5}', UpstreamError, 'The upstream answered HTTP 500: {"error": 5}'),
        (500, b"[1, 2]", UpstreamError, "The upstream answered HTTP 500: [1, 2]"),
    ],
)
def test_error_body_shapes(
    status: int, body: bytes, cls: type[ModelportError], message: str | None
) -> None:
    error = error_from_response(status, body, {})
    assert type(error) is cls
    assert error.status == status
    if message is not None:
        assert error.message == message


def test_context_error_from_vllm_carries_the_numbers() -> None:
    body = (
        b'{"object":"error","message":"This model\'s maximum context length is 2048 tokens. '
        b'However, you requested 3000 tokens.","type":"BadRequestError","code":400}'
    )
    error = error_from_response(400, body, {})
    assert isinstance(error, ContextTooLongError)
    assert (error.limit, error.actual) == (2048, 3000)


def test_auth_error_says_what_to_do() -> None:
    error = error_from_response(401, b'{"error":{"message":"Incorrect API key provided"}}', {})
    assert isinstance(error, AuthError)
    assert "modelport keys set" in error.message


# --- models ------------------------------------------------------------------


def test_plain_model_list() -> None:
    body = (
        b'{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"system"},'
        b'{"id":"llama3.1:8b","object":"model","created":2,"owned_by":"library"}]}'
    )
    models = decode_models(body, "local")
    assert [m.address for m in models] == ["local/gpt-4o", "local/llama3.1:8b"]
    assert models[0] == ModelInfo(id="gpt-4o", connection="local")


def test_openrouter_model_list_extras() -> None:
    entry = {
        "id": "anthropic/claude-sonnet-4.5",
        "name": "Anthropic: Claude Sonnet 4.5",
        "context_length": 1000000,
        "architecture": {
            "input_modalities": ["text", "image", "file"],
            "output_modalities": ["text"],
        },
        "pricing": {
            "prompt": "0.000003",
            "completion": "0.000015",
            "request": "0",
            "image": "0.0048",
            "input_cache_read": "0.0000003",
            "input_cache_write": "0.00000375",
        },
        "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000},
        "supported_parameters": ["max_tokens", "reasoning", "stop", "tool_choice", "tools"],
    }
    auto = {
        "id": "openrouter/auto",
        "name": "Auto Router",
        "context_length": 2000000,
        "architecture": {"input_modalities": ["text"]},
        "pricing": {"prompt": "-1", "completion": "-1"},
        "supported_parameters": [],
    }
    models = decode_models(json.dumps({"data": [entry, auto]}).encode(), "openrouter")
    assert models[0] == ModelInfo(
        id="anthropic/claude-sonnet-4.5",
        connection="openrouter",
        name="Anthropic: Claude Sonnet 4.5",
        context_window=1000000,
        max_output_tokens=64000,
        prices=ModelPrices(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
        capabilities=Capabilities(tools=True, vision=True, reasoning=True, prompt_cache=True),
    )
    assert models[1].prices == ModelPrices()
    assert models[1].capabilities == Capabilities(tools=False)


def test_groq_and_vllm_model_list_extras_and_a_bare_list() -> None:
    groq = (
        b'{"data":[{"id":"openai/gpt-oss-120b","context_window":131072,'
        b'"max_completion_tokens":65536}]}'
    )
    assert decode_models(groq, "groq")[0].context_window == 131072
    assert decode_models(groq, "groq")[0].max_output_tokens == 65536
    vllm = b'{"object":"list","data":[{"id":"facebook/opt-125m","max_model_len":2048}]}'
    assert decode_models(vllm, "vllm")[0].context_window == 2048
    bare = b'[{"id":"a","display_name":"A"}]'
    assert decode_models(bare, "together")[0].name == "A"


@pytest.mark.parametrize(
    "body", [b"", b"nope", b'{"data": 5}', b'{"data": [{"name": "no id"}]}', b"null", b'{"x":1}']
)
def test_malformed_model_list(body: bytes) -> None:
    with pytest.raises(ParseError):
        decode_models(body, "c")
