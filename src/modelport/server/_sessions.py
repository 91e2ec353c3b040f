"""The web UI's sign-in: a session cookie that stands for the admin key in a browser.

A browser cannot attach ``Authorization`` to a page it navigates to, so a
gateway that needs a key for its admin routes (always, once it listens
beyond loopback) signs the web UI in once: ``POST /ui/login`` with the key
the admin routes take, answered with a random session token in a cookie that
is ``HttpOnly`` (no script can read it) and ``SameSite=Strict`` (no other
site's page sends it). The guard (:mod:`modelport.server._guard`) accepts a
valid session wherever a key is needed, and for a state-changing request it
also wants an ``Origin`` that is the gateway itself, so a page on another
port of the same host (same *site* to the browser) cannot act with it.

Tokens live only in this process (a restart signs everyone out) and only as
their SHA-256 digests; they expire after :data:`SESSION_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

__all__ = ["SESSION_COOKIE", "SESSION_SECONDS", "UiSessions", "session_token"]

SESSION_COOKIE = "modelport_ui"
#: How long a sign-in lasts.
SESSION_SECONDS = 12 * 3600


class UiSessions:
    """The signed-in browser sessions of one gateway: digest of the token → expiry."""

    def __init__(
        self, *, lifetime: float = SESSION_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._expiry: dict[bytes, float] = {}

    def create(self) -> str:
        """A new session; the token goes to the browser, its digest stays here."""
        now = self._clock()
        # Drop expired sessions as new ones come, so the table never grows without bound.
        self._expiry = {d: t for d, t in self._expiry.items() if t > now}
        token = secrets.token_urlsafe(32)
        self._expiry[_digest(token.encode())] = now + self.lifetime
        return token

    def valid(self, token: bytes | None) -> bool:
        if not token:
            return False
        digest = _digest(token)
        expiry = self._expiry.get(digest)
        if expiry is None:
            # Constant-time like the key check: no timing says how close a guess came.
            hmac.compare_digest(digest, digest)
            return False
        if expiry <= self._clock():
            self._expiry.pop(digest, None)
            return False
        return True

    def end(self, token: bytes | None) -> None:
        if token:
            self._expiry.pop(_digest(token), None)

    def cookie(self, token: str) -> str:
        """The ``Set-Cookie`` value that signs a browser in."""
        return (
            f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={int(self.lifetime)}"
        )

    @staticmethod
    def cleared_cookie() -> str:
        return f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def session_token(cookie_header: bytes | None) -> bytes | None:
    """The session token in a ``Cookie`` header, if it carries one."""
    if not cookie_header:
        return None
    prefix = SESSION_COOKIE.encode() + b"="
    for part in cookie_header.split(b";"):
        part = part.strip()
        if part.startswith(prefix):
            return part[len(prefix) :] or None
    return None
