"""The guard before every route: foreign hosts and origins, non-JSON or oversized bodies, keys."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from modelport.server._errors import MAX_BODY_BYTES
from modelport.server._guard import GuardMiddleware
from modelport.server._keys import GatewayKeys
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway

GATEWAY_KEY = "gw-key-7f3a9c1e5b"
USER = [{"role": "user", "content": "hi"}]
MakeGateway = Callable[..., Gateway]


async def test_websockets_are_guarded_too() -> None:
    reached: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append("app")

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    guard = GuardMiddleware(app, GatewayKeys(GATEWAY_KEY))
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
            b"content-length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)
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
        for _ in range(MAX_BODY_BYTES // len(piece) + 1):
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


async def test_remembered_host_and_content_type_answers_stay_right() -> None:
    # The guard remembers its answer per raw Host and Content-Type value; each value
    # keeps its own answer, and past the memory's size a value is still judged.
    from modelport.server import _guard

    reached: list[bytes] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        reached.append(dict(scope["headers"])[b"host"])  # type: ignore[call-overload]

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}"}

    guard = GuardMiddleware(app, GatewayKeys(None))

    async def call(host: bytes, content_type: bytes = b"application/json") -> int | None:
        sent.clear()
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [
                (b"host", host),
                (b"content-type", content_type),
                (b"content-length", b"2"),
            ],
        }
        await guard(scope, receive, send)  # type: ignore[arg-type]
        return sent[0]["status"] if sent else None  # type: ignore[return-value]

    for _ in range(2):
        assert await call(b"127.0.0.1:8000") is None
        assert await call(b"evil.example") == 403
        assert await call(b"127.0.0.1:8000", b"text/plain") == 415
        assert await call(b"127.0.0.1:8000", b"Application/JSON; charset=utf-8") is None
    for index in range(_guard._REMEMBERED + 10):
        assert await call(b"evil%d.example" % index) == 403
        assert await call(b"localhost:%d" % index) is None
    assert await call(b"evil.example") == 403
    assert await call(b"127.0.0.1:8000") is None
    assert await call(b"127.0.0.1:8000", b"text/plain") == 415
