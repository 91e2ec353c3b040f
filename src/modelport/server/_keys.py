"""Who may call the gateway: the gateway key, the admin key and the loopback rule.

* Bound to loopback with no key configured, anyone on this machine may call.
* Bound to anything else, the gateway refuses to start without a gateway key
  (:func:`check_binding`).
* A configured key is always required, whatever the binding. It is accepted as
  ``Authorization: Bearer <key>`` (what the OpenAI SDK sends) or ``x-api-key``
  (what the Anthropic SDK sends); the SHA-256 digests of what was sent and what
  is expected are compared with :func:`hmac.compare_digest`, so neither the
  key nor its length leaks through timing.
* Admin routes (``/plugins…``, ``/admin…``) take the admin key when one is
  set. Without one they follow the gateway key on loopback and are closed
  elsewhere: a key handed to every tool must not also start and stop processes.
* The web UI (``/`` and ``/ui/…``) drives the admin routes, so it takes the
  same key, as a browser session (:mod:`modelport.server._sessions`); only
  what its sign-in page needs (:data:`UI_PUBLIC`) is open.

Keys live only in :class:`GatewayKeys` (whose ``repr`` hides them) and are
never logged or echoed: a refusal names the header to send, not what was sent.
Where the presented keys come from, and when they are checked, is the
guard's business (:mod:`modelport.server._guard`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from modelport._redact import remember_secret
from modelport.errors import AuthError, ConfigError

__all__ = [
    "ADMIN_KEY_ENV",
    "ADMIN_PREFIXES",
    "GATEWAY_KEY_ENV",
    "GatewayKeys",
    "UI_PREFIX",
    "UI_PUBLIC",
    "check_binding",
    "is_admin_path",
    "is_loopback",
    "key_refusal",
    "resolve_keys",
]

#: Paths that administer the gateway rather than use a model.
ADMIN_PREFIXES = ("/plugins", "/admin")
#: The web UI's pages and assets (besides ``/``), which need what admin routes need.
UI_PREFIX = "/ui/"
#: What the web UI's sign-in page needs: open to anyone who may reach the gateway.
UI_PUBLIC = frozenset(
    {
        "/ui/login",
        "/ui/logout",
        "/ui/static/login.js",
        "/ui/static/style.css",
        "/ui/static/icon.svg",
    }
)

GATEWAY_KEY_ENV = "MODELPORT_GATEWAY_KEY"
ADMIN_KEY_ENV = "MODELPORT_ADMIN_KEY"


class GatewayKeys:
    """The gateway and admin keys as bytes, with their SHA-256 digests for comparison."""

    __slots__ = ("admin", "admin_digest", "gateway", "gateway_digest")

    def __init__(self, gateway: str | None = None, admin: str | None = None) -> None:
        # Masked wherever an error is written, as every key the process holds is.
        remember_secret(gateway)
        remember_secret(admin)
        self.gateway = gateway.encode() if gateway else None
        self.admin = admin.encode() if admin else None
        self.gateway_digest = _digest(self.gateway) if self.gateway else None
        self.admin_digest = _digest(self.admin) if self.admin else None

    def __repr__(self) -> str:
        gateway = "'***'" if self.gateway else "None"
        admin = "'***'" if self.admin else "None"
        return f"GatewayKeys(gateway={gateway}, admin={admin})"


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _from(table: Any, key: str, env_key: str, default_env: str, environ: Mapping[str, str]) -> str:
    value = getattr(table, key, None) if table is not None else None
    if value:
        return str(value)
    env_name = getattr(table, env_key, None) if table is not None else None
    if env_name and environ.get(env_name):
        return environ[env_name]
    return environ.get(default_env, "")


def resolve_keys(config: Any = None, *, environ: Mapping[str, str] | None = None) -> GatewayKeys:
    """The keys from ``[gateway] key``/``key_env`` (and ``admin_key``/``admin_key_env``),
    else ``MODELPORT_GATEWAY_KEY`` / ``MODELPORT_ADMIN_KEY``."""
    environ = os.environ if environ is None else environ
    table = getattr(config, "gateway", None)
    gateway = _from(table, "key", "key_env", GATEWAY_KEY_ENV, environ)
    admin = _from(table, "admin_key", "admin_key_env", ADMIN_KEY_ENV, environ)
    return GatewayKeys(gateway or None, admin or None)


def check_binding(host: str, keys: GatewayKeys) -> None:
    """Refuse to serve beyond this machine without a gateway key."""
    if keys.gateway is None and not is_loopback(host):
        raise ConfigError(
            f"Refusing to listen on {host}: beyond loopback the gateway needs a key. "
            f"Set {GATEWAY_KEY_ENV}, or `key_env` (or `key`) under [gateway] in config.toml, "
            "or bind 127.0.0.1."
        )


def key_refusal(
    keys: GatewayKeys, path: str, presented: list[bytes], *, loopback: bool
) -> tuple[int, AuthError] | None:
    """Why the keys ``presented`` may not call ``path`` (a status and an error), or None."""
    if path in UI_PUBLIC:
        return None
    if is_admin_path(path):
        expected = keys.admin_digest
        if expected is None:
            if not loopback:
                return 403, AuthError(_ADMIN_CLOSED)
            expected = keys.gateway_digest
        label = "admin key"
    else:
        expected = keys.gateway_digest
        label = "gateway key"
    if expected is None:
        return None
    if not presented:
        return 401, AuthError(_missing(label))
    if not _matches(presented, expected):
        return 401, AuthError(f"The {label} sent is not valid.")
    return None


def is_admin_path(path: str) -> bool:
    """Whether ``path`` administers the gateway: an admin route or the web UI."""
    return path.startswith(ADMIN_PREFIXES) or path == "/" or path.startswith(UI_PREFIX)


def _matches(presented: list[bytes], expected_digest: bytes) -> bool:
    ok = False
    for candidate in presented:
        # Digests of equal length: the comparison tells nothing about the key's
        # length, and no short-circuit: every presented key is compared.
        ok |= hmac.compare_digest(_digest(candidate), expected_digest)
    return ok


_ADMIN_CLOSED = (
    f"Admin routes are closed on a gateway that listens beyond loopback without an admin key; "
    f"set {ADMIN_KEY_ENV} (or [gateway] admin_key_env) to use them."
)


def _missing(label: str) -> str:
    return (
        f"This gateway requires its {label}: send it as `Authorization: Bearer <key>` "
        "or in the `x-api-key` header."
    )
