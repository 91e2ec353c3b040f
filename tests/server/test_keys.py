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
from modelport.server import _keys
from modelport.server._keys import GatewayKeys, check_binding, is_loopback, resolve_keys
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

    monkeypatch.setattr(_keys.hmac, "compare_digest", spy)
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
    deadline = time.monotonic() + 10
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
