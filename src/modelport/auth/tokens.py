"""OAuth tokens per connection, stored like keys: the OS keyring, else an owner-only file.

A :class:`TokenSet` is what ``modelport login NAME`` obtained (and each
refresh renewed): the access token, the refresh token where the server gave
one, when the access token expires, and who logged in. It is stored as JSON
under keyring username ``oauth:<name>`` or in ``MODELPORT_HOME/tokens.json``
(mode 0600), exactly as keys are (:mod:`modelport.auth._store`). Tokens never
appear in a ``repr``, a log line or an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from modelport.auth._store import SecretStore, Stored

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "TOKENS_FILE",
    "TokenSet",
    "delete_tokens",
    "load_tokens",
    "login_status",
    "save_tokens",
    "token_storage",
]

TOKENS_FILE = "tokens.json"
#: Refresh this long before expiry at most (a tenth of the token's lifetime when that is shorter).
REFRESH_MARGIN = 60.0

_TOKENS = SecretStore(file_name=TOKENS_FILE, prefix="oauth")


class TokenSet(msgspec.Struct, frozen=True, kw_only=True):
    """One login's tokens. ``expires_at`` and ``issued_at`` are Unix times (seconds).

    ``account`` is who logged in, as the server said (an ID token's email or
    subject, or the token response's own field), for display only.
    """

    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_at: float | None = None
    issued_at: float = 0.0
    scope: str | None = None
    account: str | None = None

    def __repr__(self) -> str:
        refresh = "'***'" if self.refresh_token else "None"
        return (
            f"TokenSet(access_token='***', refresh_token={refresh}, "
            f"expires_at={self.expires_at!r}, scope={self.scope!r}, account={self.account!r})"
        )

    __str__ = __repr__

    def margin(self) -> float:
        """How long before expiry a refresh is due: a minute, or a tenth of a short lifetime."""
        if self.expires_at is None:
            return 0.0
        lifetime = max(0.0, self.expires_at - self.issued_at)
        return min(REFRESH_MARGIN, lifetime / 10)

    def needs_refresh(self, now: float) -> bool:
        """Whether the access token has expired or is about to (see :meth:`margin`)."""
        return self.expires_at is not None and now >= self.expires_at - self.margin()

    @classmethod
    def from_response(
        cls, token: Mapping[str, Any], *, now: float, previous: TokenSet | None = None
    ) -> TokenSet:
        """The tokens of a token endpoint's answer (authlib's ``OAuth2Token`` dict).

        A refresh answer without a ``refresh_token`` keeps the previous one (RFC 6749
        §6 lets a server keep it unchanged); one with a new one replaces it (rotation).
        """
        expires_in = token.get("expires_in")
        expires_at: float | None = None
        if isinstance(expires_in, int | float | str):
            try:
                expires_at = now + float(expires_in)
            except ValueError:
                expires_at = None
        if expires_at is None and isinstance(token.get("expires_at"), int | float):
            expires_at = float(token["expires_at"])
        refresh = token.get("refresh_token") or (previous.refresh_token if previous else None)
        account = _account(token) or (previous.account if previous else None)
        scope = token.get("scope")
        return cls(
            access_token=str(token["access_token"]),
            token_type=str(token.get("token_type") or "Bearer"),
            refresh_token=str(refresh) if refresh else None,
            expires_at=expires_at,
            issued_at=now,
            scope=" ".join(scope) if isinstance(scope, list) else (str(scope) if scope else None),
            account=account,
        )


def _account(token: Mapping[str, Any]) -> str | None:
    """Who logged in: the ID token's claims, else the answer's own field, else ``None``."""
    claims = _unverified_claims(token.get("id_token"))
    for source in (claims, token):
        for field in ("email", "preferred_username", "username", "name", "sub"):
            value = source.get(field)
            if isinstance(value, str) and value:
                return value
    return None


def _unverified_claims(id_token: Any) -> dict[str, Any]:
    """An ID token's claims, read without checking its signature: for display only,
    never for a decision (the token came straight from the token endpoint over TLS)."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return {}
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


# --- storage -------------------------------------------------------------------


def load_tokens(name: str, *, backend: KeyringBackend | None = None) -> TokenSet | None:
    """The stored tokens of connection ``name``, or ``None`` (never logged in, or unreadable)."""
    text = _TOKENS.get(name, backend=backend)
    if text is None:
        return None
    try:
        return msgspec.json.decode(text, type=TokenSet)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # an unreadable entry means "log in again", never a crash


def save_tokens(name: str, tokens: TokenSet, *, backend: KeyringBackend | None = None) -> Stored:
    """Store ``tokens`` for ``name``; returns where they went and why (like a key)."""
    return _TOKENS.set(name, msgspec.json.encode(tokens).decode(), backend=backend)


def delete_tokens(name: str, *, backend: KeyringBackend | None = None) -> bool:
    """Forget ``name``'s tokens wherever they are; ``False`` if there were none."""
    return _TOKENS.delete(name, backend=backend)


def token_storage(*, backend: KeyringBackend | None = None) -> str:
    """Where tokens go, in words (for ``modelport doctor``)."""
    return _TOKENS.storage(backend=backend)


def login_status(tokens: TokenSet | None, *, now: float | None = None) -> str:
    """``logged in as X, expires in 42 min, refresh available`` (never a token)."""
    if tokens is None:
        return "not logged in"
    now = time.time() if now is None else now
    who = f"logged in as {tokens.account}" if tokens.account else "logged in"
    if tokens.expires_at is None:
        expiry = "no expiry given"
    elif tokens.expires_at <= now:
        expiry = f"expired {_duration(now - tokens.expires_at)} ago"
    else:
        expiry = f"expires in {_duration(tokens.expires_at - now)}"
    refresh = "refresh available" if tokens.refresh_token else "no refresh token"
    return f"{who}, {expiry}, {refresh}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
