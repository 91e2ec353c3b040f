"""Every error reaches each SDK as the exception that SDK raises for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from modelport.testing import FakeUpstream, Reply
from tests.server._sse import sse_events
from tests.server.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, Gateway

USER = [{"role": "user", "content": "hi"}]
TOO_LONG = "prompt is too long: 210000 tokens > 200000 maximum"
# Each upstream echoes the key it was sent, as some do: the gateway must not pass it on.
OPENAI_401 = Reply.json(
    {"error": {"message": f"Incorrect API key provided: {UPSTREAM_OPENAI_KEY}",
               "type": "invalid_request_error", "code": "invalid_api_key"}},
    status=401,
)  # fmt: skip
ANTHROPIC_401 = Reply.json(
    {"type": "error", "error": {"type": "authentication_error",
                                "message": f"invalid x-api-key {UPSTREAM_ANTHROPIC_KEY}"}},
    status=401,
)  # fmt: skip


def _openai_chat(gateway: Gateway, stream: bool, model: str = "oai/gpt-4o") -> object:
    client = gateway.openai()
    if stream:
        return list(
            client.chat.completions.create(model=model, messages=USER, stream=True)  # type: ignore[arg-type]
        )
    return client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]


def _anthropic_chat(gateway: Gateway, stream: bool, model: str = "ant/claude") -> object:
    client = gateway.anthropic()
    if stream:
        with client.messages.stream(model=model, max_tokens=10, messages=USER) as events:  # type: ignore[arg-type]
            return events.get_final_message()
    return client.messages.create(model=model, max_tokens=10, messages=USER)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_401_is_authentication_error(
    gateway: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.route("POST", "/v1/chat/completions", OPENAI_401)
    upstream.route("POST", "/v1/messages", ANTHROPIC_401)
    with pytest.raises(openai.AuthenticationError) as openai_error:
        _openai_chat(gateway, stream)
    with pytest.raises(anthropic.AuthenticationError) as anthropic_error:
        _anthropic_chat(gateway, stream)
    # Cross: an Anthropic upstream's 401 is still an OpenAI AuthenticationError.
    with pytest.raises(openai.AuthenticationError) as cross_error:
        _openai_chat(gateway, stream, model="ant/claude")
    for exc in (openai_error.value, anthropic_error.value, cross_error.value):
        seen = str(exc.body) + exc.message + exc.response.text
        assert UPSTREAM_OPENAI_KEY not in seen
        assert UPSTREAM_ANTHROPIC_KEY not in seen
        assert "***" in seen  # the echoed key was there, and masked
    health = httpx.get(f"{gateway.url}/health").text
    assert UPSTREAM_OPENAI_KEY not in health and UPSTREAM_ANTHROPIC_KEY not in health


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_is_rate_limit_error_with_retry_after(
    gateway: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    upstream.route(
        "POST", "/v1/chat/completions", Reply.json(body, status=429, headers={"retry-after": "7"})
    )
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.json(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            status=429,
            headers={"retry-after": "7"},
        ),
    )
    with pytest.raises(openai.RateLimitError) as openai_error:
        _openai_chat(gateway, stream)
    assert openai_error.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.RateLimitError) as anthropic_error:
        _anthropic_chat(gateway, stream)
    assert anthropic_error.value.response.headers["retry-after"] == "7"


def test_context_overflow_is_bad_request_naming_the_limit(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json(
            {"error": {"message": "This model's maximum context length is 128000 tokens. However, "
                       "your messages resulted in 130512 tokens.", "type": "invalid_request_error",
                       "code": "context_length_exceeded", "param": "messages"}},
            status=400,
        ),
    )  # fmt: skip
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.json(
            {"type": "error", "error": {"type": "invalid_request_error", "message": TOO_LONG}},
            status=400,
        ),
    )  # fmt: skip
    with pytest.raises(openai.BadRequestError) as openai_error:
        _openai_chat(gateway, stream=True)
    assert "128000" in openai_error.value.message
    assert openai_error.value.code == "context_length_exceeded"
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        _anthropic_chat(gateway, stream=False)
    assert "200000" in anthropic_error.value.message
    # Cross: the Anthropic limit reaches an OpenAI client as context_length_exceeded.
    with pytest.raises(openai.BadRequestError) as cross:
        _openai_chat(gateway, stream=False, model="ant/claude")
    assert "200000" in cross.value.message


def test_unknown_connection_is_not_found_naming_it(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as openai_error:
        _openai_chat(gateway, stream=True, model="nowhere/gpt-4o")
    assert "nowhere" in openai_error.value.message
    with pytest.raises(anthropic.NotFoundError) as anthropic_error:
        _anthropic_chat(gateway, stream=False, model="nowhere/claude")
    assert "nowhere" in anthropic_error.value.message


def test_unknown_model_is_not_found_naming_it(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openai/error-404-model_not_found.sorted.json", status=404),
    )
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.fixture("anthropic/error-404-not_found_error.sorted.json", status=404),
    )
    with pytest.raises(openai.NotFoundError) as openai_error:
        _openai_chat(gateway, stream=False, model="oai/gpt-5.2-proo")
    assert "gpt-5.2-proo" in openai_error.value.message
    with pytest.raises(anthropic.NotFoundError) as anthropic_error:
        _anthropic_chat(gateway, stream=True, model="ant/claude-sonet-4-5")
    assert "claude-sonet-4-5" in anthropic_error.value.message


def test_invalid_json_body_is_bad_request(gateway: Gateway) -> None:
    json = {"content-type": "application/json"}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{not json", headers=json)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(f"{gateway.url}/v1/messages", content=b"[1, 2", headers=json)
    assert response.status_code == 400
    assert response.json()["type"] == "error"


def test_openai_stream_dropped_mid_way_raises_and_never_ends_clean(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openai/chat-stream-text-include-usage.sse", chunks=[300] * 50,
                      drop_after=1500),
    )  # fmt: skip
    seen = []
    with pytest.raises(openai.APIError) as error:
        for chunk in gateway.openai().chat.completions.create(
            model="oai/gpt-4o",
            messages=USER,
            stream=True,  # type: ignore[arg-type]
        ):
            seen.append(chunk)
    assert seen, "the stream broke after some chunks had been forwarded"
    assert "closed" in error.value.message or "ended" in error.value.message
    assert all(c.choices[0].finish_reason is None for c in seen if c.choices)

    raw = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "oai/gpt-4o", "messages": USER, "stream": True},
    )
    events = sse_events(raw.content)
    assert raw.status_code == 200
    assert "[DONE]" not in raw.text
    assert '"error"' in events[-1].data


def test_anthropic_stream_dropped_mid_way_raises_and_never_ends_clean(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/messages",
        Reply.fixture("anthropic/messages-stream-cache-read.sse", chunks=[200] * 100,
                      drop_after=2500),
    )  # fmt: skip
    with pytest.raises(anthropic.APIError):
        _anthropic_chat(gateway, stream=True)
    raw = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "ant/claude", "max_tokens": 10, "messages": USER, "stream": True},
    )
    events = sse_events(raw.content)
    assert events[0].event == "message_start"
    assert events[-1].event == "error"
    assert "message_stop" not in raw.text


def test_in_band_upstream_error_becomes_the_client_error_event(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openrouter/chat-stream-midstream-error.sse"),
    )
    with pytest.raises(openai.APIError) as error:
        list(
            gateway.openai().chat.completions.create(
                model="oai/minimax",
                messages=USER,
                stream=True,  # type: ignore[arg-type]
            )
        )
    assert "Token limit reached" in error.value.message
    with pytest.raises(anthropic.APIError) as anthropic_error:
        _anthropic_chat(gateway, stream=True, model="oai/minimax")
    assert "Token limit reached" in str(anthropic_error.value)


def test_an_upstream_that_echoes_its_key_does_not_leak_it(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    echo = {"error": {"message": f"Invalid key {UPSTREAM_OPENAI_KEY}", "type": "auth"}}
    upstream.route("POST", "/v1/chat/completions", Reply.json(echo, status=401))
    for stream in (False, True):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "oai/gpt-4o", "messages": USER, "stream": stream},
        )
        assert response.status_code == 401
        assert UPSTREAM_OPENAI_KEY not in response.text
        assert "Invalid key ***" in response.json()["error"]["message"]
    health = httpx.get(f"{gateway.url}/health").text
    assert "Invalid key ***" in health and UPSTREAM_OPENAI_KEY not in health


#: Keys of a shape no pattern knows: only the gateway knowing them can hide them.
ODD_OPENAI_KEY = "holdout:OAI.0123456789/abcdef"
ODD_ANTHROPIC_KEY = "sk-holdout-ANT-9876543210zyxw"


def _ledger_bytes(home: Path) -> bytes:
    """Everything SQLite wrote: the database and its WAL."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("usage.db*")))


def test_no_key_reaches_the_ledger_health_or_a_client_whole_or_cut(
    make_gateway: Callable[..., Gateway],
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    monkeypatch.setenv("TEST_OAI_KEY", ODD_OPENAI_KEY)
    monkeypatch.setenv("TEST_ANT_KEY", ODD_ANTHROPIC_KEY)
    home = Path(os.environ["MODELPORT_HOME"])
    assert not home.exists()
    gateway = make_gateway(ledger=None)  # the configured ledger: SQLite under MODELPORT_HOME
    # A 401 that quotes the key whole, and an in-band error that quotes a cut of it.
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": f"bad key {ODD_OPENAI_KEY}"}}, status=401),
    )
    cut = ODD_ANTHROPIC_KEY[:14] + "..."  # "sk-holdout-ANT...": too short for any pattern
    in_band = (
        "event: message_start\n"
        'data: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
        '"content":[],"model":"c","usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
        "event: error\n"
        'data: {"type":"error","error":{"type":"authentication_error",'
        f'"message":"key {cut}"}}}}\n\n'
    )
    upstream.route(
        "POST", "/v1/messages", Reply(body=in_band.encode(), content_type="text/event-stream")
    )
    seen = []
    for stream in (False, True):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "oai/gpt-4o", "messages": USER, "stream": stream},
        )
        seen.append(response.text)
        response = httpx.post(
            f"{gateway.url}/v1/messages",
            json={"model": "ant/c", "max_tokens": 5, "messages": USER, "stream": stream},
        )
        seen.append(response.text)
    seen.append(httpx.get(f"{gateway.url}/health").text)
    ledger = gateway.app.state.ledger
    deadline = time.monotonic() + 5
    while len(ledger.recent(10)) < 4:
        assert time.monotonic() < deadline, "ledger records missing"
        ledger.flush(timeout=1)
    errors = [record.error or "" for record in ledger.recent(10)]
    assert all(errors) and any("bad key ***" in e for e in errors), errors
    assert any("key ***" in e for e in errors)
    seen.extend(errors)
    for text in seen:
        assert ODD_OPENAI_KEY not in text
        assert ODD_OPENAI_KEY[:8] not in text and ODD_ANTHROPIC_KEY[:8] not in text, text
    stored = _ledger_bytes(home)
    assert ODD_OPENAI_KEY[:8].encode() not in stored
    assert ODD_ANTHROPIC_KEY[:8].encode() not in stored
    # MODELPORT_HOME and the ledger's files are their owner's alone.
    assert home.stat().st_mode & 0o777 == 0o700
    files = sorted(home.glob("usage.db*"))
    assert [f.name for f in files][:1] == ["usage.db"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), [
        (f.name, oct(f.stat().st_mode)) for f in files
    ]
    assert any(f.name == "usage.db-wal" for f in files)
