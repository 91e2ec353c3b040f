"""The admin routes on a bare Starlette app, with and without a plugin host."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from modelport.auth.keys import key_storage, keys_path, set_key
from modelport.config import parse_config
from modelport.plugin_host.discovery import PluginDir
from modelport.server.admin import routes
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.plugin_host.conftest import HostFactory, scripted, write_plugin
from tests.server.conftest import GatewayFactory


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_without_a_host_every_route_says_so() -> None:
    async with _client(Starlette(routes=routes())) as client:
        for method, path in (("GET", "/plugins"), ("POST", "/plugins/x/start")):
            response = await client.request(method, path)
            assert response.status_code == 503
            assert "without a plugin host" in response.json()["error"]["message"]


async def test_routes_drive_the_host(make_host: HostFactory, home: Path, tmp_path: Path) -> None:
    write_plugin(home / "plugins", "p", scripted("ok"))
    project = tmp_path / "proj" / ".modelport" / "plugins"
    write_plugin(project, "untrusted", scripted("ok", "u"))
    app = Starlette(routes=routes())
    app.state.plugin_host = make_host(PluginDir(project, "project"))
    async with _client(app) as client:
        listed = (await client.post("/plugins/load")).json()["plugins"]
        assert {p["name"]: p["state"] for p in listed} == {"p": "loaded", "untrusted": "loaded"}

        refused = await client.post("/plugins/untrusted/start")
        assert refused.status_code == 409 and "not trusted" in refused.json()["error"]["message"]

        started = (await client.post("/plugins/p/start")).json()
        assert started["state"] == "running" and started["restarts"] == 0
        detail = (await client.get("/plugins/p")).json()
        assert detail["providers"][0]["models"] == ["m1"] and isinstance(detail["stderr"], list)
        assert (await client.post("/plugins/p/stop")).json()["state"] == "stopped"
        assert (await client.post("/plugins/nope/stop")).status_code == 404


class _Router:
    """Stands in for the router: counts how often stored keys were dropped."""

    def __init__(self) -> None:
        self.forgotten = 0

    def forget_keys(self) -> None:
        self.forgotten += 1


async def test_reload_rereads_stored_keys_even_without_a_host() -> None:
    app = Starlette(routes=routes())
    app.state.router = router = _Router()
    async with _client(app) as client:
        assert (await client.post("/plugins/load")).status_code == 503
        assert router.forgotten == 1
        await client.get("/plugins")
        assert router.forgotten == 1  # only the reload


def test_reload_makes_a_key_set_after_start_reach_the_upstream(
    gateway_factory: GatewayFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "gateway-home"
    (home / "plugins").mkdir(parents=True)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no project folder above
    body = {"model": "work/m", "messages": [{"role": "user", "content": "hi"}]}
    with FakeUpstream() as upstream:
        upstream.route(
            "POST", "/v1/chat/completions", Reply.fixture("openai/chat-completion-tool-call.json")
        )
        config = parse_config(
            f"[connections.work]\nbase_url = '{upstream.url}/v1'\nmax_retries = 0\n"
        )
        gateway = gateway_factory(create_app(config, ledger=False))
        chat = f"{gateway.url}/v1/chat/completions"

        assert httpx.post(chat, json=body).status_code == 200  # no key stored yet
        set_key("work", "sk-stored-after-start")
        assert key_storage().startswith("file ") and keys_path() == home / "keys.json"
        assert keys_path().exists()
        assert httpx.post(chat, json=body).status_code == 200  # the router read keys once

        assert httpx.post(f"{gateway.url}/plugins/load").status_code == 200
        assert httpx.post(chat, json=body).status_code == 200

        sent = [request.headers["authorization"] for request in upstream.requests]
        assert sent == ["Bearer modelport", "Bearer modelport", "Bearer sk-stored-after-start"]
