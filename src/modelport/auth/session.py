"""Fresh access tokens for OAuth connections: one :class:`OAuthSession` per connection.

Every caller — the router for the built-in adapters, the plugin host for a
plugin's ``providerConfig`` — asks :meth:`OAuthSession.access_token` before
each request. A valid token in memory is returned at once (no await); one
that has expired or is about to (:meth:`TokenSet.needs_refresh
<modelport.auth.tokens.TokenSet.needs_refresh>`) is renewed **once**: the first
caller starts the renewal as a task, and every caller that arrives while it
runs awaits that same task, so fifty requests at expiry cause one refresh and
all fifty get its token (or its error). :meth:`OAuthSession.after_rejection`
is the 401 path: it renews only if the rejected token is still the current
one, so fifty requests refused with one token also cause one refresh.

A renewal first reads the stored tokens (``modelport login`` in another
terminal, or another process, may have newer ones), and refreshes only when
those are stale too. A rotated refresh token is written to storage before the
new access token is handed to anyone: a crash after the server rotated it can
no longer strand the login on the old one. A refresh token the server refused
(revoked, expired) is remembered, so later calls fail at once with the same
:class:`~modelport.errors.AuthError` (``run `modelport login NAME```) instead of
asking again — until a new login stores other tokens.

A :class:`TokenBroker` holds the sessions of one event loop (a router's) and
their HTTP client; sessions in different processes share only the storage,
and a lock file (:mod:`modelport.auth._renewal_lock`) makes a renewal
single-flight across them too: gateway workers at expiry refresh once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from modelport.auth.tokens import TokenSet, load_tokens, save_tokens
from modelport.config import OAuthConfig
from modelport.errors import AuthError, ConfigError

if TYPE_CHECKING:
    # Imported when a session first renews a login: every router holds a broker, and
    # most never use it, so `modelport serve` does not pay for the OAuth client at start.
    from modelport.providers._http_client import HttpClient

__all__ = ["OAuthSession", "TokenBroker"]

logger = logging.getLogger("modelport.auth")


class OAuthSession:
    """One connection's tokens in memory, renewed single-flight (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config: OAuthConfig,
        *,
        http: HttpClient,
        env: Callable[[], Mapping[str, str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self._http = http
        self._env = env
        self._clock = clock
        self._tokens: TokenSet | None = None
        self._renewal: asyncio.Task[str] | None = None
        self._refused: str | None = None  # the refresh token the server refused
        #: How many refresh requests this session sent (tests and diagnostics read it).
        self.refreshes = 0

    async def access_token(self) -> str:
        """A token valid now: from memory, else from storage, else refreshed."""
        tokens = self._tokens
        if tokens is not None and not tokens.needs_refresh(self._clock()):
            return tokens.access_token
        return await self._renew(rejected=None)

    async def after_rejection(self, rejected: str) -> str:
        """A token to retry with after the upstream refused ``rejected`` (a 401)."""
        return await self._renew(rejected=rejected)

    def _usable(self, tokens: TokenSet | None, rejected: str | None) -> bool:
        return (
            tokens is not None
            and tokens.access_token != rejected
            and not tokens.needs_refresh(self._clock())
        )

    async def _renew(self, rejected: str | None) -> str:
        renewal = self._renewal
        if renewal is None:
            if self._usable(self._tokens, rejected):
                assert self._tokens is not None
                return self._tokens.access_token
            # No await between the check and the task: only one caller can start it.
            renewal = self._renewal = asyncio.get_running_loop().create_task(
                self._renew_once(rejected)
            )
            renewal.add_done_callback(self._renewal_done)
        # Shielded: one caller going away must not cancel the renewal the others await.
        return await asyncio.shield(renewal)

    def _renewal_done(self, task: asyncio.Task[str]) -> None:
        if self._renewal is task:
            self._renewal = None
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited is not logged

    async def _renew_once(self, rejected: str | None) -> str:
        from modelport.auth._renewal_lock import renewal_lock

        # Across processes too: another one may be renewing this login right now.
        async with renewal_lock(self.name):
            return await self._renew_locked(rejected)

    async def _renew_locked(self, rejected: str | None) -> str:
        from modelport.auth.oauth import OAuthClient, login_hint

        stored = await asyncio.to_thread(load_tokens, self.name)
        if stored is None:
            raise AuthError(
                f"Connection {self.name!r} uses OAuth and is not logged in; "
                f"{login_hint(self.name)}",
                connection=self.name,
                status=401,
            )
        if self._usable(stored, rejected):
            self._tokens = stored  # newer tokens from a login or another process
            return stored.access_token
        if stored.refresh_token is not None and stored.refresh_token == self._refused:
            raise _refused_error(self.name)
        client = OAuthClient(
            self.name, self.config, http=self._http, env=self._env(), clock=self._clock
        )
        self.refreshes += 1
        try:
            fresh = await client.refresh(stored)
        except AuthError as exc:
            if exc.status == 401 and stored.refresh_token is not None:
                self._refused = stored.refresh_token
            raise
        # Saved before anyone uses it: with rotation, the old refresh token is dead now.
        try:
            await asyncio.to_thread(save_tokens, self.name, fresh)
        except ConfigError as exc:
            # Storage broke (a full disk, a read-only home): this process keeps the login
            # in memory rather than failing the call, and says what will be lost.
            logger.warning(
                "could not store the renewed login of %r (%s); it lasts until this process "
                "stops, then run `modelport login %s`",
                self.name,
                exc.message,
                self.name,
            )
        self._tokens = fresh
        logger.info("renewed the OAuth login of %r", self.name)
        return fresh.access_token

    def forget(self) -> None:
        """Drop the tokens held in memory (the next call reads storage)."""
        self._tokens = None
        self._refused = None


def _refused_error(name: str) -> AuthError:
    from modelport.auth.oauth import login_hint

    return AuthError(
        f"The authorization server refused to renew the login of {name!r} "
        f"(the refresh token was revoked or has expired); {login_hint(name)}",
        connection=name,
        status=401,
    )


class TokenBroker:
    """The OAuth sessions of one event loop, by connection name, over one HTTP client.

    ``env`` (read at each token request, for ``client_secret_env``) defaults to
    ``os.environ``; ``clock`` gives Unix time.
    """

    def __init__(
        self,
        *,
        env: Callable[[], Mapping[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._env = env if env is not None else (lambda: os.environ)
        self._clock = clock
        self._http: HttpClient | None = None
        self._sessions: dict[str, OAuthSession] = {}

    def session(self, name: str, config: OAuthConfig) -> OAuthSession:
        """The session of connection ``name`` (a new one when its OAuth settings changed)."""
        found = self._sessions.get(name)
        if found is not None and found.config == config:
            return found
        if self._http is None:
            from modelport.providers._http_client import HttpClient

            self._http = HttpClient(timeout=30.0)
        session = OAuthSession(name, config, http=self._http, env=self._env, clock=self._clock)
        self._sessions[name] = session
        return session

    def forget(self) -> None:
        """Make every session read storage again (after a login next to a running gateway)."""
        for session in self._sessions.values():
            session.forget()

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
