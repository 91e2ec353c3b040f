"""Who may call: loopback needs no key, beyond it a gateway key; admin routes their own."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest
from typer.testing import CliRunner

from modelport.cli import build_app
from modelport.errors import ConfigError
from modelport.server import _auth
from modelport.server._auth import GatewayKeys, check_binding, is_loopback, resolve_keys
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway

GATEWAY_KEY = "gw-key-7f3a9c1e5b"
ADMIN_KEY = "admin-key-2d8e4f6a0c"
USER = [{"role": "user", "content": "hi"}]
MakeGateway = Callable[..., Gateway]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
     ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_without_a_key_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="MODELPORT_GATEWAY_KEY"):
        check_binding("0.0.0.0", GatewayKeys())
    with pytest.raises(ConfigError):
        create_app(router=None, host="0.0.0.0", plugin_host=False, ledger=False)
    check_binding("0.0.0.0", GatewayKeys(GATEWAY_KEY))
    check_binding("127.0.0.1", GatewayKeys())


def test_serve_refuses_non_loopback_without_a_key() -> None:
    result = CliRunner().invoke(build_app(), ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    assert "needs a key" in result.output
    assert "MODELPORT_GATEWAY_KEY" in result.output


def test_keys_come_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport.config import parse_config

    monkeypatch.setenv("MODELPORT_GATEWAY_KEY", "from-env")
    assert resolve_keys(parse_config("")).gateway == b"from-env"
    monkeypatch.setenv("MY_GW_KEY", "from-key-env")
    config = parse_config('[gateway]\nkey_env = "MY_GW_KEY"\nadmin_key_env = "MY_GW_KEY"\n')
    keys = resolve_keys(config)
    assert keys.gateway == b"from-key-env" and keys.admin == b"from-key-env"
    assert "from-key-env" not in repr(keys)


def _keyed(make_gateway: MakeGateway, **options: object) -> Gateway:
    options.setdefault("keys", GatewayKeys(GATEWAY_KEY, ADMIN_KEY))
    return make_gateway(**options)


def test_requests_without_the_key_get_401_in_each_sdk_shape(
    make_gateway: MakeGateway, upstream: FakeUpstream
) -> None:
    gateway = _keyed(make_gateway, host="0.0.0.0")
    missing = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"model": "oai/x", "messages": USER}
    )
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert missing.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError) as wrong:
        gateway.openai(api_key="not-the-key").chat.completions.create(
            model="oai/x",
            messages=USER,  # type: ignore[arg-type]
        )
    assert "not-the-key" not in str(wrong.value.body) and GATEWAY_KEY not in wrong.value.message
    with pytest.raises(anthropic.AuthenticationError) as anthropic_wrong:
        gateway.anthropic(api_key="not-the-key").messages.create(
            model="ant/x",
            max_tokens=5,
            messages=USER,  # type: ignore[arg-type]
        )
    assert anthropic_wrong.value.body["type"] == "error"  # type: ignore[index]
    assert not upstream.requests, "refused requests must not reach the upstream"


def test_the_right_key_is_accepted_as_bearer_or_x_api_key(
    make_gateway: MakeGateway, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(_auth.hmac, "compare_digest", spy)
    gateway = _keyed(make_gateway, host="0.0.0.0")
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    gateway.openai(api_key=GATEWAY_KEY).chat.completions.create(model="oai/x", messages=USER)  # type: ignore[arg-type]
    gateway.anthropic(api_key=GATEWAY_KEY).messages.create(
        model="ant/x",
        max_tokens=5,
        messages=USER,  # type: ignore[arg-type]
    )
    assert len(compared) >= 2, "keys are compared with hmac.compare_digest"
    # Digests, not the keys: equal lengths whatever was sent, so timing tells no length.
    assert all(len(a) == len(b) == 32 for a, b in compared)
    assert all(GATEWAY_KEY.encode() not in (a, b) for a, b in compared)
    # The client's key is for the gateway only: the upstream gets its own.
    assert GATEWAY_KEY not in str(upstream.requests[0].headers)
    assert GATEWAY_KEY not in str(upstream.requests[1].headers)


def test_a_configured_key_applies_on_loopback_too(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(keys=GatewayKeys(GATEWAY_KEY))
    assert httpx.get(f"{gateway.url}/health").status_code == 401
    ok = httpx.get(f"{gateway.url}/health", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert ok.status_code == 200


def test_admin_routes_take_the_admin_key(make_gateway: MakeGateway) -> None:
    gateway = _keyed(make_gateway, host="0.0.0.0")
    as_gateway = httpx.get(f"{gateway.url}/plugins", headers={"x-api-key": GATEWAY_KEY})
    assert as_gateway.status_code == 401
    assert GATEWAY_KEY not in as_gateway.text
    as_admin = httpx.get(f"{gateway.url}/plugins", headers={"x-api-key": ADMIN_KEY})
    assert as_admin.status_code == 503  # this test gateway runs without a plugin host
    # The admin key is not a gateway key.
    chat = httpx.get(f"{gateway.url}/v1/models", headers={"x-api-key": ADMIN_KEY})
    assert chat.status_code == 401


def test_admin_routes_are_closed_beyond_loopback_without_an_admin_key(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(keys=GatewayKeys(GATEWAY_KEY), host="0.0.0.0")
    response = httpx.post(
        f"{gateway.url}/plugins/load", headers={"authorization": f"Bearer {GATEWAY_KEY}"}
    )
    assert response.status_code == 403
    assert "MODELPORT_ADMIN_KEY" in response.json()["error"]["message"]


def test_admin_routes_on_loopback_without_keys_are_open(make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    assert httpx.get(f"{gateway.url}/plugins").status_code == 503


def test_keys_never_reach_the_logs(
    make_gateway: MakeGateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.server.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY

    caplog.set_level(logging.DEBUG)
    gateway = _keyed(make_gateway, host="0.0.0.0")
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "nope"}}, status=401),
        Reply.fixture("openai/chat-stream-text-include-usage.sse", drop_after=900),
    )
    client = gateway.openai(api_key=GATEWAY_KEY)
    for _ in range(2):
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model="oai/x", messages=USER, stream=True))  # type: ignore[arg-type]
    httpx.get(f"{gateway.url}/v1/models?key={GATEWAY_KEY}", headers={"x-api-key": "wrong-key"})
    httpx.get(f"{gateway.url}/plugins", headers={"x-api-key": ADMIN_KEY})
    deadline = time.monotonic() + 3
    while sum(r.name == "modelport.access" for r in caplog.records) < 4:
        assert time.monotonic() < deadline, "access log lines missing"
        time.sleep(0.01)
    # The test's own HTTP client logs its URLs; everything the gateway logged is checked.
    served = [r for r in caplog.records if r.name.startswith(("modelport", "uvicorn"))]
    assert served
    for secret in (
        GATEWAY_KEY,
        ADMIN_KEY,
        "wrong-key",
        UPSTREAM_OPENAI_KEY,
        UPSTREAM_ANTHROPIC_KEY,
    ):
        for record in served:
            assert secret not in record.getMessage()
            assert secret not in str(record.__dict__)


async def test_websockets_are_guarded_too() -> None:
    reached: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append("app")

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    guard = _auth.AuthMiddleware(app, GatewayKeys(GATEWAY_KEY))
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-api-key", b"wrong")]}
    await guard(scope, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}] and not reached
    scope["headers"] = [(b"x-api-key", GATEWAY_KEY.encode())]
    await guard(scope, receive, send)  # type: ignore[arg-type]
    assert reached == ["app"]


# --- web pages: cross-site requests and DNS rebinding ---------------------------------------

EVIL = "http://evil.example"


def _chat_body() -> bytes:
    return b'{"model": "oai/x", "messages": [{"role": "user", "content": "hi"}]}'


def test_a_cross_site_text_plain_post_is_refused(
    make_gateway: MakeGateway, upstream: FakeUpstream
) -> None:
    # What a page can send with fetch(..., {mode: "no-cors"}) or a form: no preflight.
    gateway = make_gateway()
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    for path in ("/v1/chat/completions", "/v1/messages"):
        response = httpx.post(
            f"{gateway.url}{path}",
            content=_chat_body(),
            headers={"content-type": "text/plain;charset=UTF-8", "origin": EVIL},
        )
        assert response.status_code == 403, response.text
        assert EVIL not in response.text
    anthropic_shape = response.json()
    assert anthropic_shape["type"] == "error" and anthropic_shape["error"]["message"]
    # Admin routes too: a page must not rescan and start plugins.
    load = httpx.post(f"{gateway.url}/plugins/load", headers={"origin": EVIL})
    assert load.status_code == 403
    # A sandboxed frame or a file: page sends "null".
    null = httpx.get(f"{gateway.url}/v1/models", headers={"origin": "null"})
    assert null.status_code == 403
    assert not upstream.requests


def test_a_non_json_body_is_415_in_the_clients_shape(
    make_gateway: MakeGateway, upstream: FakeUpstream
) -> None:
    gateway = make_gateway()
    for path, content_type in (
        ("/v1/chat/completions", "text/plain"),
        ("/v1/chat/completions", "application/x-www-form-urlencoded"),
        ("/v1/messages", "multipart/form-data; boundary=x"),
        ("/v1/messages", None),
    ):
        # httpx sends raw content without a content type unless told one.
        headers = {"content-type": content_type} if content_type else {}
        response = httpx.post(f"{gateway.url}{path}", content=_chat_body(), headers=headers)
        assert response.status_code == 415, (path, content_type, response.text)
        body = response.json()
        if path == "/v1/messages":
            assert body["type"] == "error" and "application/json" in body["error"]["message"]
        else:
            assert "application/json" in body["error"]["message"]
    ok = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b"{}",
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 400  # past the guard: the parser says what is missing
    # A POST without a body needs no content type (the admin routes take none).
    assert httpx.post(f"{gateway.url}/plugins/load").status_code == 503
    assert not upstream.requests


def test_a_rebinding_host_is_refused(make_gateway: MakeGateway, upstream: FakeUpstream) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1: same origin to the
    # browser, so it may read the answers; only the Host header gives it away.
    gateway = make_gateway()
    port = gateway.url.rsplit(":", 1)[1]
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    rebound = {"host": f"evil.example:{port}"}
    assert httpx.get(f"{gateway.url}/v1/models", headers=rebound).status_code == 403
    assert httpx.get(f"{gateway.url}/health", headers=rebound).status_code == 403
    refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=_chat_body(),
        headers={
            **rebound,
            "content-type": "application/json",
            "origin": f"http://evil.example:{port}",
        },
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"]
    assert not upstream.requests
    # Loopback names, with or without a port, and same-origin pages are fine.
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}"):
        assert httpx.get(f"{gateway.url}/health", headers={"host": host}).status_code == 200
    same_origin = {"host": f"localhost:{port}", "origin": f"http://localhost:{port}"}
    assert httpx.get(f"{gateway.url}/health", headers=same_origin).status_code == 200
    local_page = {"origin": "http://127.0.0.1:3000"}
    assert httpx.get(f"{gateway.url}/health", headers=local_page).status_code == 200


def test_the_bound_host_name_and_allowed_hosts_are_accepted(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        keys=GatewayKeys(GATEWAY_KEY), host="gw.internal", allowed_hosts=["proxy.example"]
    )
    key = {"authorization": f"Bearer {GATEWAY_KEY}"}
    for host, status in (
        ("gw.internal:4848", 200),
        ("proxy.example", 200),
        ("localhost", 200),
        ("evil.example", 403),
    ):
        response = httpx.get(f"{gateway.url}/health", headers={**key, "host": host})
        assert response.status_code == status, host


def test_allowed_hosts_come_from_the_gateway_config_too(make_gateway: MakeGateway) -> None:
    gateway = make_gateway('[gateway]\nallowed_hosts = ["llm.example.internal"]\n')
    assert httpx.get(f"{gateway.url}/health", headers={"host": "llm.example.internal"}).is_success
    assert httpx.get(f"{gateway.url}/health", headers={"host": "evil.example"}).status_code == 403


def test_sdk_calls_are_unaffected(make_gateway: MakeGateway, upstream: FakeUpstream) -> None:
    gateway = make_gateway()
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    reply = gateway.openai().chat.completions.create(model="oai/x", messages=USER)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    message = gateway.anthropic().messages.create(model="ant/x", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert message.content
    localhost = gateway.url.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{localhost}/health").status_code == 200


def test_a_body_over_the_limit_is_413_in_the_clients_shape(
    make_gateway: MakeGateway, upstream: FakeUpstream
) -> None:
    import socket

    gateway = make_gateway()
    host, port = gateway.url.removeprefix("http://").split(":")
    # A declared length over the limit is refused before a byte of the body is read.
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (_auth.MAX_BODY_BYTES + 1)
        )
        answer = b""
        while b"}}" not in answer:  # the head, then the JSON body
            data = sock.recv(65536)
            assert data, answer
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b'"type":"error"' in answer.replace(b" ", b"")

    # A chunked body (no declared length) is cut off once it passes the limit.
    def chunks() -> object:
        piece = b" " * (1024 * 1024)
        for _ in range(_auth.MAX_BODY_BYTES // len(piece) + 1):
            yield piece

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "MiB" in response.json()["error"]["message"]
    assert not upstream.requests
