"""``modelport login NAME`` / ``modelport logout NAME``: OAuth logins, never showing a token.

``login`` runs the authorization-code flow with PKCE (:func:`modelport.auth.login.login`)
for a connection whose ``[connections.NAME.oauth]`` table, or whose plugin's
registration, says where to log in. It prints the authorization URL, opens
it in the browser unless ``--no-browser`` is given or the session is over
SSH, waits for the one-shot callback on 127.0.0.1, and stores the tokens like
a key, saying where. ``logout`` revokes them at the provider when its config
names a ``revocation_url`` (RFC 7009), then forgets them whatever the answer.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli._output import err_console, fail

if TYPE_CHECKING:
    from modelport.auth.tokens import TokenSet
    from modelport.config import Config, OAuthConfig

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``login`` and ``logout`` to ``app``."""
    app.command(name="login")(login)
    app.command(name="logout")(logout)


def login(
    name: Annotated[str, typer.Argument(help="Connection (or plugin provider) to log in to.")],
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="Print the URL to open instead of opening a browser."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for the browser to come back."),
    ] = 300.0,
) -> None:
    """Log in to connection NAME with OAuth (authorization code + PKCE, loopback callback)."""
    from modelport.auth.login import login as run_login
    from modelport.auth.tokens import login_status
    from modelport.config import load_config

    config = load_config()
    oauth = asyncio.run(_oauth_config(config, name))
    if oauth is None:
        fail(
            f"connection {name!r} has no OAuth login configured",
            f"Add a [connections.{name}.oauth] table (authorize_url, token_url, client_id) "
            f'and auth = "oauth" under [connections.{name}] in config.toml; see docs/oauth.md.',
        )
    console = err_console()
    use_browser = not no_browser and not _over_ssh()

    def show(url: str) -> None:
        action = "Opening your browser to sign in" if use_browser else "Open this URL to sign in"
        console.print(f"{action} to {name!r}:", markup=False)
        console.print(f"  {url}", markup=False, soft_wrap=True)
        console.print(
            f"Waiting up to {timeout:g} s for the sign-in to finish (Ctrl-C to stop)...",
            style="dim",
            markup=False,
        )

    tokens, stored = asyncio.run(
        run_login(
            name,
            oauth,
            show_url=show,
            open_browser=_open_browser if use_browser else None,
            timeout=timeout,
        )
    )
    console.print(f"Logged in to {name!r}: {login_status(tokens)}.", markup=False)
    console.print(f"The tokens are stored in {stored.describe()}.", style="dim", markup=False)


def logout(name: Annotated[str, typer.Argument(help="Connection to log out of.")]) -> None:
    """Revoke the OAuth tokens of connection NAME at the provider, if it can, and forget them."""
    from modelport.auth.login import logout as run_logout
    from modelport.auth.tokens import load_tokens

    console = err_console()
    tokens = load_tokens(name)
    revoked = False
    if tokens is not None:
        revoked = _revoke(name, tokens)
    # Forgotten here whatever the provider answered: a logout never leaves them behind.
    if not run_logout(name):
        fail(f"{name!r} is not logged in", f"`modelport login {name}` logs it in.")
    if revoked:
        console.print(
            f"Logged out of {name!r}: the provider revoked its tokens, and they are removed "
            "from this machine.",
            markup=False,
        )
        return
    console.print(
        f"Logged out of {name!r}: its tokens are removed from this machine. A running "
        "gateway stops using them once the access token it holds expires.",
        markup=False,
    )


def _revoke(name: str, tokens: TokenSet) -> bool:
    """Revoke at the provider when its config has a ``revocation_url``; one line on a failure."""
    from modelport.auth.login import revoke
    from modelport.config import load_config
    from modelport.errors import ModelportError

    try:
        oauth = asyncio.run(_oauth_config(load_config(), name))
        if oauth is None or oauth.revocation_url is None:
            return False
        asyncio.run(revoke(name, oauth, tokens))
    except ModelportError as exc:
        err_console().print(
            f"Could not revoke the tokens of {name!r} at the provider: {exc.message}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return False
    return True


async def _oauth_config(config: Config, name: str) -> OAuthConfig | None:
    """The connection's own ``oauth`` table, else what its plugin's registration says."""
    connection = config.connection(name)
    if connection is not None and connection.oauth is not None:
        return connection.oauth
    if connection is not None and not (connection.compat or "").startswith("plugin:"):
        return None
    from modelport.plugin_host.host import PluginHost
    from modelport.routing import Router, plugin_host

    router = Router(config, provider_source=plugin_host)
    try:
        await router.load_providers(name)
        host = router.provider_source
        return host.oauth_config(name) if isinstance(host, PluginHost) else None
    finally:
        await router.aclose()


def _over_ssh() -> bool:
    """A browser opened over SSH would open on the far machine, or nowhere."""
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"))


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:  # no browser: the URL is on screen already
        pass
