"""``modelport login NAME``'s work: the authorization-code flow with PKCE, end to end.

::

    tokens, stored = await login("corp", oauth_config, show_url=print, open_browser=webbrowser.open)

A one-shot callback server starts on ``127.0.0.1``
(:class:`~modelport.auth._callback.CallbackServer`), the authorization URL is
shown (and opened in a browser unless the caller passes none: ``--no-browser``
or a session over SSH), the callback's ``state`` is checked, the code is
exchanged for tokens, and the tokens are stored like a key
(:func:`~modelport.auth.tokens.save_tokens`) before the browser is told it
worked. :func:`revoke` asks the provider to end the login (RFC 7009) when
its config names a ``revocation_url``; :func:`logout` forgets the tokens here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from modelport.auth._callback import CallbackServer
from modelport.auth._store import Stored
from modelport.auth.oauth import OAuthClient
from modelport.auth.tokens import TokenSet, delete_tokens, save_tokens
from modelport.config import OAuthConfig
from modelport.errors import ModelportError
from modelport.providers._http_client import HttpClient

__all__ = ["DEFAULT_TIMEOUT", "login", "logout", "revoke"]

#: How long a login waits for the browser to come back, in seconds.
DEFAULT_TIMEOUT = 300.0


async def login(
    name: str,
    config: OAuthConfig,
    *,
    show_url: Callable[[str], None],
    open_browser: Callable[[str], object] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    http: HttpClient | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[TokenSet, Stored]:
    """Log connection ``name`` in; returns its tokens and where they were stored.

    ``show_url`` always receives the authorization URL (the user may need to
    copy it); ``open_browser``, when given, is asked to open it. Raises
    :class:`~modelport.errors.AuthError` for a refusal, a wrong ``state`` or
    no callback within ``timeout`` seconds.
    """
    import os

    own_http = http is None
    client_http = http if http is not None else HttpClient(timeout=30.0)
    client = OAuthClient(
        name, config, http=client_http, env=os.environ if env is None else env, clock=clock
    )
    try:
        async with CallbackServer(
            port=config.redirect_port, path=config.redirect_path, host_name=config.redirect_host
        ) as server:
            request = client.authorization_request(server.redirect_uri)
            show_url(request.url)
            if open_browser is not None:
                open_browser(request.url)
            callback = await server.wait(timeout)
            try:
                code = client.code_from_callback(request, callback)
                tokens = await client.exchange(request, code)
                # Stored before the browser hears "signed in": the login is done only then.
                stored = await asyncio.to_thread(save_tokens, name, tokens)
            except ModelportError as exc:
                server.finish(False, exc.message)
                raise
            who = f" as {tokens.account}" if tokens.account else ""
            server.finish(True, f"modelport is signed in to {name!r}{who}.")
            return tokens, stored
    finally:
        if own_http:
            await client_http.aclose()


async def revoke(
    name: str,
    config: OAuthConfig,
    tokens: TokenSet,
    *,
    env: Mapping[str, str] | None = None,
    http: HttpClient | None = None,
) -> None:
    """Revoke ``tokens`` at ``config.revocation_url``; :class:`ModelportError` if unconfirmed."""
    import os

    own_http = http is None
    client_http = http if http is not None else HttpClient(timeout=30.0)
    client = OAuthClient(name, config, http=client_http, env=os.environ if env is None else env)
    try:
        await client.revoke(tokens)
    finally:
        if own_http:
            await client_http.aclose()


def logout(name: str) -> bool:
    """Forget ``name``'s tokens; ``False`` when it was not logged in."""
    return delete_tokens(name)
