"""The CLI tells a running gateway to reload after it writes config.toml or a key
(``cli/_gateway.py``): one line says what changed and what the gateway did."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from modelport.config import load_config
from modelport.server._keys import GatewayKeys
from modelport.server._reload import ConfigReloader
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli
from tests.server.conftest import Gateway, GatewayFactory, gateway_factory  # noqa: F401

STREAM = "openai/chat-stream-text-include-usage.sse"


def _start(factory: GatewayFactory, home: Path, text: str, **options: object) -> Gateway:
    """A gateway over MODELPORT_HOME's config.toml that reloads only when told to."""
    path = home / "config.toml"
    path.write_text(text)
    app = create_app(
        load_config(),
        plugin_host=False,
        ledger=False,
        reloader=ConfigReloader(load_config),  # no file watch: only the CLI's call reloads
        **options,  # type: ignore[arg-type]
    )
    gateway = factory(app)
    # The CLI finds the gateway where config.toml says it listens.
    port = gateway.url.rsplit(":", 1)[1]
    path.write_text(f"[gateway]\nport = {port}\n{text}")
    return gateway


def _connection(upstream: FakeUpstream) -> str:
    return f'[connections.a]\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'


def test_keys_set_reaches_the_running_gateway(
    cli: RunCli,
    home: Path,
    upstream: FakeUpstream,
    gateway_factory: GatewayFactory,  # noqa: F811
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.fixture(STREAM))
    gateway = _start(gateway_factory, home, _connection(upstream))

    result = cli("keys", "set", "a", "--stdin", input="sk-fresh-0123456789\n")

    assert result.exit_code == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Stored the key for 'a' in the file {home / 'keys.json'} ")
    assert line.endswith(f"; the gateway at {gateway.url} picked it up.")
    body = {"model": "a/m", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body).status_code == 200
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-fresh-0123456789"


def test_local_on_and_connections_add_reach_the_running_gateway(
    cli: RunCli,
    home: Path,
    upstream: FakeUpstream,
    gateway_factory: GatewayFactory,  # noqa: F811
) -> None:
    gateway = _start(gateway_factory, home, _connection(upstream))

    def names() -> list[str]:
        return [c["name"] for c in httpx.get(f"{gateway.url}/health").json()["connections"]]

    on = cli("local", "on", f"{upstream.url}/v1", "llama3.1:8b")
    assert on.exit_code == 0, on.stderr
    assert on.stderr.rstrip().endswith(f"; the gateway at {gateway.url} picked it up.")
    assert names() == ["a", "local"]

    added = cli("connections", "add", "work", "--compat", "openai", "--base-url", "http://x/v1")
    assert added.exit_code == 0, added.stderr
    assert added.stderr.splitlines()[0] == (
        f"Added connection 'work'; the gateway at {gateway.url} picked it up."
    )
    assert names() == ["a", "local", "work"]


def test_a_gateway_that_refuses_the_reload_is_reported_in_the_same_line(
    cli: RunCli,
    home: Path,
    upstream: FakeUpstream,
    gateway_factory: GatewayFactory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = _start(
        gateway_factory, home, _connection(upstream), keys=GatewayKeys(None, "admin-secret")
    )
    monkeypatch.delenv("MODELPORT_ADMIN_KEY", raising=False)

    result = cli("local", "set", "http://127.0.0.1:1234")

    assert result.exit_code == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("Local server set to http://127.0.0.1:1234/v1")
    assert f"; the gateway at {gateway.url} did not reload (HTTP 401: " in line
    assert "admin-secret" not in line

    monkeypatch.setenv("MODELPORT_ADMIN_KEY", "admin-secret")
    assert "picked it up" in cli("local", "set", "http://127.0.0.1:1235").stderr


def test_without_a_running_gateway_nothing_more_is_said(cli: RunCli, home: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (home / "config.toml").write_text(f"[gateway]\nport = {port}\n")

    result = cli("local", "set", "http://127.0.0.1:1234")

    assert result.stderr == (
        "Local server set to http://127.0.0.1:1234/v1; "
        "`modelport local on MODEL` makes its model the default.\n"
    )
    assert os.environ.get("MODELPORT_ADMIN_KEY") is None
