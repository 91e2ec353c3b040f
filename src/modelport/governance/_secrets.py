"""Virtual key secrets: how they are made, and the digest they are stored and found by.

A secret is 32 random bytes (``secrets.token_urlsafe``) behind a fixed prefix,
so a leaked one is recognisable in logs and by secret scanners. It is shown
once, when issued or rotated; the database keeps its SHA-256 digest. A slow
password hash would add nothing here: the secret has 256 bits of entropy, so
the digest cannot be searched backwards, and a fast one keeps the lookup on
every request to a dictionary probe.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "digest", "looks_like_virtual_key", "new_key_id", "new_secret"]

#: What every virtual key starts with ("modelport virtual key").
KEY_PREFIX = "mpvk-"


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """The public id of a key: what lists, budgets and the ledger name it by."""
    return "vk_" + secrets.token_hex(8)


def digest(secret: str | bytes) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def looks_like_virtual_key(value: bytes) -> bool:
    return value.startswith(KEY_PREFIX.encode())
