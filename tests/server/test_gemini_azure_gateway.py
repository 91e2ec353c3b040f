"""Gemini and Azure OpenAI models behind the gateway, driven by the official SDKs.

Gemini's replies are its recorded traffic (tests/fixtures/google); Azure's are
built from the shapes Azure documents, since no recording of it exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest

from modelport.testing import FakeUpstream, Reply
from modelport.wire.gemini import SKIP_SIGNATURE
from tests._fixtures import fixture_bytes
from tests.providers.test_azure import FILTERED, PROMPT_BLOCKED
from tests.server.conftest import Gateway

GEMINI_KEY = "AIza-gateway-secret-0123456789"
AZURE_KEY = "azure-gateway-secret-0123456789"


@pytest.fixture
def gateway(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> Gateway:
    monkeypatch.setenv("TEST_GEMINI_KEY", GEMINI_KEY)
    monkeypatch.setenv("TEST_AZURE_KEY", AZURE_KEY)
    return make_gateway(
        f"\n[connections.g]\ncompat = 'gemini'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'TEST_GEMINI_KEY'\nmax_retries = 0\n"
        f"\n[connections.az]\ncompat = 'azure'\nbase_url = '{upstream.url}'\n"
        "api_key_env = 'TEST_AZURE_KEY'\nmax_retries = 0\n"
    )


def _signature(relative: str, line: int) -> str:
    chunks = [
        json.loads(raw[6:])
        for raw in fixture_bytes(relative).split(b"\n")
        if raw.startswith(b"data: ")
    ]
    return chunks[line]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]


def test_openai_client_calls_a_gemini_tool_and_answers_it(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    relative = "google/streamGenerateContent-sse-functionCall-thoughtSignature.sse"
    path = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"
    upstream.route("POST", path, Reply.fixture(relative, chunks="random", split_seed=3))
    # The answer is asked for without streaming; this server streams it anyway.
    upstream.route(
        "POST",
        "/v1beta/models/gemini-3-pro-preview:generateContent",
        Reply.fixture("google/streamGenerateContent-sse-text.sse"),
    )
    client = gateway.openai()
    tools = [
        {
            "type": "function",
            "function": {"name": "get_country", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    messages: list[dict[str, object]] = [{"role": "user", "content": "Which country?"}]
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(
        model="g/gemini-3-pro-preview",
        messages=messages,
        tools=tools,
        stream=True,  # type: ignore[arg-type]
    ):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    [call] = calls.values()
    assert (call["name"], call["arguments"]) == ("get_country", "{}")
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {k: call[k] for k in ("name", "arguments")},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "France"},
    ]
    answer = client.chat.completions.create(
        model="g/gemini-3-pro-preview",
        messages=messages,
        tools=tools,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content == "The capital of France is Paris.\n"
    first, second = upstream.requests
    assert first.headers["x-goog-api-key"] == GEMINI_KEY and first.query == "alt=sse"
    model_turn, tool_turn = second.json()["contents"][1:]
    # Chat Completions has no field for the call's signature, so the OpenAI client
    # could not keep it: the call goes back with Google's documented stand-in.
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_country", "args": {}},
                "thoughtSignature": SKIP_SIGNATURE,
            }
        ],
    }
    assert tool_turn["parts"][0]["functionResponse"] == {
        "name": "get_country",
        "response": {"output": "France"},
    }


def test_anthropic_client_keeps_geminis_thinking_signature(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    relative = "google/streamGenerateContent-sse-thinking.sse"
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    upstream.route("POST", path, Reply.fixture(relative, chunks="random", split_seed=8))
    upstream.route(
        "POST",
        "/v1beta/models/gemini-2.5-pro:generateContent",
        Reply.fixture("google/streamGenerateContent-sse-text.sse"),
    )
    client = gateway.anthropic()
    question = {"role": "user", "content": "How do I cross the street?"}
    with client.messages.stream(
        model="g/gemini-2.5-pro",
        max_tokens=2000,
        messages=[question],  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        message = stream.get_final_message()
    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.signature == _signature(relative, 4)
    assert thinking.thinking.startswith("**Clarifying User Goals**")
    assert message.stop_reason == "end_turn"
    client.messages.create(
        model="g/gemini-2.5-pro",
        max_tokens=2000,
        messages=[
            question,  # type: ignore[list-item]
            {"role": "assistant", "content": message.content},  # type: ignore[typeddict-item]
            {"role": "user", "content": "Thanks"},
        ],
    )
    parts = upstream.requests[1].json()["contents"][1]["parts"]
    assert parts[0] == {"text": thinking.thinking, "thought": True}
    assert parts[1] == {"text": text.text, "thoughtSignature": thinking.signature}
    assert upstream.requests[0].json()["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


def test_an_azure_completion_its_filter_stopped(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.route(
        "POST",
        "/openai/deployments/gpt4o-prod/chat/completions",
        Reply(body=FILTERED, content_type="text/event-stream"),
    )
    text, finish = "", None
    for chunk in gateway.openai().chat.completions.create(
        model="az/gpt4o-prod", messages=[{"role": "user", "content": "How do I…"}], stream=True
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert (text, finish) == ("Here is how", "content_filter")
    assert upstream.requests[0].headers["api-key"] == AZURE_KEY


def test_an_azure_prompt_its_filter_refused(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.route(
        "POST",
        "/openai/deployments/gpt4o-prod/chat/completions",
        Reply.json(PROMPT_BLOCKED, status=400),
    )
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(
            model="az/gpt4o-prod", messages=[{"role": "user", "content": "…"}]
        )
    assert "Azure content filter: hate (high), jailbreak" in caught.value.message
    assert AZURE_KEY not in caught.value.message
