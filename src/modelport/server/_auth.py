"""Who may call the gateway: the gateway key, the admin key and the loopback rule.

* Bound to loopback with no key configured, anyone on this machine may call.
* Bound to anything else, the gateway refuses to start without a gateway key
  (:func:`check_binding`).
* A configured key is always required, whatever the binding. It is accepted as
  ``Authorization: Bearer <key>`` (what the OpenAI SDK sends) or ``x-api-key``
  (what the Anthropic SDK sends), and compared with :func:`hmac.compare_digest`.
* Admin routes (``/plugins…``) take the admin key when one is set. Without
  one they follow the gateway key on loopback and are closed elsewhere: a
  key handed to every tool must not also start and stop processes.

Keys live only in :class:`GatewayKeys` (whose ``repr`` hides them) and are
never logged or echoed: a refusal names the header to send, not what was sent.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.errors import AuthError, ConfigError, ModelportError

__all__ = [
    "ADMIN_PREFIXES",
    "AuthMiddleware",
    "GatewayKeys",
    "check_binding",
    "error_response_for_path",
    "is_loopback",
    "resolve_keys",
]

#: Paths that administer the gateway rather than use a model.
ADMIN_PREFIXES = ("/plugins",)

GATEWAY_KEY_ENV = "MODELPORT_GATEWAY_KEY"
ADMIN_KEY_ENV = "MODELPORT_ADMIN_KEY"


class GatewayKeys:
    """The gateway and admin keys as bytes, ready for constant-time comparison."""

    __slots__ = ("admin", "gateway")

    def __init__(self, gateway: str | None = None, admin: str | None = None) -> None:
        self.gateway = gateway.encode() if gateway else None
        self.admin = admin.encode() if admin else None

    def __repr__(self) -> str:
        gateway = "'***'" if self.gateway else "None"
        admin = "'***'" if self.admin else "None"
        return f"GatewayKeys(gateway={gateway}, admin={admin})"


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


def _presented(scope: Scope) -> list[bytes]:
    found = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                found.append(token.strip())
        elif name == b"x-api-key":
            found.append(value.strip())
    return found


def _matches(presented: list[bytes], expected: bytes) -> bool:
    ok = False
    for candidate in presented:
        # No short-circuit: every presented key is compared in constant time.
        ok |= hmac.compare_digest(candidate, expected)
    return ok


class AuthMiddleware:
    """Pure ASGI guard in front of every route (nothing to do when no key applies)."""

    def __init__(self, app: ASGIApp, keys: GatewayKeys, loopback: bool = True) -> None:
        self.app = app
        self.keys = keys
        self.loopback = loopback
        # Fast path: nothing to check for anyone.
        self._open = keys.gateway is None and keys.admin is None and loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._open or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIXES):
            expected = self.keys.admin
            if expected is None:
                if not self.loopback:
                    await _refuse(scope, send, 403, _ADMIN_CLOSED)
                    return
                expected = self.keys.gateway
            label = "admin key"
        else:
            expected = self.keys.gateway
            label = "gateway key"
        if expected is not None:
            presented = _presented(scope)
            if not presented:
                await _refuse(scope, send, 401, _missing(label))
                return
            if not _matches(presented, expected):
                await _refuse(scope, send, 401, f"The {label} sent is not valid.")
                return
        await self.app(scope, receive, send)


_ADMIN_CLOSED = (
    f"Admin routes are closed on a gateway that listens beyond loopback without an admin key; "
    f"set {ADMIN_KEY_ENV} (or [gateway] admin_key_env) to use them."
)


def _missing(label: str) -> str:
    return (
        f"This gateway requires its {label}: send it as `Authorization: Bearer <key>` "
        "or in the `x-api-key` header."
    )


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        # 1008: policy violation. The handshake is refused before it is accepted.
        await send({"type": "websocket.close", "code": 1008})
        return
    scope.setdefault("state", {})["error"] = "AuthError"
    response = error_response_for_path(scope["path"], AuthError(message))
    response.status_code = status
    await response(scope, _no_receive, send)


def error_response_for_path(path: str, exc: ModelportError) -> Response:
    """The error in the shape of the API that ``path`` belongs to (Anthropic or OpenAI)."""
    if path.startswith("/v1/messages"):
        from modelport.server.anthropic_routes import error_response
    else:
        from modelport.server.openai_routes import error_response
    return error_response(exc)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
