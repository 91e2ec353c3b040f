"""Fixtures for the OAuth tests: a real authorization server on loopback and a browser stand-in."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from html import unescape
from urllib.parse import urljoin

import httpx
import pytest

from modelport.config import OAuthConfig
from tests.auth._oauth_server import CLIENT_ID, OAuthTestServer

ServerFactory = Callable[..., OAuthTestServer]


@pytest.fixture
def oauth_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerFactory]:
    """``oauth_servers(expires_in=60, auto_approve=False)`` starts one; all stop after the test."""
    # authlib's server refuses plain http unless told this is a test on loopback.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    started: list[OAuthTestServer] = []

    def start(**options: object) -> OAuthTestServer:
        server = OAuthTestServer(**options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def oauth_server(oauth_servers: ServerFactory) -> OAuthTestServer:
    return oauth_servers()


def oauth_config(server: OAuthTestServer, **overrides: object) -> OAuthConfig:
    values: dict[str, object] = {
        "authorize_url": f"{server.url}/authorize",
        "token_url": f"{server.url}/token",
        "client_id": CLIENT_ID,
        "scopes": ["llm", "offline_access"],
    }
    values.update(overrides)
    return OAuthConfig(**values)  # type: ignore[arg-type]


class Browser:
    """Follows an authorization URL like a browser: consent form submitted, redirects followed.

    Runs in a thread of its own (the login waits on the test's event loop).
    """

    def __init__(self) -> None:
        self.pages: list[httpx.Response] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def __call__(self, url: str) -> None:
        thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _visit(self, url: str) -> None:
        try:
            with httpx.Client(follow_redirects=True, trust_env=False, timeout=30) as client:
                page = client.get(url)
                form = re.search(r"<form method=post action=([^>]+)>(.*?)</form>", page.text, re.S)
                if form is not None:
                    fields = {
                        unescape(name): unescape(value)
                        for name, value in re.findall(
                            r"<input type=hidden name=([^ ]+) value='([^']*)'>", form.group(2)
                        )
                    }
                    page = client.post(urljoin(str(page.url), form.group(1)), data=fields)
                self.pages.append(page)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def join(self) -> httpx.Response:
        for thread in self._threads:
            thread.join(30)
        assert not self.errors, self.errors
        return self.pages[-1]
