"""The guard in front of every route: where a request comes from, what body it sends, which key.

Web pages must not use a keyless loopback gateway on the visitor's behalf.
A browser lets any site send a "simple" cross-site POST (``text/plain``, no
preflight), and a DNS-rebinding page reaches 127.0.0.1 under its own host
name. So, before any key is checked, :class:`GuardMiddleware` refuses

* a ``Host`` that is neither loopback (``127.0.0.0/8``, ``::1``, ``localhost``)
  nor the host name the gateway was bound to (a wildcard binding, which
  needs a key anyway, accepts any);
* a request carrying an ``Origin`` that is not loopback (browsers send it on
  every cross-site request; SDKs and command-line tools send none);
* a ``POST``/``PUT``/``PATCH`` body that is not ``application/json`` (415),
  or that is larger than :data:`~modelport.server._errors.MAX_BODY_BYTES` (413).
  An empty body is no body, whatever ``Content-Type`` the client sends with it
  (Python's ``urllib`` sends a form type with ``data=b""``): the admin POSTs take none;
* a state-changing request to an admin route or the web UI whose ``Origin``
  is not the gateway itself: another page on this machine (a dev server on
  another port) may chat through a keyless loopback gateway, but must not
  rewrite its config, store keys or start processes;
* a body of more than 64 KiB while the bodies of the requests being answered
  already add up to :data:`~modelport.server._errors.MAX_BODY_BYTES_IN_FLIGHT`
  (503 with ``Retry-After``): each costs several times its size until its call
  ends, and sixty 31 MB bodies at once took 2.5 GB. A declared length is counted
  before a byte is read (a sum and a compare); a chunked body as it arrives.

Then the key the path needs (:func:`~modelport.server._keys.key_refusal`),
which a signed-in web UI session (:mod:`modelport.server._sessions`) stands
in for; a state-changing request on a session must carry the gateway's own
``Origin``. Once the gateway has issued virtual keys (:mod:`modelport.governance`),
a model route (``/v1/…``) takes one of those instead of the gateway key: the
key found goes to the route as ``scope["state"]["vkey"]`` (a signed-in UI
session, which is the admin's, still chats ungoverned). A refusal is answered
in the shape of the API the path belongs to, except the web UI's page, which
sends the browser to its sign-in page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.errors import AuthError, InvalidRequestError, ModelportError
from modelport.server._errors import (
    MAX_BODY_BYTES,
    MAX_BODY_BYTES_IN_FLIGHT,
    BodyTooLarge,
    GatewayBusy,
    error_response_for_path,
)
from modelport.server._keys import GatewayKeys, is_admin_path, is_loopback, key_refusal
from modelport.server._sessions import UiSessions, session_token

__all__ = ["BodyBudget", "GuardMiddleware"]


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

    __slots__ = (
        "content_length",
        "content_type",
        "cookie",
        "host",
        "keys",
        "origin",
        "size",
        "streamed",
    )

    def __init__(self, scope: Scope) -> None:
        self.size = 0  # the declared body length, once checked
        self.cookie: bytes | None = None
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
            elif name == b"cookie":
                self.cookie = value if self.cookie is None else self.cookie + b"; " + value


def _is_json(content_type: bytes) -> bool:
    if content_type in _JSON_TYPES_SEEN:
        return True
    media_type = content_type.partition(b";")[0].strip().lower()
    if media_type != b"application/json":
        return False
    if len(_JSON_TYPES_SEEN) < _REMEMBERED:
        _JSON_TYPES_SEEN.add(content_type)
    return True


#: How many ``Host`` and ``Content-Type`` values the guard remembers its answer for.
_REMEMBERED = 256
# The same few values come on every request (one client, one host name): a set or dict
# lookup instead of decoding and parsing each one again. Only answers are kept, never
# anything a client could grow past _REMEMBERED entries.
_JSON_TYPES_SEEN: set[bytes] = set()


class GuardMiddleware:
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
        governance: Any = None,
        sessions: UiSessions | None = None,
        bodies: BodyBudget | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        #: The team gateway's gate (:class:`~modelport.governance.Governance`), if any.
        self.governance = governance
        self.sessions = sessions
        self.loopback = loopback
        self.max_body = max_body
        # Shared by every guard of one app (the chat routes' direct path has its own).
        self.bodies = bodies if bodies is not None else BodyBudget()
        bound = _host_name(host)
        try:
            wildcard = ipaddress.ip_address(bound).is_unspecified
        except ValueError:
            wildcard = bound in ("", "*")
        self._any_host = wildcard
        self._hosts = frozenset({bound, *(_host_name(name) for name in allowed_hosts)})
        self._host_answers: dict[bytes, bool] = {}  # a raw Host header -> allowed

    def _host_allowed(self, host: str) -> bool:
        return self._any_host or host in self._hosts or _loopback_name(host)

    def _host_header_allowed(self, raw: bytes) -> bool:
        answer = self._host_answers.get(raw)
        if answer is None:
            answer = self._host_allowed(_host_name(raw.decode("latin-1")))
            if len(self._host_answers) < _REMEMBERED:
                self._host_answers[raw] = answer
        return answer

    def _origin_allowed(self, origin: bytes, host: bytes | None) -> bool:
        # Browsers send ``Origin`` on every cross-site request (and on same-site
        # POSTs); tools and SDKs send none. A page served from loopback, or from
        # the gateway itself, may call it; any other page may not.
        text = origin.decode("latin-1").strip().lower()
        scheme, sep, authority = text.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False  # "null" (sandboxed frames, file: pages) and the like
        if _same_origin(authority, host):
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
        size = request.size
        if not size and not request.streamed:
            await self.app(scope, receive, send)
            return
        # The body counts in the budget from here to the end of its call. Inline, not a
        # helper coroutine: this runs for every chat request.
        bodies = self.bodies
        if size > _SMALL_BODY and bodies.held + size > bodies.limit:
            await _refuse(scope, send, 503, GatewayBusy(bodies.limit))
            return
        bodies.held += size
        if not request.streamed:
            try:
                await self.app(scope, receive, send)
            finally:
                bodies.held -= size
            return
        held = _Held(size)
        try:
            await self.app(scope, _counting(receive, held, bodies), send)
        finally:
            bodies.held -= held.size

    def _refusal(self, scope: Scope, request: _Request) -> tuple[int, ModelportError] | None:
        if request.host is not None and not self._host_header_allowed(request.host):
            return 403, AuthError(_FOREIGN_HOST)
        if request.origin is not None and not self._origin_allowed(request.origin, request.host):
            return 403, AuthError(_FOREIGN_ORIGIN)
        path = scope["path"]
        changes = scope["type"] == "http" and scope["method"] not in _SAFE_METHODS
        if changes:
            if scope["method"] in _BODY_METHODS:
                body = self._body_refusal(request)
                if body is not None:
                    return body
            if (
                request.origin is not None
                and is_admin_path(path)
                and not _same_origin(_authority(request.origin), request.host)
            ):
                return 403, AuthError(_OTHER_PAGE)
        governance = self.governance
        if governance is not None and governance.active and path.startswith("/v1/"):
            found = governance.authenticate(request.keys)
            if not isinstance(found, AuthError):
                scope.setdefault("state", {})["vkey"] = found
                return None
            refusal: tuple[int, ModelportError] | None = (401, found)
        else:
            refusal = key_refusal(self.keys, path, request.keys, loopback=self.loopback)
        if refusal is not None and self._signed_in(request):
            if changes and (
                request.origin is None or not _same_origin(_authority(request.origin), request.host)
            ):
                # SameSite=Strict keeps other sites' pages from sending the cookie;
                # this keeps out a page on another port of this host (the same site).
                return 403, AuthError(_OTHER_PAGE)
            return None
        return refusal

    def _signed_in(self, request: _Request) -> bool:
        return self.sessions is not None and self.sessions.valid(session_token(request.cookie))

    def _body_refusal(self, request: _Request) -> tuple[int, ModelportError] | None:
        length = request.content_length
        has_body = request.streamed or (length is not None and length.strip() not in (b"", b"0"))
        if has_body and (request.content_type is None or not _is_json(request.content_type)):
            return 415, InvalidRequestError(_NOT_JSON)
        if length is not None:
            try:
                request.size = int(length)
            except ValueError:
                request.size = -1
            if request.size < 0:
                request.size = 0
                return 400, InvalidRequestError("The Content-Length header is not a number.")
            if request.size > self.max_body:
                return 413, BodyTooLarge(self.max_body)
        return None


class BodyBudget:
    """The bytes of request bodies being answered right now, and how many may be."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int = MAX_BODY_BYTES_IN_FLIGHT) -> None:
        self.limit = limit
        self.held = 0


def _counting(receive: Receive, held: _Held, bodies: BodyBudget) -> Receive:
    """``receive`` for a chunked body: counted as it arrives, refused past the budget."""

    async def counted() -> Message:
        message = await receive()
        size = len(message.get("body", b""))
        if size:
            held.size += size
            bodies.held += size
            if held.size > _SMALL_BODY and bodies.held > bodies.limit:
                raise GatewayBusy(bodies.limit)
        return message

    return counted


class _Held:
    """The bytes of one request's body counted in the budget (grows as a chunked body arrives)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


#: A body this small is never refused for the budget (it still counts in it).
_SMALL_BODY = 64 * 1024


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _authority(origin: bytes) -> str:
    return origin.decode("latin-1").strip().lower().partition("://")[2]


def _same_origin(authority: str, host: bytes | None) -> bool:
    """Whether an origin's ``authority`` is the host the request was sent to."""
    return (
        bool(authority) and host is not None and authority == host.decode("latin-1").strip().lower()
    )


_FOREIGN_HOST = (
    "This gateway answers only to its own host name (127.0.0.1, localhost or the "
    "address it was bound to); the Host header named another."
)
_FOREIGN_ORIGIN = (
    "Requests from web pages on other sites are refused: this gateway acts with your "
    "keys and must not be driven by a page you happen to visit."
)
_NOT_JSON = "Send the request body as JSON, with `Content-Type: application/json`."
_OTHER_PAGE = (
    "Only the gateway's own pages may change its settings or plugins; this request came "
    "from another page (its Origin is not this gateway)."
)
#: Where a browser that is not signed in is sent instead of the web UI.
_SIGN_IN = "/ui/login"


async def _refuse(scope: Scope, send: Send, status: int, error: ModelportError) -> None:
    if scope["type"] == "websocket":
        # 1008: policy violation. The handshake is refused before it is accepted.
        await send({"type": "websocket.close", "code": 1008})
        return
    scope.setdefault("state", {})["error"] = type(error).__name__
    if scope["path"] == "/" and scope["method"] in ("GET", "HEAD") and status in (401, 403):
        # A person opening the web UI: show the sign-in page, which says what is needed.
        response = Response(status_code=303, headers={"location": _SIGN_IN})
    else:
        response = error_response_for_path(scope["path"], error)
        response.status_code = status
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
