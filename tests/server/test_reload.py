"""Configuration changes reach a running gateway (``server/_reload.py``): file edits, keys,
``POST /admin/reload``, SIGHUP; in-flight requests finish on the settings they started with."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.auth.keys import set_key
from modelport.config import load_config
from modelport.server._reload import ConfigReloader
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway, GatewayFactory

STREAM = "openai/chat-stream-text-include-usage.sse"
CHAT = "/v1/chat/completions"


def _connection(name: str, upstream: FakeUpstream, extra: str = "") -> str:
    return f'[connections.{name}]\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n{extra}\n'


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    home = Path(os.environ["MODELPORT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home / "config.toml"


@pytest.fixture
def second_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def start(gateway_factory: GatewayFactory, config_file: Path) -> Callable[..., Gateway]:
    """A gateway over ``config.toml`` with a reloader that polls it every 50 ms."""

    def make(text: str, *, interval: float | None = 0.05, **options: Any) -> Gateway:
        config_file.write_text(text)
        reloader = ConfigReloader(
            load_config, watch=[config_file, config_file.parent / "keys.json"], interval=interval
        )
        options.setdefault("plugin_host", False)
        options.setdefault("ledger", False)
        app = create_app(load_config(), reloader=reloader, **options)
        return gateway_factory(app)

    return make


def _write(path: Path, text: str) -> None:
    # Another size as well as another mtime: a stat poll sees it whatever the clock's grain.
    path.write_text(text)


def _chat(gateway: Gateway, model: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{CHAT}",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change never reached the gateway"
        time.sleep(0.02)


def _health(gateway: Gateway) -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/health", timeout=5).json()


def test_an_edited_config_file_reaches_the_running_gateway(
    start: Callable[..., Gateway],
    config_file: Path,
    upstream: FakeUpstream,
    second_upstream: FakeUpstream,
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    second_upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream))
    assert _chat(gateway, "b/m").status_code == 404

    _write(config_file, _connection("a", upstream) + _connection("b", second_upstream))

    _until(lambda: _chat(gateway, "b/m").status_code == 200)
    assert len(second_upstream.requests) == 1
    assert [c["name"] for c in _health(gateway)["connections"]] == ["a", "b"]


def test_the_admin_route_reloads_at_once(
    start: Callable[..., Gateway], config_file: Path, upstream: FakeUpstream
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream), interval=None)  # no polling: only the route
    _write(config_file, _connection("a", upstream, "temperature = 0.3"))

    answer = httpx.post(f"{gateway.url}/admin/reload", timeout=10)

    assert answer.status_code == 200, answer.text
    assert answer.json()["reloaded"] is True
    assert answer.json()["config"]["state"] == "ok"
    assert _chat(gateway, "a/m").status_code == 200
    assert upstream.requests[-1].json()["temperature"] == 0.3


def test_a_stored_key_reaches_the_running_gateway(
    start: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream))
    assert _chat(gateway, "a/m").status_code == 200
    assert upstream.requests[-1].headers["authorization"] == "Bearer modelport"

    set_key("a", "sk-new-key-0123456789")  # the key file here: the tests' keyring is null

    def answered_with_the_key() -> bool:
        _chat(gateway, "a/m")
        return upstream.requests[-1].headers["authorization"] == "Bearer sk-new-key-0123456789"

    _until(answered_with_the_key)


def test_a_request_in_flight_finishes_on_the_settings_it_started_with(
    start: Callable[..., Gateway],
    config_file: Path,
    upstream: FakeUpstream,
    second_upstream: FakeUpstream,
) -> None:
    # About three seconds of stream: 8.7 kB in 300-byte writes, 0.1 s apart.
    upstream.route("POST", CHAT, Reply.fixture(STREAM, chunks=[300] * 30, chunk_delay=0.1))
    second_upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream))
    old_router = gateway.app.state.router
    chunks: list[bytes] = []
    started = threading.Event()

    def stream() -> None:
        body = {"model": "a/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", f"{gateway.url}{CHAT}", json=body, timeout=30) as response:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(10)

    # The connection now points elsewhere; the stream that began keeps its upstream.
    _write(config_file, _connection("a", second_upstream))
    _until(lambda: gateway.app.state.router is not old_router)
    assert old_router.active_calls == 1
    assert _chat(gateway, "a/m").status_code == 200
    assert len(second_upstream.requests) == 1

    reader.join(30)
    body = b"".join(chunks)
    assert body.rstrip().endswith(b"data: [DONE]")
    assert len(upstream.requests) == 1
    # The replaced router closes once its last stream ended.
    _until(lambda: not gateway.app.state.reloader._retired)
    assert old_router.active_calls == 0


def test_a_config_that_no_longer_loads_keeps_the_last_good_one_and_says_why(
    start: Callable[..., Gateway],
    config_file: Path,
    upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream))
    caplog.set_level(logging.WARNING, logger="modelport.server")

    _write(config_file, _connection("a", upstream) + "temprature = 0.2\n")

    _until(lambda: _health(gateway)["config"]["state"] == "stale")
    health = _health(gateway)
    assert health["status"] == "degraded"
    assert "unknown key 'temprature'" in health["config"]["error"]
    assert "Did you mean 'temperature'" in health["config"]["error"]
    assert _chat(gateway, "a/m").status_code == 200  # the last good configuration runs
    assert any("keeping the last good one" in r.getMessage() for r in caplog.records)

    refused = httpx.post(f"{gateway.url}/admin/reload", timeout=10)
    assert refused.status_code == 409
    assert "temprature" in refused.json()["error"]["message"]

    _write(config_file, _connection("a", upstream, "temperature = 0.2"))
    _until(lambda: _health(gateway)["config"]["state"] == "ok")
    assert _health(gateway)["status"] == "ok"


def test_health_names_each_connections_upstream_without_secrets(
    start: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    text = (
        f'[connections.a]\nbase_url = "{upstream.url}/v1?api-key=sk-secret-0123456789"\n'
        '[connections.b]\ncompat = "ollama"\n'
        '[connections.c]\ncompat = "plugin:acme"\n'
    )
    gateway = start(text)
    rows = {row["name"]: row for row in _health(gateway)["connections"]}
    assert rows["a"]["upstream"] == f"{upstream.url}/v1"
    assert rows["b"]["upstream"] == "http://localhost:11434"
    assert rows["c"]["upstream"] == "plugin:acme"
    assert "sk-secret" not in httpx.get(f"{gateway.url}/health").text


def test_a_gateway_with_a_handed_in_config_reloads_only_keys(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway()
    answer = httpx.post(f"{gateway.url}/admin/reload", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {
        "reloaded": False,
        "restart_needed": [],
        "config": answer.json()["config"],
    }
    assert answer.json()["config"]["state"] == "static"


def test_the_admin_route_takes_the_admin_key(
    start: Callable[..., Gateway], upstream: FakeUpstream
) -> None:
    from modelport.server._keys import GatewayKeys

    gateway = start(_connection("a", upstream), keys=GatewayKeys("gw-key", "admin-key"))
    url = f"{gateway.url}/admin/reload"
    assert httpx.post(url, headers={"authorization": "Bearer gw-key"}).status_code == 401
    assert httpx.post(url, headers={"authorization": "Bearer admin-key"}).status_code == 200


def test_a_reload_that_changes_the_gateway_table_says_to_restart(
    start: Callable[..., Gateway], config_file: Path, upstream: FakeUpstream
) -> None:
    gateway = start(_connection("a", upstream), interval=None)
    _write(config_file, "[gateway]\nport = 5999\n" + _connection("a", upstream))
    answer = httpx.post(f"{gateway.url}/admin/reload", timeout=10).json()
    assert answer["reloaded"] is True
    assert answer["restart_needed"] == ["[gateway]"]


# --- modelport serve: SIGHUP and the file watch -------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_serve_reloads_on_sighup_and_on_a_file_change(
    tmp_path: Path, upstream: FakeUpstream, second_upstream: FakeUpstream
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(_connection("a", upstream))
    port = _free_port()
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "modelport", "serve", "--port", str(port), "--no-access-log"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def names() -> list[str]:
        try:
            return [c["name"] for c in httpx.get(f"{base}/health", timeout=1).json()["connections"]]
        except httpx.TransportError:
            return []

    try:
        _until(lambda: names() == ["a"], timeout=30)
        # The poll sees a new file within a second; SIGHUP does not wait for it.
        config.write_text(_connection("a", upstream) + _connection("b", second_upstream))
        process.send_signal(signal.SIGHUP)
        _until(lambda: names() == ["a", "b"], timeout=10)
        config.write_text(_connection("c", upstream))
        _until(lambda: names() == ["c"], timeout=10)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode()
    assert "configuration reloaded (SIGHUP)" in text
    assert "configuration reloaded (a watched file changed)" in text
    assert "Traceback" not in text


def test_a_connection_changed_through_the_admin_routes_goes_through_the_reload(
    start: Callable[..., Gateway], upstream: FakeUpstream, second_upstream: FakeUpstream
) -> None:
    # The web UI's PUT /admin/connections/{name} reloads as POST /admin/reload does.
    second_upstream.route("POST", CHAT, Reply.fixture(STREAM))
    gateway = start(_connection("a", upstream), interval=None)
    before = gateway.app.state.router

    body = {"compat": "openai", "base_url": f"{second_upstream.url}/v1", "max_retries": 0}
    answer = httpx.put(f"{gateway.url}/admin/connections/b", json=body, timeout=10)

    assert answer.status_code == 201, answer.text
    assert gateway.app.state.router is not before
    assert gateway.app.state.reloader.reloads == 1
    assert _chat(gateway, "b/m").status_code == 200
    refused = httpx.put(
        f"{gateway.url}/admin/connections/b", json={"options": {"temprature": 0.2}}, timeout=10
    )
    assert refused.status_code == 400
    assert "Did you mean 'temperature'" in refused.json()["error"]["message"]
