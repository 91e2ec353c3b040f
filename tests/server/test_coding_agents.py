"""Claude Code and Codex CLI, as recorded, through the gateway to every kind of upstream.

The requests are the ones the real clients sent (``tests/fixtures/clients``, see
SOURCES.md: Claude Code 2.1.197 and Codex CLI 0.171.0, a plain turn and a
tool-calling turn each), replayed byte for byte with their own headers and query
(``?beta=true``, the ``anthropic-beta`` list, ``Accept-Encoding: zstd,gzip``). The
model they name, ``local/x``, is served in turn by an OpenAI-compatible server,
by Anthropic and by a plugin: the connection (or the plugin) called ``local``.
Every answer is checked against the client SDK's own event models.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from modelport.config import parse_config
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests._fixtures import FIXTURES
from tests.plugin_host.conftest import scripted, write_plugin
from tests.server._sse import sse_events
from tests.server.conftest import Gateway, GatewayFactory

CLIENTS = FIXTURES / "clients"
#: Headers that belong to the recorded connection, not to the request.
_HOP = {"host", "content-length", "connection"}
_ANTHROPIC_EVENT = TypeAdapter(RawMessageStreamEvent)
_RESPONSES_EVENTS = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}
UPSTREAMS = ("openai", "anthropic", "plugin")


def recorded(relative: str) -> dict[str, Any]:
    return json.loads((CLIENTS / relative).read_text())


def replay(gateway: Gateway, relative: str) -> httpx.Response:
    """Send a recorded request to the gateway as the client sent it."""
    request = recorded(relative)
    headers = {k: v for k, v in request["headers"].items() if k.lower() not in _HOP}
    url = f"{gateway.url}{request['path']}"
    if request["query"]:
        url += f"?{request['query']}"
    body = json.dumps(request["body"]).encode() if request["body"] is not None else None
    response = httpx.request(request["method"], url, headers=headers, content=body, timeout=20)
    assert "content-encoding" not in response.headers  # answered plainly, whatever was accepted
    return response


def anthropic_stream(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    events = []
    for event in sse_events(response.content):
        payload = json.loads(event.data)
        assert payload["type"] == event.event
        _ANTHROPIC_EVENT.validate_python(payload)
        events.append(payload)
    assert events[-1]["type"] == "message_stop"
    return events


def responses_stream(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    events = []
    for event in sse_events(response.content):
        payload = json.loads(event.data)
        assert payload["type"] == event.event
        events.append(_RESPONSES_EVENTS[payload["type"]].model_validate(payload))
    assert events[-1].type == "response.completed"
    return events


# --- the gateway in front of each upstream ------------------------------------------------


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "plugins").mkdir(parents=True)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    monkeypatch.setenv("TEST_ANT_KEY", "sk-ant-upstream-secret-0123456789")
    monkeypatch.chdir(tmp_path)
    return home


def _gateway_for(
    kind: str, upstream: FakeUpstream, home: Path, gateway_factory: GatewayFactory
) -> Gateway:
    if kind == "plugin":
        write_plugin(home / "plugins", "local", scripted("tools", "local"), triggers=["startup"])
        gateway = gateway_factory(create_app(parse_config(""), ledger=False))
        deadline = time.monotonic() + 15
        while httpx.get(f"{gateway.url}/plugins/local").json()["state"] != "running":
            assert time.monotonic() < deadline, "the plugin did not start"
            time.sleep(0.05)
        return gateway
    if kind == "openai":
        table = f'compat = "openai"\nbase_url = "{upstream.url}/v1"'
    else:
        table = f'compat = "anthropic"\nbase_url = "{upstream.url}"\napi_key_env = "TEST_ANT_KEY"'
    config = parse_config(f"[connections.local]\n{table}\nmax_retries = 0\n")
    return gateway_factory(create_app(config, plugin_host=False, ledger=False))


@pytest.fixture(params=UPSTREAMS)
def agent_gateway(
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    home: Path,
    gateway_factory: GatewayFactory,
) -> Iterator[tuple[str, Gateway]]:
    yield request.param, _gateway_for(request.param, upstream, home, gateway_factory)


def _script(upstream: FakeUpstream, kind: str, *fixtures: tuple[str, str]) -> None:
    """Upstream answers in order: each ``(openai fixture, anthropic fixture)``."""
    if kind == "openai":
        replies = [Reply.fixture(f"openai/{o}", chunks="random", split_seed=7) for o, _ in fixtures]
        upstream.route("POST", "/v1/chat/completions", *replies)
    elif kind == "anthropic":
        replies = [Reply.fixture(f"anthropic/{a}", chunks="random") for _, a in fixtures]
        upstream.route("POST", "/v1/messages", *replies)


TEXT = ("chat-stream-text-include-usage.sse", "messages-stream-text.sse")
CALL = ("chat-stream-single-tool-call.sse", "messages-stream-thinking-then-tool_use.sse")


# --- Claude Code ----------------------------------------------------------------------------


def test_claude_code_plain_turn(agent_gateway: tuple[str, Gateway], upstream: FakeUpstream) -> None:
    kind, gateway = agent_gateway
    _script(upstream, kind, TEXT)
    assert replay(gateway, "claude-code-plain/1-head.json").status_code == 200
    events = anthropic_stream(replay(gateway, "claude-code-plain/2-messages.json"))
    text = "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and "text" in e["delta"]
    )
    assert text
    sent = recorded("claude-code-plain/2-messages.json")["body"]
    if kind == "openai":
        body = upstream.requests[-1].json()
        # The system message Claude Code puts after the user's stays where it was.
        assert [m["role"] for m in body["messages"]] == ["system", "user", "system"]
        assert body["messages"][2]["content"] == sent["messages"][1]["content"]
        assert body["reasoning_effort"] == "high"  # adaptive thinking, effort high
        assert body["user"] == sent["metadata"]["user_id"]
        assert "context_management" not in body and "thinking" not in body
    elif kind == "anthropic":
        _assert_passed_through(upstream, sent)


def _assert_passed_through(upstream: FakeUpstream, sent: dict[str, Any]) -> None:
    """An Anthropic upstream gets what Claude Code sent, and its beta flags."""
    forwarded = upstream.requests[-1]
    body = forwarded.json()
    for field in ("thinking", "output_config", "context_management", "metadata", "max_tokens"):
        assert body.get(field) == sent.get(field), field
    assert body["system"] == sent["system"]
    assert [m["role"] for m in body["messages"]] == [m["role"] for m in sent["messages"]]
    in_place = [m for m in body["messages"] if m["role"] == "system"]
    assert in_place == [m for m in sent["messages"] if m["role"] == "system"]
    assert [t["name"] for t in body.get("tools", [])] == [t["name"] for t in sent.get("tools", [])]
    betas = set(forwarded.headers["anthropic-beta"].split(","))
    assert {"mid-conversation-system-2026-04-07", "context-management-2025-06-27"} <= betas
    assert {"effort-2025-11-24", "claude-code-20250219"} <= betas
    assert forwarded.headers["x-api-key"] == "sk-ant-upstream-secret-0123456789"


def test_claude_code_tool_turn(agent_gateway: tuple[str, Gateway], upstream: FakeUpstream) -> None:
    kind, gateway = agent_gateway
    _script(upstream, kind, TEXT, CALL, TEXT)
    assert replay(gateway, "claude-code-tool/1-head.json").status_code == 200
    # The session title: structured output, no tools.
    anthropic_stream(replay(gateway, "claude-code-tool/2-title.json"))
    if kind == "openai":
        title = upstream.requests[-1].json()
        schema = recorded("claude-code-tool/2-title.json")["body"]["output_config"]["format"]
        assert title["response_format"]["json_schema"]["schema"] == schema["schema"]
    # The turn that calls a tool ...
    events = anthropic_stream(replay(gateway, "claude-code-tool/3-messages.json"))
    uses = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert any(block["type"] == "tool_use" for block in uses)
    stop = next(e for e in events if e["type"] == "message_delta")["delta"]["stop_reason"]
    assert stop == "tool_use"
    if kind == "plugin":
        assert [b["name"] for b in uses if b["type"] == "tool_use"] == ["Bash"]
    # ... and the one that hands its result back.
    events = anthropic_stream(replay(gateway, "claude-code-tool/4-messages-tool-result.json"))
    sent = recorded("claude-code-tool/4-messages-tool-result.json")["body"]
    if kind == "openai":
        body = upstream.requests[-1].json()
        assert [m["role"] for m in body["messages"]] == [
            "system",
            "user",
            "system",
            "assistant",
            "tool",
        ]
        assert body["messages"][3]["tool_calls"][0]["function"]["name"] == "Bash"
        assert body["messages"][4] == {
            "role": "tool",
            "content": "recorded-tool-call",
            "tool_call_id": "toolu_rec0003",
        }
        assert len(body["tools"]) == len(sent["tools"])
    elif kind == "anthropic":
        _assert_passed_through(upstream, sent)
    else:
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        assert "".join(d.get("text", "") for d in deltas) == "tool said: recorded-tool-call"


# --- Codex CLI --------------------------------------------------------------------------------


def test_codex_plain_turn(agent_gateway: tuple[str, Gateway], upstream: FakeUpstream) -> None:
    kind, gateway = agent_gateway
    _script(upstream, kind, TEXT)
    sent = recorded("codex-plain/1-responses.json")
    assert sent["headers"]["Accept-Encoding"] == "zstd,gzip"
    events = responses_stream(replay(gateway, "codex-plain/1-responses.json"))
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert done and done[-1].type == "message" and done[-1].content[0].text
    if kind == "openai":
        body = upstream.requests[-1].json()
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["system", "system", "user", "user"]  # developer messages are system
        names = [t["function"]["name"] for t in body["tools"]]
        assert "multi_agent_v1__spawn_agent" in names  # the namespace, flattened
        assert all(t["type"] == "function" for t in body["tools"])  # no web_search here
        assert body["parallel_tool_calls"] is True
        for field in ("include", "store", "prompt_cache_key", "client_metadata", "reasoning"):
            assert field not in body
    elif kind == "anthropic":
        body = upstream.requests[-1].json()
        assert isinstance(body["system"], str) and body["system"]
        assert [m["role"] for m in body["messages"]] == ["user"]  # the two user turns, merged
        assert all("type" not in t for t in body["tools"])  # no hosted tool


def test_codex_tool_turn(agent_gateway: tuple[str, Gateway], upstream: FakeUpstream) -> None:
    kind, gateway = agent_gateway
    _script(upstream, kind, CALL, TEXT)
    events = responses_stream(replay(gateway, "codex-tool/1-responses.json"))
    calls = [
        e.item
        for e in events
        if e.type == "response.output_item.done" and e.item.type == "function_call"
    ]
    assert len(calls) == 1 and isinstance(json.loads(calls[0].arguments), dict)
    if kind == "plugin":
        assert calls[0].name == "exec_command"
        assert json.loads(calls[0].arguments)["cmd"] == "echo recorded-tool-call"

    events = responses_stream(replay(gateway, "codex-tool/2-responses-tool-output.json"))
    assert any(e.type == "response.output_text.delta" for e in events)
    output = recorded("codex-tool/2-responses-tool-output.json")["body"]["input"][-1]["output"]
    if kind == "openai":
        body = upstream.requests[-1].json()
        assert body["messages"][-2]["tool_calls"][0]["function"]["name"] == "exec_command"
        assert body["messages"][-1] == {
            "role": "tool",
            "content": output,
            "tool_call_id": "call_rec0001",
        }
    elif kind == "anthropic":
        body = upstream.requests[-1].json()
        assistant, result = body["messages"][-2:]
        assert assistant["content"][-1]["name"] == "exec_command"
        assert result["content"][0] == {
            "type": "tool_result",
            "tool_use_id": "call_rec0001",
            "content": output,
        }
    else:
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == f"tool said: {output}"


def test_head_of_the_root_answers_without_a_body(gateway: Gateway) -> None:
    response = replay(gateway, "claude-code-plain/1-head.json")
    assert (response.status_code, response.content) == (200, b"")


def test_claude_code_on_a_model_that_cannot_think(
    upstream: FakeUpstream, home: Path, gateway_factory: GatewayFactory
) -> None:
    # Ollama refuses `think` for a model without thinking; Claude Code's adaptive thinking
    # leaves that to the model, so the gateway asks again without it. An explicit
    # reasoning_effort from a Chat Completions client is the client's to see refused.
    refusal = Reply.json({"error": '"llama3.1:8b" does not support thinking'}, status=400)
    upstream.route(
        "POST",
        "/api/chat",
        refusal,
        Reply.fixture("ollama/api-chat-stream.ndjson", chunks="random"),
        refusal,
    )
    config = parse_config(
        f'[connections.local]\ncompat = "ollama"\nbase_url = "{upstream.url}"\nmax_retries = 0\n'
    )
    gateway = gateway_factory(create_app(config, plugin_host=False, ledger=False))

    events = anthropic_stream(replay(gateway, "claude-code-plain/2-messages.json"))
    assert any(e["type"] == "content_block_delta" for e in events)
    first, second = (r.json() for r in upstream.requests)
    assert first["think"] == "high" and "think" not in second

    explicit = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={
            "model": "local/x",
            "messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "high",
        },
    )
    assert explicit.status_code == 400 and "does not support thinking" in explicit.text
    assert len(upstream.requests) == 3
