"""The admin routes on a bare Starlette app, with and without a plugin host."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette

from modelport.plugins.discovery import PluginDir
from modelport.server.admin import routes
from tests.plugins.conftest import HostFactory, scripted, write_plugin


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
