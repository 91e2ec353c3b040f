"""Who may call the gateway: the gateway key, the admin key and the loopback rule.

* Bound to loopback with no key configured, anyone on this machine may call.
* Bound to anything else, the gateway refuses to start without a gateway key
  (:func:`check_binding`).
* A configured key is always required, whatever the binding. It is accepted as
  ``Authorization: Bearer <key>`` (what the OpenAI SDK sends) or ``x-api-key``
  (what the Anthropic SDK sends); the SHA-256 digests of what was sent and what
  is expected are compared with :func:`hmac.compare_digest`, so neither the
  key nor its length leaks through timing.
* Admin routes (``/plugins…``) take the admin key when one is set. Without
  one they follow the gateway key on loopback and are closed elsewhere: a
  key handed to every tool must not also start and stop processes.

Web pages must not use a keyless loopback gateway on the visitor's behalf.
A browser lets any site send a "simple" cross-site POST (``text/plain``, no
preflight), and a DNS-rebinding page reaches 127.0.0.1 under its own host
name. So, before any key is checked, :class:`AuthMiddleware` refuses

* a ``Host`` that is neither loopback (``127.0.0.0/8``, ``::1``, ``localhost``)
  nor the host name the gateway was bound to (a wildcard binding, which
  needs a key anyway, accepts any);
* a request carrying an ``Origin`` that is not loopback (browsers send it on
  every cross-site request; SDKs and command-line tools send none);
* a ``POST`` body that is not ``application/json`` (415), or that is larger
  than :data:`MAX_BODY_BYTES` (413).

Keys live only in :class:`GatewayKeys` (whose ``repr`` hides them) and are
never logged or echoed: a refusal names the header to send, not what was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.errors import AuthError, ConfigError, InvalidRequestError, ModelportError

__all__ = [
    "ADMIN_PREFIXES",
    "MAX_BODY_BYTES",
    "AuthMiddleware",
    "BodyTooLarge",
    "GatewayKeys",
    "check_binding",
    "error_response_for_path",
    "is_loopback",
    "resolve_keys",
]

#: Paths that administer the gateway rather than use a model.
ADMIN_PREFIXES = ("/plugins",)

#: The largest request body the gateway reads (a long chat with images fits well within).
MAX_BODY_BYTES = 32 * 1024 * 1024

GATEWAY_KEY_ENV = "MODELPORT_GATEWAY_KEY"
ADMIN_KEY_ENV = "MODELPORT_ADMIN_KEY"


class GatewayKeys:
    """The gateway and admin keys as bytes, with their SHA-256 digests for comparison."""

    __slots__ = ("admin", "admin_digest", "gateway", "gateway_digest")

    def __init__(self, gateway: str | None = None, admin: str | None = None) -> None:
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


def _matches(presented: list[bytes], expected_digest: bytes) -> bool:
    ok = False
    for candidate in presented:
        # Digests of equal length: the comparison tells nothing about the key's
        # length, and no short-circuit: every presented key is compared.
        ok |= hmac.compare_digest(_digest(candidate), expected_digest)
    return ok


def _host_name(value: str) -> str:
    """The host of a ``Host`` header or an origin's authority, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost") or is_loopback(host)


class _Request:
    """The few headers the guard needs, found in one pass over the raw list."""

    __slots__ = ("content_length", "content_type", "host", "keys", "origin", "streamed")

    def __init__(self, scope: Scope) -> None:
        self.host: bytes | None = None
        self.origin: bytes | None = None
        self.content_type: bytes | None = None
        self.content_length: bytes | None = None
        self.streamed = False
        self.keys: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"host":
                self.host = value
            elif name == b"origin":
                self.origin = value
            elif name == b"content-type":
                self.content_type = value
            elif name == b"content-length":
                self.content_length = value
            elif name == b"transfer-encoding":
                self.streamed = True
            elif name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    self.keys.append(token.strip())
            elif name == b"x-api-key":
                self.keys.append(value.strip())


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.partition(b";")[0].strip().lower()
    return media_type == b"application/json"


class AuthMiddleware:
    """Pure ASGI guard in front of every route: where from, what body, which key.

    ``host`` is the address the gateway is bound to: besides loopback names it
    is the one ``Host`` accepted (a wildcard binding accepts any, since it
    cannot listen without a gateway key), and so are ``allowed_hosts`` (the
    name a reverse proxy forwards, or an in-process test client's).
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: GatewayKeys,
        loopback: bool = True,
        host: str = "127.0.0.1",
        max_body: int = MAX_BODY_BYTES,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.keys = keys
        self.loopback = loopback
        self.max_body = max_body
        bound = _host_name(host)
        try:
            wildcard = ipaddress.ip_address(bound).is_unspecified
        except ValueError:
            wildcard = bound in ("", "*")
        self._any_host = wildcard
        self._hosts = frozenset({bound, *(_host_name(name) for name in allowed_hosts)})

    def _host_allowed(self, host: str) -> bool:
        return self._any_host or host in self._hosts or _loopback_name(host)

    def _origin_allowed(self, origin: bytes, host: bytes | None) -> bool:
        # Browsers send ``Origin`` on every cross-site request (and on same-site
        # POSTs); tools and SDKs send none. A page served from loopback, or from
        # the gateway itself, may call it; any other page may not.
        text = origin.decode("latin-1").strip().lower()
        scheme, sep, authority = text.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False  # "null" (sandboxed frames, file: pages) and the like
        if host is not None and authority == host.decode("latin-1").strip().lower():
            return True  # same origin as the request: a page the gateway served
        return _loopback_name(_host_name(authority))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = _Request(scope)
        refusal = self._refusal(scope, request)
        if refusal is not None:
            status, error = refusal
            await _refuse(scope, send, status, error)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, request: _Request) -> tuple[int, ModelportError] | None:
        if request.host is not None and not self._host_allowed(
            _host_name(request.host.decode("latin-1"))
        ):
            return 403, AuthError(_FOREIGN_HOST)
        if request.origin is not None and not self._origin_allowed(request.origin, request.host):
            return 403, AuthError(_FOREIGN_ORIGIN)
        if scope["type"] == "http" and scope["method"] == "POST":
            body = self._body_refusal(request)
            if body is not None:
                return body
        return self._key_refusal(scope["path"], request.keys)

    def _body_refusal(self, request: _Request) -> tuple[int, ModelportError] | None:
        length = request.content_length
        has_body = request.streamed or (length is not None and length.strip() not in (b"", b"0"))
        if request.content_type is not None:
            if not _is_json(request.content_type):
                return 415, InvalidRequestError(_NOT_JSON)
        elif has_body:
            return 415, InvalidRequestError(_NOT_JSON)
        if length is not None:
            try:
                too_large = int(length) > self.max_body
            except ValueError:
                return 400, InvalidRequestError("The Content-Length header is not a number.")
            if too_large:
                return 413, BodyTooLarge(self.max_body)
        return None

    def _key_refusal(self, path: str, presented: list[bytes]) -> tuple[int, ModelportError] | None:
        if path.startswith(ADMIN_PREFIXES):
            expected = self.keys.admin_digest
            if expected is None:
                if not self.loopback:
                    return 403, AuthError(_ADMIN_CLOSED)
                expected = self.keys.gateway_digest
            label = "admin key"
        else:
            expected = self.keys.gateway_digest
            label = "gateway key"
        if expected is None:
            return None
        if not presented:
            return 401, AuthError(_missing(label))
        if not _matches(presented, expected):
            return 401, AuthError(f"The {label} sent is not valid.")
        return None


class BodyTooLarge(InvalidRequestError):
    """A request body over the gateway's limit (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this gateway accepts ({limit // (1024 * 1024)} MiB)."
        )
        self.limit = limit


_FOREIGN_HOST = (
    "This gateway answers only to its own host name (127.0.0.1, localhost or the "
    "address it was bound to); the Host header named another."
)
_FOREIGN_ORIGIN = (
    "Requests from web pages on other sites are refused: this gateway acts with your "
    "keys and must not be driven by a page you happen to visit."
)
_NOT_JSON = "Send the request body as JSON, with `Content-Type: application/json`."


_ADMIN_CLOSED = (
    f"Admin routes are closed on a gateway that listens beyond loopback without an admin key; "
    f"set {ADMIN_KEY_ENV} (or [gateway] admin_key_env) to use them."
)


def _missing(label: str) -> str:
    return (
        f"This gateway requires its {label}: send it as `Authorization: Bearer <key>` "
        "or in the `x-api-key` header."
    )


async def _refuse(scope: Scope, send: Send, status: int, error: ModelportError) -> None:
    if scope["type"] == "websocket":
        # 1008: policy violation. The handshake is refused before it is accepted.
        await send({"type": "websocket.close", "code": 1008})
        return
    scope.setdefault("state", {})["error"] = type(error).__name__
    response = error_response_for_path(scope["path"], error)
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
