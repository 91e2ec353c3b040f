"""The same-format passthrough through the real gateway, driven by the official SDKs.

Two gateways in front of one FakeUpstream, the passthrough on in one and off
in the other (``MODELPORT_PASSTHROUGH``), must give an SDK the same content,
tool calls, finish and usage for every recorded answer split at random byte
boundaries, the same statuses for upstream errors, and the same ledger rows;
a client that leaves mid-stream cancels the upstream and is recorded alike.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.ledger import open_ledger
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests._fixtures import FIXTURES
from tests.server.conftest import Gateway, GatewayFactory, upstream_config
from tests.wire.test_relay import (
    ANTHROPIC_ANSWERS,
    ANTHROPIC_STREAMS,
    OPENAI_ANSWERS,
    OPENAI_STREAMS,
)

USER = [{"role": "user", "content": "hi"}]


class Pair:
    """The same config behind two gateways: the passthrough on, and off."""

    def __init__(self, on: Gateway, off: Gateway, ledgers: dict[str, Any]) -> None:
        self.on = on
        self.off = off
        self.ledgers = ledgers


@pytest.fixture
def pair(
    upstream: FakeUpstream,
    upstream_keys: None,
    gateway_factory: GatewayFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Pair]:
    gateways = {}
    ledgers = {}
    for mode in ("on", "off"):
        # `all`: plain answers too (by default only streams are relayed).
        monkeypatch.setenv("MODELPORT_PASSTHROUGH", "all" if mode == "on" else "off")
        ledgers[mode] = open_ledger(url=f"sqlite:///{tmp_path / f'{mode}.db'}")
        app = create_app(upstream_config(upstream, EXTRA), plugin_host=False, ledger=ledgers[mode])
        gateways[mode] = gateway_factory(app)
    monkeypatch.delenv("MODELPORT_PASSTHROUGH")
    yield Pair(gateways["on"], gateways["off"], ledgers)


EXTRA = """
[connections.oai.prices."gpt-4o"]
input = 1.0
output = 2.0
[connections.ant.prices."claude"]
input = 3.0
output = 4.0
"""


def _route(upstream: FakeUpstream, name: str, seed: int) -> None:
    path = "/v1/messages" if name.startswith("anthropic/") else "/v1/chat/completions"
    upstream.route("POST", path, Reply.fixture(name, chunks="random", split_seed=seed))


def _openai_stream(gateway: Gateway, include_usage: bool) -> dict[str, Any]:
    """What an OpenAI SDK user reads from one streamed answer."""
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = gateway.openai().chat.completions.create(
        model="oai/gpt-4o",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
        **options,
    )
    text, finish, usage, calls = "", None, None, {}
    for chunk in stream:
        assert chunk.model == "oai/gpt-4o"
        if chunk.usage is not None:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, ["", "", ""])
                if call.id:
                    entry[0] = call.id
                if call.function is not None:
                    entry[1] += call.function.name or ""
                    entry[2] += call.function.arguments or ""
    return {"text": text, "finish": finish, "usage": usage, "calls": calls}


def _anthropic_stream(gateway: Gateway) -> dict[str, Any]:
    """What an Anthropic SDK user reads from one streamed answer."""
    with gateway.anthropic().messages.stream(
        model="ant/claude",
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    return _anthropic_message(message)


def _anthropic_message(message: Any) -> dict[str, Any]:
    assert message.model == "ant/claude"
    blocks = [
        (b.type, getattr(b, "text", None), getattr(b, "name", None), getattr(b, "input", None))
        for b in message.content
    ]
    usage = message.usage
    return {
        "blocks": blocks,
        "finish": message.stop_reason,
        "usage": (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens or 0,  # left out upstream, 0 when re-encoded
            usage.cache_creation_input_tokens or 0,
        ),
    }


def _failure(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (openai.APIError, anthropic.APIError) as exc:
        return (type(exc).__name__, getattr(exc, "status_code", None))


_SLOW = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("name", OPENAI_STREAMS)
@_SLOW
@given(seed=st.integers(0, 2**16), include_usage=st.booleans())
def test_openai_sdk_reads_the_same_stream_either_way(
    pair: Pair, upstream: FakeUpstream, name: str, seed: int, include_usage: bool
) -> None:
    answers = []
    for gateway in (pair.on, pair.off):
        _route(upstream, name, seed)
        answers.append(_failure(lambda g=gateway: _openai_stream(g, include_usage)))
    relayed, decoded = answers
    if not isinstance(decoded, dict):  # an error, raised by the SDK alike
        assert relayed == decoded
        return
    if relayed["usage"] is None and decoded["usage"] == (0, 0):
        # The upstream sent no usage (it ignored stream_options): relayed, the client gets
        # none; the decode-encode path writes a usage chunk of zeros.
        relayed = {**relayed, "usage": (0, 0)}
    if "refusal" in name:
        # A refusal reaches the SDK in its own field when relayed (the OpenAI encoder of the
        # decode-encode path has none, and writes it as content).
        assert relayed["text"] == "" and decoded["text"]
        relayed = {**relayed, "text": decoded["text"]}
    assert relayed == decoded


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
@_SLOW
@given(seed=st.integers(0, 2**16))
def test_anthropic_sdk_reads_the_same_stream_either_way(
    pair: Pair, upstream: FakeUpstream, name: str, seed: int
) -> None:
    answers = []
    for gateway in (pair.on, pair.off):
        _route(upstream, name, seed)
        answers.append(_failure(lambda g=gateway: _anthropic_stream(g)))
    relayed, decoded = answers
    if "server-tool" in name:
        # Server tool blocks (code execution) reach the client relayed; the decode-encode
        # path has no event for them and joins the text on either side into one block.
        relayed = {**relayed, "blocks": _text_joined(relayed["blocks"])}
    assert relayed == decoded


def _text_joined(blocks: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    joined: list[tuple[Any, ...]] = []
    for block in blocks:
        if block[0] not in ("text", "thinking", "tool_use", "redacted_thinking"):
            continue
        if block[0] == "text" and joined and joined[-1][0] == "text":
            joined[-1] = ("text", joined[-1][1] + block[1], None, None)
        else:
            joined.append(block)
    return joined


@pytest.mark.parametrize("name", OPENAI_ANSWERS + ANTHROPIC_ANSWERS)
def test_sdks_read_the_same_answer_either_way(
    pair: Pair, upstream: FakeUpstream, name: str
) -> None:
    answers = []
    for gateway in (pair.on, pair.off):
        _route(upstream, name, 0)
        if name.startswith("anthropic/"):
            answers.append(
                _anthropic_message(
                    gateway.anthropic().messages.create(
                        model="ant/claude",
                        max_tokens=100,
                        messages=USER,  # type: ignore[arg-type]
                    )
                )
            )
            continue
        completion = gateway.openai().chat.completions.create(
            model="oai/gpt-4o",
            messages=USER,  # type: ignore[arg-type]
        )
        assert completion.model == "oai/gpt-4o"
        choice = completion.choices[0]
        calls = [
            (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
        ]  # type: ignore[union-attr]
        usage = completion.usage
        answers.append(
            (
                choice.message.content or choice.message.refusal,
                choice.finish_reason,
                calls,
                (usage.prompt_tokens, usage.completion_tokens) if usage else None,
            )
        )
    assert answers[0] == answers[1]


def test_the_relayed_body_is_the_clients_own(pair: Pair, upstream: FakeUpstream) -> None:
    # The passthrough sends what the client sent, with the bare model id and the usage the
    # ledger needs; the answer is the upstream's (its own `created`, `system_fingerprint`).
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    body = {
        "model": "oai/gpt-4o",
        "messages": USER,
        "stream": True,
        "seed": 7,
        "logit_bias": {"50256": -100},
    }
    raw = pair.on.openai().chat.completions.with_raw_response.create(**body).http_response  # type: ignore[arg-type]
    sent = upstream.requests[-1].json()
    assert sent == {**body, "model": "gpt-4o", "stream_options": {"include_usage": True}}
    recorded = (FIXTURES / "openai/chat-stream-text-include-usage.sse").read_bytes()
    created = json.loads(recorded.split(b"\n\n")[0].removeprefix(b"data: "))["created"]
    assert f'"created":{created}'.encode() in raw.read()
    assert b'"usage":{' not in raw.read()  # the client did not ask for it


@pytest.mark.parametrize(
    ("model", "payload", "relayed"),
    [
        ("oai/gpt-4o", {}, True),
        ("ant/claude", {}, False),  # a translation: an OpenAI client on an Anthropic upstream
        ("oai/gpt-4o", {"n": 2}, False),  # several choices: decode-encode answers the first
    ],
)
def test_what_the_passthrough_cannot_keep_takes_the_decode_encode_path(
    pair: Pair, upstream: FakeUpstream, model: str, payload: dict[str, Any], relayed: bool
) -> None:
    # A relayed answer is the upstream's own: its `created` is the recorded one.
    name = "openai/chat-completion-tool-call.json"
    created = json.loads((FIXTURES / name).read_bytes())["created"]
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(name))
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/message-text.json"))
    completion = pair.on.openai().chat.completions.create(model=model, messages=USER, **payload)  # type: ignore[arg-type]
    assert completion.model == model and len(completion.choices) == 1
    assert (completion.created == created) is relayed


def test_by_default_streams_are_relayed_and_plain_answers_decoded(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    name = "openai/chat-completion-tool-call.json"
    created = json.loads((FIXTURES / name).read_bytes())["created"]
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(name))
    plain = gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert plain.created != created
    stream = "openai/chat-stream-text-include-usage.sse"
    first = json.loads((FIXTURES / stream).read_bytes().split(b"\n\n")[0].removeprefix(b"data: "))
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(stream))
    chunks = list(
        gateway.openai().chat.completions.create(model="oai/gpt-4o", messages=USER, stream=True)  # type: ignore[arg-type]
    )
    assert chunks[0].created == first["created"]


def test_a_connection_default_or_a_fallback_elsewhere_takes_the_decode_encode_path(
    upstream: FakeUpstream, upstream_keys: None, gateway_factory: GatewayFactory
) -> None:
    from modelport.routing import Router

    config = upstream_config(upstream, '[fallbacks]\n"oai/gpt-4o" = ["ant/claude"]\n')
    router = Router(config)
    assert router.relay_compat("oai/gpt-4o") is None  # the chain crosses to another API
    assert router.relay_compat("oai/other") == "openai"
    assert router.relay_compat("ant/claude") == "anthropic"
    assert router.relay_compat("nowhere/x") is None
    defaults = upstream_config(upstream).connections["oai"]
    import msgspec

    with_default = msgspec.structs.replace(defaults, options={"temperature": 0.2})
    config.connections["oai"] = with_default
    assert Router(config).relay_compat("oai/other") is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": {"message": "bad key", "type": "invalid_request_error"}}),
        (429, {"error": {"message": "slow down", "type": "rate_limit_error"}}),
        (400, {"error": {"message": "no", "type": "invalid_request_error"}}),
        (404, {"error": {"message": "model nope", "type": "not_found_error"}}),
        (500, {"error": {"message": "boom", "type": "server_error"}}),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_answer_the_same_status_either_way(
    pair: Pair, upstream: FakeUpstream, status: int, body: dict[str, Any], stream: bool
) -> None:
    anthropic_body = {"type": "error", "error": body["error"]}
    results = []
    for gateway in (pair.on, pair.off):
        upstream.route("POST", "/v1/chat/completions", Reply.json(body, status=status))
        upstream.route("POST", "/v1/messages", Reply.json(anthropic_body, status=status))
        results.append(
            (
                _failure(lambda g=gateway: _openai_call(g, stream)),
                _failure(lambda g=gateway: _anthropic_call(g, stream)),
            )
        )
    assert results[0] == results[1]
    assert results[0][0][1] == status and results[0][1][1] == status


def _openai_call(gateway: Gateway, stream: bool) -> Any:
    client = gateway.openai()
    if stream:
        return list(client.chat.completions.create(model="oai/gpt-4o", messages=USER, stream=True))  # type: ignore[arg-type]
    return client.chat.completions.create(model="oai/gpt-4o", messages=USER)  # type: ignore[arg-type]


def _anthropic_call(gateway: Gateway, stream: bool) -> Any:
    answer = gateway.anthropic().messages.create(
        model="ant/claude",
        max_tokens=5,
        messages=USER,  # type: ignore[arg-type]
        stream=stream,  # type: ignore[call-overload]
    )
    return list(answer) if stream else answer


def test_a_stream_broken_mid_way_ends_with_the_error_frame(
    pair: Pair, upstream: FakeUpstream
) -> None:
    for gateway in (pair.on, pair.off):
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse", drop_after=400),
        )
        with pytest.raises(openai.APIError, match="closed mid-response"):
            list(
                gateway.openai().chat.completions.create(
                    model="oai/gpt-4o",
                    messages=USER,  # type: ignore[arg-type]
                    stream=True,
                )
            )


def test_an_overload_right_after_message_start_is_retried(
    upstream: FakeUpstream, upstream_keys: None, gateway_factory: GatewayFactory
) -> None:
    # Nothing is relayed before the first output, so an upstream that fails right after
    # message_start is retried as on the decode-encode path.
    overloaded = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","model":"claude","content":[],'
        b'"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    config = upstream_config(upstream)
    import msgspec

    config.connections["ant"] = msgspec.structs.replace(config.connections["ant"], max_retries=1)
    gateway = gateway_factory(create_app(config, plugin_host=False, ledger=False))
    upstream.route(
        "POST",
        "/v1/messages",
        Reply(body=overloaded, content_type="text/event-stream", chunks=[200]),
        Reply.fixture("anthropic/messages-stream-text.sse"),
    )
    with gateway.anthropic().messages.stream(
        model="ant/claude",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    assert message.content[0].type == "text"
    assert len(upstream.requests) == 2


def _rows(ledger: Any, count: int) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 5
    while True:
        ledger.flush(timeout=1)
        records = ledger.recent(100)
        if len(records) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return sorted(
        (
            r.api,
            r.connection,
            r.model,
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.reasoning_tokens,
            r.cost,
            r.outcome,
            r.ttft_ms is not None,
        )
        for r in records
    )


def test_ledger_rows_are_the_same_either_way(pair: Pair, upstream: FakeUpstream) -> None:
    for gateway in (pair.on, pair.off):
        for name in (
            "openai/chat-stream-text-include-usage.sse",
            "openai/chat-completion-cached-tokens.json",
            "anthropic/messages-stream-cache-read.sse",
            "anthropic/message-cache-creation.json",
        ):
            _route(upstream, name, 3)
            stream = name.endswith(".sse")
            if name.startswith("anthropic/"):
                call = gateway.anthropic().messages.create(
                    model="ant/claude",
                    max_tokens=10,
                    messages=USER,  # type: ignore[arg-type]
                    stream=stream,  # type: ignore[call-overload]
                )
            else:
                call = gateway.openai().chat.completions.create(
                    model="oai/gpt-4o",
                    messages=USER,  # type: ignore[arg-type]
                    stream=stream,
                )
            if stream:
                list(call)  # type: ignore[call-overload]
    on, off = _rows(pair.ledgers["on"], 4), _rows(pair.ledgers["off"], 4)
    assert len(on) == 4 and on == off
    assert all(row[3] > 0 and row[-2] == "ok" for row in on)


def _slow(name: str) -> Reply:
    return Reply.fixture(name, chunks=[40] * 2000, chunk_delay=0.05)


@pytest.mark.parametrize(
    ("name", "path", "body"),
    [
        (
            "openai/chat-stream-text-include-usage.sse",
            "/v1/chat/completions",
            {"model": "oai/gpt-4o", "messages": USER, "stream": True},
        ),
        (
            "anthropic/messages-stream-thinking-long.sse",
            "/v1/messages",
            {"model": "ant/claude", "max_tokens": 10, "messages": USER, "stream": True},
        ),
    ],
)
def test_a_client_leaving_mid_stream_cancels_the_upstream_and_is_recorded_alike(
    pair: Pair, upstream: FakeUpstream, name: str, path: str, body: dict[str, Any]
) -> None:
    for gateway in (pair.on, pair.off):
        upstream.route("POST", path, _slow(name))
        payload = json.dumps(body).encode()
        port = int(gateway.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (path.encode(), len(payload), payload)
            )
            received = b""
            while received.count(b"data: ") < 3:
                received += sock.recv(65536)
            request = upstream.requests[-1]
        assert request.closed.wait(timeout=2.0), "the upstream request was not cancelled"
    on, off = _rows(pair.ledgers["on"], 1), _rows(pair.ledgers["off"], 1)
    assert [row[-2] for row in on] == ["cancelled"]
    assert on == off


def test_a_budget_clamps_max_tokens_in_the_relayed_body(
    make_gateway: Callable[..., Gateway], upstream: FakeUpstream, tmp_path: Path
) -> None:
    from modelport.governance import open_governance

    governance = open_governance(url=f"sqlite:///{tmp_path / 'gov.db'}")
    gateway = make_gateway(EXTRA, governance=governance)
    key, secret = governance.catalog.create_key(name="t", team="red", actor="test")
    governance.catalog.set_budget(
        scope="team", subject="red", period="day", max_cost=0.003, actor="test"
    )
    governance.reload()
    name = "openai/chat-stream-text-include-usage.sse"
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(name))
    body = {"model": "oai/gpt-4o", "messages": USER, "stream": True, "max_tokens": 100_000}
    chunks = list(gateway.openai(api_key=secret).chat.completions.create(**body))  # type: ignore[call-overload]
    sent = upstream.requests[-1].json()
    assert 0 < sent["max_tokens"] < 1500  # $0.003 at $2 per million output tokens
    # Relayed: the client's own body otherwise, and the upstream's own chunks.
    assert sent == {
        **body,
        "model": "gpt-4o",
        "max_tokens": sent["max_tokens"],
        "stream_options": {"include_usage": True},
    }
    first = json.loads((FIXTURES / name).read_bytes().split(b"\n\n")[0].removeprefix(b"data: "))
    assert chunks[0].created == first["created"]
