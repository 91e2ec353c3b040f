"""The web UI at ``/``: models, chat, plugins, settings and usage, in the browser.

The UI is static files shipped inside the package (``static/``): one HTML
page, plain ES modules and a stylesheet, no build step, nothing fetched from
anywhere but this gateway, so ``modelport serve`` serves it on a machine with
no Node and no network. The page gets everything it shows from the
documented routes any script can call (``/admin/…``, ``/plugins…``,
``/v1/chat/completions``).

Every answer here carries a Content-Security-Policy that allows scripts from
this gateway only, never inline, and requires Trusted Types, so a string can
never become markup: model output is shown as text nodes (``static/markdown.js``
builds the elements of the Markdown it understands and nothing else).

Who may open it is the guard's business (:mod:`modelport.server._guard`):
where the admin routes need a key, the UI needs the same key, given once on
the sign-in page (:func:`login`), which sets an ``HttpOnly``,
``SameSite=Strict`` session cookie (:mod:`modelport.server._sessions`).
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.server._keys import key_refusal
from modelport.server._sessions import UiSessions, session_token

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Sent with every page and asset of the UI.
SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            # No string ever becomes markup: innerHTML and friends throw.
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
}
_RAW_HEADERS = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
#: A wrong key waits this long, so guessing costs time.
_WRONG_KEY_DELAY = 0.5


@cache
def _page(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _html(name: str, status: int = 200) -> Response:
    return Response(
        _page(name), status_code=status, media_type="text/html", headers=SECURITY_HEADERS
    )


async def index(request: Request) -> Response:
    """``GET /``: the single page; the guard already sent a browser that must sign in away."""
    return _html("index.html")


async def login_page(request: Request) -> Response:
    """``GET /ui/login``."""
    return _html("login.html")


class _Login(msgspec.Struct, forbid_unknown_fields=True):
    key: str


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


async def login(request: Request) -> Response:
    """``POST /ui/login`` ``{"key": …}``: sign this browser in with the key admin routes take."""
    state = request.app.state
    sessions: UiSessions = state.sessions
    try:
        key = msgspec.json.decode(await request.body(), type=_Login).key.strip()
    except msgspec.DecodeError:
        return _json({"error": {"message": 'Send {"key": "…"}.', "type": "invalid"}}, 400)
    open_refusal = key_refusal(state.keys, "/admin", [], loopback=state.loopback)
    if open_refusal is None:
        return _json({"signed_in": True, "needed": False})
    refusal = key_refusal(
        state.keys, "/admin", [key.encode()] if key else [], loopback=state.loopback
    )
    if refusal is not None:
        status, error = refusal
        if status == 401:
            await asyncio.sleep(_WRONG_KEY_DELAY)
            message = "That is not the key this gateway's admin routes take."
        else:
            message = error.message
        return _json({"error": {"message": message, "type": "authentication_error"}}, status)
    response = _json({"signed_in": True, "needed": True})
    response.headers["set-cookie"] = sessions.cookie(sessions.create())
    return response


async def session(request: Request) -> Response:
    """``GET /ui/session``: whether this browser is signed in with a session cookie.

    The cookie is ``HttpOnly``, so the page cannot look for itself; it asks here
    to know whether to offer **Sign out** (a keyless loopback gateway has no session).
    """
    sessions: UiSessions = request.app.state.sessions
    token = session_token(request.headers.get("cookie", "").encode())
    return _json({"session": sessions.valid(token)})


async def logout(request: Request) -> Response:
    """``POST /ui/logout``: end this browser's session."""
    request.app.state.sessions.end(session_token(request.headers.get("cookie", "").encode()))
    response = _json({"signed_in": False})
    response.headers["set-cookie"] = UiSessions.cleared_cookie()
    return response


class _Secured:
    """Adds :data:`SECURITY_HEADERS` to whatever the wrapped app answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in _RAW_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*headers, *_RAW_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_secured)


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/ui/login", login_page, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/session", session, methods=["GET"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Mount("/ui/static", app=_Secured(StaticFiles(directory=STATIC_DIR)), name="ui_static"),
    ]
