"""A gateway bound beyond loopback: the web UI opens only with the admin key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.testing import FakeUpstream
from tests.server.ui.conftest import (
    ADMIN_KEY,
    GATEWAY_KEY,
    Served,
    screenshot,
    start_serve,
    stop_serve,
    streamed_reply,
)


@pytest.fixture
def exposed(home: Path) -> Iterator[Served]:
    # 0.0.0.0: every interface, the case the sign-in exists for (the test talks to 127.0.0.1).
    gateway = start_serve(
        home,
        host="0.0.0.0",
        env={"MODELPORT_GATEWAY_KEY": GATEWAY_KEY, "MODELPORT_ADMIN_KEY": ADMIN_KEY},
    )
    try:
        yield gateway
    finally:
        stop_serve(gateway)


def test_without_the_key_every_ui_route_and_action_refuses(exposed: Served) -> None:
    url = exposed.url
    with httpx.Client(base_url=url) as client:
        page = client.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/ui/login"
        for path in ("/ui/static/app.js", "/ui/static/chat.js", "/admin/models", "/plugins"):
            assert client.get(path).status_code == 401, path
        same_origin = {"origin": url, "content-type": "application/json"}
        for method, path in (
            ("PUT", "/admin/connections/evil"),
            ("DELETE", "/admin/connections/up"),
            ("POST", "/admin/connections/up/test"),
            ("POST", "/plugins/acme/stop"),
            ("POST", "/plugins/load"),
        ):
            answer = client.request(method, path, headers=same_origin, content=b"{}")
            assert answer.status_code == 401, (method, path)
        # The gateway key opens the API for tools, not the UI.
        tool = {"authorization": f"Bearer {GATEWAY_KEY}"}
        assert client.get("/v1/models", headers=tool).status_code == 200
        assert client.get("/admin/models", headers=tool).status_code == 401
        refused = client.post("/ui/login", json={"key": GATEWAY_KEY}, headers={"origin": url})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        # The sign-in page itself is open, and says nothing about the key.
        assert client.get("/ui/login").status_code == 200
        assert client.get("/ui/static/login.js").status_code == 200

        signed = client.post("/ui/login", json={"key": ADMIN_KEY}, headers={"origin": url})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and ADMIN_KEY not in cookie
        assert client.get("/").status_code == 200
        assert client.get("/admin/models").status_code == 200
        # A session's state-changing request must come from the gateway's own page.
        assert client.post("/plugins/load").status_code == 403
        other_port = {"origin": "http://127.0.0.1:1", "content-type": "application/json"}
        assert client.post("/plugins/load", headers=other_port).status_code == 403
        assert client.post("/plugins/load", headers={"origin": url}).status_code == 200
        client.post("/ui/logout", headers={"origin": url})
        assert client.get("/admin/models").status_code == 401


def test_the_browser_signs_in_with_the_admin_key(
    browser: Any, exposed: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", streamed_reply(["signed", " in"]))
    context = browser.new_context(base_url=exposed.url, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    try:
        page.goto("/#/chat")
        assert page.url.startswith(f"{exposed.url}/ui/login")
        page.get_by_label("Admin key").fill("not-the-key")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("alert").get_by_text("not the key").wait_for()
        screenshot(page, "sign-in")
        page.get_by_label("Admin key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{exposed.url}/")
        cookies = context.cookies()
        assert [c["httpOnly"] and c["sameSite"] for c in cookies] == ["Strict"]
        assert page.evaluate("document.cookie") == ""  # no script can read the session
        page.goto("/#/chat?model=up/m1")
        page.get_by_label("Message", exact=True).fill("hello")
        page.get_by_role("button", name="Send").click()
        page.locator("#chat-log .message.assistant").get_by_text("signed in").wait_for()
    finally:
        context.close()


def test_sign_out_ends_the_session_on_the_gateway(browser: Any, exposed: Served) -> None:
    context = browser.new_context(base_url=exposed.url, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    try:
        page.goto("/ui/login")
        page.get_by_label("Admin key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{exposed.url}/")
        [cookie] = context.cookies()
        sign_out = page.get_by_role("button", name="Sign out")
        sign_out.wait_for()
        page.wait_for_load_state("networkidle")
        screenshot(page, "signed-in")
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(page)
        assert results.violations_count == 0, results.generate_report()
        sign_out.click()
        page.wait_for_url(f"{exposed.url}/ui/login")
        page.get_by_label("Admin key").wait_for()
        assert context.cookies() == []
        # Ended on the gateway, not only forgotten by this browser: the old cookie is refused.
        stolen = {"cookie": f"{cookie['name']}={cookie['value']}"}
        assert httpx.get(f"{exposed.url}/admin/models", headers=stolen).status_code == 401
        page.goto("/#/chat")
        assert page.url.startswith(f"{exposed.url}/ui/login")
    finally:
        context.close()


def test_a_gateway_without_sign_in_offers_no_sign_out(page: Any, served: Served) -> None:
    page.goto("/#/models")
    page.locator("#page-models h1").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("button", name="Sign out").count() == 0
    assert httpx.get(f"{served.url}/ui/session").json() == {"session": False}
