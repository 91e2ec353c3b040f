"""No secret goes astray: a gateway run with marker secrets everywhere, then swept for them.

The gateway (real uvicorn, real SQLite ledger, real plugin processes) serves:
``oai`` with a stored key and an upstream that quotes the key back in its 401
body (as OpenAI's "Incorrect API key provided: sk-…" does), ``envkey`` with a
key from the environment, ``down`` with a stored key and no server, ``corp``
logging in with OAuth as a confidential client (secret from the environment),
and two plugins: ``acme`` logging in with OAuth (the same confidential
client), ``keyed`` with a stored key.
The calls cover success, streaming, expiry, a 401 answered by a refresh, a
revoked login and refused keys. Then every log line (tracebacks included),
every body the SDK clients received, ``/health``, ``/plugins`` (with stderr
tails: the plugins print their ``providerConfig``), ``/metrics``, every
ledger row and every plugin's environment are searched for each key, access
token, refresh token and the client secret.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from modelport.auth.keys import set_key
from modelport.auth.login import login
from modelport.config import load_config, modelport_home
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.auth._oauth_server import OAuthTestServer
from tests.auth.conftest import Browser, oauth_config
from tests.auth.test_oauth_plugins import _install
from tests.server.conftest import Gateway, GatewayFactory

KEY_STORED = "sk-marker-stored-4f1b9c0d2e7a"
KEY_ENV = "sk-marker-envkey-81c3aa57d09e"
KEY_DOWN = "sk-marker-down-2b6e1f0c9d44"
KEY_PLUGIN = "sk-marker-plugin-6a0d3c8e1f27"
CLIENT_SECRET = "cs-marker-client-secret-93e1"

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = modelport_home()
    (home / "plugins").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("ENVKEY_KEY", KEY_ENV)
    monkeypatch.setenv("CORP_CLIENT_SECRET", CLIENT_SECRET)
    return home


@pytest.fixture
def oauth(home: Path) -> Iterator[OAuthTestServer]:
    with OAuthTestServer(client_secret=CLIENT_SECRET) as server:
        yield server


def _configure(home: Path, upstream: FakeUpstream, oauth: OAuthTestServer) -> None:
    (home / "config.toml").write_text(
        f"""
[connections.oai]
compat = "openai"
base_url = "{upstream.url}/v1"
max_retries = 0

[connections.envkey]
compat = "openai"
base_url = "{upstream.url}/v1"
api_key_env = "ENVKEY_KEY"
max_retries = 0

[connections.down]
compat = "anthropic"
base_url = "http://127.0.0.1:9"
max_retries = 0

[connections.corp]
compat = "openai"
base_url = "{oauth.url}/v1"
auth = "oauth"
max_retries = 0

[connections.corp.oauth]
{oauth.oauth_table(client_secret_env="CORP_CLIENT_SECRET")}

# The plugin's registration says where to log in; the user adds the client secret.
[connections.acme]
compat = "plugin:acme"

[connections.acme.oauth]
{oauth.oauth_table(client_secret_env="CORP_CLIENT_SECRET")}
"""
    )


async def _login_all(oauth: OAuthTestServer) -> None:
    for name, config in (
        ("corp", oauth_config(oauth, client_secret_env="CORP_CLIENT_SECRET")),
        ("acme", oauth_config(oauth, client_secret_env="CORP_CLIENT_SECRET")),
    ):
        browser = Browser()
        await login(name, config, show_url=lambda url: None, open_browser=browser)
        await asyncio.to_thread(browser.join)


def _wait_running(gateway: Gateway, *names: str) -> None:
    deadline = time.monotonic() + 20
    for name in names:
        while httpx.get(f"{gateway.url}/plugins/{name}").json()["state"] != "running":
            assert time.monotonic() < deadline, f"plugin {name} did not start"
            time.sleep(0.05)


def _ask(client: openai.OpenAI, model: str, seen: list[str], *, stream: bool = False) -> None:
    messages = [{"role": "user", "content": "hi"}]
    try:
        if stream:
            for chunk in client.chat.completions.create(
                model=model, messages=messages, stream=True
            ):
                seen.append(chunk.model_dump_json())
        else:
            seen.append(
                client.chat.completions.create(model=model, messages=messages).model_dump_json()
            )
    except openai.APIStatusError as exc:
        seen.append(exc.response.text)
        seen.append(str(exc))
    except openai.APIError as exc:  # an error event mid-stream
        seen.append(str(exc))
        seen.append(repr(getattr(exc, "body", None)))


def test_no_key_token_or_client_secret_appears_anywhere(
    home: Path,
    oauth: OAuthTestServer,
    upstream: FakeUpstream,
    gateway_factory: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _configure(home, upstream, oauth)
    _install(oauth, "acme")
    _install(oauth, "keyed")
    set_key("oai", KEY_STORED)
    set_key("down", KEY_DOWN)
    set_key("keyed", KEY_PLUGIN)
    upstream.route("POST", "/v1/chat/completions", Reply.json(COMPLETION))
    asyncio.run(_login_all(oauth))

    gateway = gateway_factory(create_app(load_config(), ledger=None))
    _wait_running(gateway, "acme-plugin", "keyed-plugin")
    seen: list[str] = []
    with gateway.openai(api_key="unused-client-key") as client:
        for model in ("oai/m", "envkey/m", "corp/corp-large", "acme/corp-large"):
            _ask(client, model, seen)
        _ask(client, "corp/corp-large", seen, stream=True)
        # The upstream refuses the stored key and quotes it back, as OpenAI does.
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.json(
                {"error": {"message": f"Incorrect API key provided: {KEY_STORED}.", "code": "x"}},
                status=401,
            ),
        )
        _ask(client, "oai/m", seen)
        _ask(client, "down/claude", seen)  # nothing listens: a network error
        _ask(client, "keyed/corp-large", seen)  # the key is refused upstream
        oauth.expire_access_tokens()  # a 401 answered by a refresh (corp) and (acme)
        _ask(client, "corp/corp-large", seen)
        _ask(client, "acme/corp-large", seen)
        oauth.revoke_all()  # the login dies: an AuthError saying `modelport login`
        oauth.expire_access_tokens()
        _ask(client, "corp/corp-large", seen, stream=True)
        _ask(client, "acme/corp-large", seen)
        for path in ("/health", "/plugins", "/metrics", "/v1/models"):
            seen.append(httpx.get(f"{gateway.url}{path}").text)
        plugins = httpx.get(f"{gateway.url}/plugins").json()["plugins"]
        environments = []
        for plugin in plugins:
            info = httpx.get(f"{gateway.url}/plugins/{plugin['name']}").json()
            seen.append(str(info))
            if info.get("pid"):
                environments.append(Path(f"/proc/{info['pid']}/environ").read_bytes().decode())
    gateway.stop()

    ledger = sqlite3.connect(home / "usage.db")
    rows = [
        repr(row) for table in _tables(ledger) for row in ledger.execute(f"SELECT * FROM {table}")
    ]
    ledger.close()
    # authlib's own debug lines are the test authorization server's, not the gateway's.
    logged = "\n".join(
        caplog.handler.format(record)
        for record in caplog.records
        if not record.name.startswith("authlib")
    )

    secrets = [KEY_STORED, KEY_ENV, KEY_DOWN, KEY_PLUGIN, CLIENT_SECRET]
    for token in oauth.state.tokens:
        secrets.append(token.access_token)
        if token.refresh_token:
            secrets.append(token.refresh_token)
    places = {
        "log lines": logged,
        "responses and error bodies": "\n".join(seen),
        "ledger rows": "\n".join(rows),
        "plugin environments": "\n".join(environments),
    }
    # The sweep looked at something real: calls answered, failed, were recorded and logged.
    assert "Hello from corp" in places["responses and error bodies"]
    assert "modelport login corp" in places["responses and error bodies"]
    assert "Incorrect API key provided" in places["responses and error bodies"]
    assert len(rows) >= 10 and len(environments) == 2
    assert "providerConfig" in places["responses and error bodies"]  # the stderr tails
    assert oauth.refreshes >= 2
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:12]}…) appears in the {where}"


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
