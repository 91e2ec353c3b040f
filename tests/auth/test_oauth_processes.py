"""Two processes sharing one OAuth login renew it once between them.

Gateway workers (``modelport serve --workers N``), or the CLI next to a
running gateway, share only the stored tokens. With a rotating authorization
server each refresh token works once: two processes refreshing the same
expired login at the same moment would send the same refresh token twice, and
the second is refused (some servers then revoke the whole login). The renewal
is therefore single-flight across processes too (a lock file beside the
tokens): the second process waits, then finds the first one's tokens stored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import msgspec
import pytest

from modelport.auth.session import TokenBroker
from modelport.auth.tokens import load_tokens, save_tokens
from modelport.config import load_config, modelport_home
from modelport.routing import Router
from modelport.types import ChatRequest, Message
from tests.auth._oauth_server import OAuthTestServer
from tests.auth.conftest import ServerFactory
from tests.auth.test_oauth_calls import EXPIRES_IN, _configure, _login

_CALL = """
import asyncio, os, sys, time
from modelport.config import load_config
from modelport.routing import Router
from modelport.types import ChatRequest, Message

async def main() -> None:
    router = Router(load_config())
    request = ChatRequest(model="corp/corp-large", messages=[Message(role="user", content="hi")])
    while time.time() < float(sys.argv[1]):  # both processes ask at the same moment
        time.sleep(0.001)
    try:
        print((await router.complete(request)).content)
    finally:
        await router.aclose()

asyncio.run(main())
"""


async def test_two_processes_at_expiry_refresh_the_login_once(
    oauth_servers: ServerFactory,
) -> None:
    server: OAuthTestServer = oauth_servers(expires_in=EXPIRES_IN, token_delay=0.3)
    _configure(server)
    await _login(server)
    stored = load_tokens("corp")
    assert stored is not None
    save_tokens("corp", msgspec.structs.replace(stored, expires_at=time.time() - 1))

    start_at = str(time.time() + 3)  # after both interpreters have imported modelport
    calls = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CALL,
            start_at,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        for _ in range(2)
    ]
    outputs = [await call.communicate() for call in calls]
    for call, (out, err) in zip(calls, outputs, strict=True):
        assert call.returncode == 0, err.decode()[-2000:]
        assert out.decode().strip() == "Hello from corp"
    assert server.refreshes == 1
    fresh = load_tokens("corp")
    assert fresh is not None and fresh.refresh_token == server.current().refresh_token


async def test_without_a_writable_lock_folder_the_login_is_still_renewed(
    oauth_servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server: OAuthTestServer = oauth_servers(expires_in=EXPIRES_IN)
    _configure(server)
    await _login(server)
    (modelport_home() / "locks").write_text("a file where the lock folder goes")
    router = Router(load_config(), tokens=TokenBroker(clock=server.clock))
    try:
        server.clock.advance(EXPIRES_IN)
        request = ChatRequest(
            model="corp/corp-large", messages=[Message(role="user", content="hi")]
        )
        assert (await router.complete(request)).content == "Hello from corp"
    finally:
        await router.aclose()
    assert server.refreshes == 1
    assert "could not open the lock file" in caplog.text
