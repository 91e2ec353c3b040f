"""The admin routes the web UI reads, called as a script would: connections, models, usage,
plugin logs, sign-in, and the guard's Origin rule for state-changing admin requests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from modelport.config import load_config
from modelport.server._keys import GatewayKeys
from modelport.server.app import create_app
from modelport.server.openapi import openapi_document
from modelport.testing import FakeUpstream, Reply

SECRET = "sk-stored-through-admin-0123456789"
SAME_ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def home() -> Path:
    home = Path(os.environ["MODELPORT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.route("GET", "/v1/models", Reply.json({"object": "list", "data": [{"id": "m1"}]}))
        yield fake


@pytest.fixture
def client(home: Path, upstream: FakeUpstream) -> Iterator[TestClient]:
    (home / "config.toml").write_text(
        "# my notes: keep them\n"
        'default_model = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    app = create_app(load_config(), plugin_host=False, ledger=False, allowed_hosts=["testserver"])
    with TestClient(app) as test_client:
        yield test_client


def test_every_admin_route_is_in_the_openapi_document() -> None:
    from modelport.server import admin, admin_connections, admin_models, admin_usage

    paths = openapi_document()["paths"]
    for module in (admin, admin_connections, admin_models, admin_usage):
        for route in module.routes():
            for method in route.methods - {"HEAD"}:  # type: ignore[attr-defined]
                assert method.lower() in paths[route.path], (method, route.path)  # type: ignore[attr-defined]


def test_put_creates_a_connection_keeps_comments_and_stores_the_key_write_only(
    client: TestClient, home: Path, upstream: FakeUpstream
) -> None:
    body = {"compat": "openai", "base_url": f"{upstream.url}/v1", "max_retries": 0, "key": SECRET}
    created = client.put("/admin/connections/work", json=body, headers=SAME_ORIGIN)
    assert created.status_code == 201, created.text
    assert created.json()["key"] == {"set": True, "source": "stored"}
    assert SECRET not in created.text
    config = (home / "config.toml").read_text()
    assert config.startswith("# my notes: keep them") and "[connections.work]" in config
    assert SECRET not in config
    assert json.loads((home / "keys.json").read_text())["keys"]["work"] == SECRET
    listing = client.get("/admin/connections")
    assert SECRET not in listing.text
    rows = {row["name"]: row for row in listing.json()["connections"]}
    assert rows["work"]["key"]["set"] and not rows["up"]["key"]["set"]
    # The running gateway uses the new connection and its key at once.
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openai/chat-stream-text-include-usage.sse"),
    )
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "work/m1", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200, chat.text
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    # A change names only what changes; clear_key forgets the key.
    changed = client.put(
        "/admin/connections/work", json={"timeout": 9, "clear_key": True}, headers=SAME_ORIGIN
    )
    assert changed.status_code == 200 and changed.json()["timeout"] == 9
    assert changed.json()["key"]["set"] is False
    assert "work" not in json.loads((home / "keys.json").read_text())["keys"]
    assert client.delete("/admin/connections/work", headers=SAME_ORIGIN).status_code == 200
    assert "[connections.work]" not in (home / "config.toml").read_text()
    assert client.delete("/admin/connections/work", headers=SAME_ORIGIN).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"base_url": "http://x/v1"}, "needs a compat"),
        ({"compat": "soap"}, "compat must be one of"),
        ({"compat": "openai"}, "needs a base URL"),
        ({"compat": "openai", "base_url": "http://user:pw@x/v1"}, "base_url"),
        ({"compat": "openai", "base_url": "http://x/v1", "options": {"timeout": 3}}, "setting"),
        ({"compat": "openai", "api_key": "sk-x"}, "not a connection update"),
    ],
)
def test_put_refuses_what_config_would_not_take(
    client: TestClient, home: Path, body: dict[str, object], message: str
) -> None:
    before = (home / "config.toml").read_text()
    answer = client.put("/admin/connections/bad", json=body, headers=SAME_ORIGIN)
    assert answer.status_code == 400 and message in answer.json()["error"]["message"]
    assert (home / "config.toml").read_text() == before


def test_the_test_route_runs_the_doctors_checks(client: TestClient, upstream: FakeUpstream) -> None:
    report = client.post("/admin/connections/up/test", headers=SAME_ORIGIN).json()
    assert report["ok"] is True
    texts = [check["text"] for check in report["checks"]]
    assert "up: reachable, 1 models" in texts
    assert "up: default model 'm1' is available" in texts
    upstream.route("GET", "/v1/models", Reply.json({"error": {"message": "bad key"}}, 401))
    failed = client.post("/admin/connections/up/test", headers=SAME_ORIGIN).json()
    assert failed["ok"] is False
    problem = next(c for c in failed["checks"] if c["level"] == "problem")
    assert "key missing or refused" in problem["text"]
    assert problem["fix"] == "`modelport keys set up`"
    assert client.post("/admin/connections/nope/test", headers=SAME_ORIGIN).status_code == 404


def test_models_are_grouped_by_connection_with_their_details(client: TestClient) -> None:
    data = client.get("/admin/models").json()
    assert data["default_model"] == "up/m1"
    (group,) = data["connections"]
    assert group["connection"] == "up" and group["compat"] == "openai" and group["error"] is None
    (model,) = group["models"]
    assert model["address"] == "up/m1"
    assert set(model["capabilities"]) == {
        "tools",
        "vision",
        "reasoning",
        "prompt_cache",
        "streaming",
    }


def test_usage_without_a_ledger_says_so(client: TestClient) -> None:
    answer = client.get("/admin/usage")
    assert answer.status_code == 503 and "without a usage ledger" in answer.text


def test_a_page_on_another_port_cannot_change_settings_of_a_keyless_gateway(
    client: TestClient, home: Path
) -> None:
    before = (home / "config.toml").read_text()
    elsewhere = {"origin": "http://127.0.0.1:3000"}
    body = {"compat": "ollama"}
    assert client.put("/admin/connections/x", json=body, headers=elsewhere).status_code == 403
    assert client.post("/plugins/load", headers=elsewhere).status_code == 403
    assert (home / "config.toml").read_text() == before
    # Reading is fine, and so is chatting from a local page (the API's own rule).
    assert client.get("/admin/connections", headers=elsewhere).status_code == 200
    assert client.put("/admin/connections/x", json=body, headers=SAME_ORIGIN).status_code == 201


def test_sign_in_is_not_needed_on_a_keyless_loopback_gateway(client: TestClient) -> None:
    answer = client.post("/ui/login", json={"key": ""}, headers=SAME_ORIGIN)
    assert answer.json() == {"signed_in": True, "needed": False}
    assert "set-cookie" not in answer.headers
    page = client.get("/")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )


def test_beyond_loopback_without_an_admin_key_the_ui_stays_closed(home: Path) -> None:
    app = create_app(
        load_config(),
        plugin_host=False,
        ledger=False,
        host="0.0.0.0",
        keys=GatewayKeys("gateway-key-0123456789"),
    )
    with TestClient(app) as client:
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/ui/login"
        answer = client.post(
            "/ui/login", json={"key": "gateway-key-0123456789"}, headers=SAME_ORIGIN
        )
        assert answer.status_code == 403 and "admin key" in answer.json()["error"]["message"]
        assert "set-cookie" not in answer.headers
