"""One login through a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``).

The user's part of the flow, as a person does it: the authorization page
opens, they press "Allow", the authorization server redirects the browser to
modelport's loopback callback, and the page they end on says they are signed
in. CI installs both (``.ci/run``: ``apt-get install chromium``, the test extra's
``playwright``); elsewhere the test is skipped when either is missing.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from modelport.auth.login import login
from modelport.auth.tokens import load_tokens
from tests.auth._oauth_server import USER
from tests.auth.conftest import ServerFactory, oauth_config

CHROMIUM = Path("/usr/bin/chromium")


def _browser_available() -> None:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {' and '.join(missing)}")
        pytest.skip(f"needs {' and '.join(missing)}")


class ChromiumUser:
    """Opens the authorization URL in headless Chromium and presses Allow, in its own thread."""

    def __init__(self) -> None:
        self.final_text = ""
        self.final_url = ""
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> None:
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM),
                    headless=True,
                    # Running as root (CI) needs --no-sandbox; nothing here is untrusted.
                    args=["--no-sandbox", "--disable-gpu", "--no-proxy-server"],
                )
                try:
                    page = browser.new_page()
                    page.goto(url)
                    assert f"as {USER}" in page.inner_text("h1")
                    page.click("#allow")
                    page.wait_for_selector("text=Signed in to modelport", timeout=30_000)
                    self.final_text = page.inner_text("body")
                    self.final_url = page.url
                finally:
                    browser.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(60)
        if self.error is not None:
            raise self.error


async def test_login_through_chromium(oauth_servers: ServerFactory) -> None:
    _browser_available()
    server = oauth_servers(auto_approve=False)
    user = ChromiumUser()

    tokens, _ = await login(
        "corp", oauth_config(server), show_url=lambda url: None, open_browser=user, timeout=90
    )

    await asyncio.to_thread(user.join)
    assert "Signed in to modelport" in user.final_text
    assert f"signed in to 'corp' as {USER}" in user.final_text
    assert user.final_url.startswith("http://127.0.0.1:") and "/callback?code=" in user.final_url
    assert tokens.account == USER
    assert load_tokens("corp") == tokens
    assert server.state.token_requests == ["authorization_code"]
