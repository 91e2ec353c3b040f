"""The one-shot login callback: a tiny Starlette app on ``127.0.0.1`` served by uvicorn.

The authorization server sends the browser back to
``http://127.0.0.1:<port><path>?code=…&state=…``. This server listens on the
loopback address only, answers only a request that came from this machine and
names a loopback host (a web page elsewhere cannot rebind a DNS name to reach
it), takes the first callback and no other, and holds the browser's request
until the login has finished, so the page the user sees says whether it
worked. Any other path is a 404; a second callback is refused.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import socket
from types import TracebackType
from typing import TYPE_CHECKING

from modelport.errors import AuthError, ConfigError

if TYPE_CHECKING:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["CallbackServer", "is_loopback_peer"]

#: How long the browser's request waits for the code exchange before the page is sent anyway.
_OUTCOME_WAIT = 60.0


def is_loopback_peer(host: str | None) -> bool:
    """Whether a connection came from this machine (``127.0.0.0/8`` or ``::1``)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CallbackServer:
    """``async with CallbackServer(port, path, host_name) as server: url = await server.wait(t)``.

    ``port`` 0 takes any free port; :attr:`redirect_uri` is known once entered.
    Call :meth:`finish` with the outcome, which the waiting browser then shows.
    """

    def __init__(self, *, port: int, path: str, host_name: str = "127.0.0.1") -> None:
        self.port = port
        self.path = path
        self.host_name = host_name
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._callback: asyncio.Future[str] | None = None
        self._outcome: asyncio.Future[tuple[bool, str]] | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://{self.host_name}:{self.port}{self.path}"

    async def __aenter__(self) -> CallbackServer:
        import uvicorn

        loop = asyncio.get_running_loop()
        self._callback = loop.create_future()
        self._outcome = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Loopback only, whatever redirect_host says: nothing off this machine may call in.
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"Cannot listen for the login callback on 127.0.0.1:{self.port} "
                f"({exc.strerror or type(exc).__name__}) — is another login running? "
                "Set redirect_port to a free port, or 0 for any"
            ) from None
        sock.listen(8)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._task = loop.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # its failure, if it failed
                break
            await asyncio.sleep(0.005)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result((False, "The login was abandoned."))
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self._socket is not None:
            self._socket.close()

    async def wait(self, timeout: float) -> str:
        """The callback URL the browser brought back; :class:`AuthError` after ``timeout``."""
        assert self._callback is not None and self._task is not None
        done, _ = await asyncio.wait(
            {self._callback, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self._callback in done:
            return self._callback.result()
        if self._task in done:
            raise AuthError("The login callback server stopped before the browser came back")
        raise AuthError(
            f"No login callback arrived within {timeout:g} s. Finish signing in within that "
            "time, or run the command again (with --no-browser to copy the URL yourself)"
        )

    def finish(self, ok: bool, message: str) -> None:
        """What the waiting browser is told: success, or the failure's message."""
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result((ok, message))

    # --- the app ---------------------------------------------------------------

    def _app(self) -> object:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(routes=[Route(self.path, self._handle, methods=["GET"])])

    def _host_allowed(self, host_header: str) -> bool:
        allowed = {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", self.host_name)}
        return host_header.lower() in allowed

    async def _handle(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        peer = request.client.host if request.client is not None else None
        if not is_loopback_peer(peer) or not self._host_allowed(request.headers.get("host", "")):
            refusal = "This address accepts callbacks from this machine only."
            return HTMLResponse(_page(False, refusal), 403)
        assert self._callback is not None and self._outcome is not None
        if self._callback.done():
            return HTMLResponse(_page(False, "This login has already received its callback."), 409)
        self._callback.set_result(str(request.url))
        try:
            ok, message = await asyncio.wait_for(asyncio.shield(self._outcome), _OUTCOME_WAIT)
        except TimeoutError:
            ok, message = False, "The login is taking too long; see the terminal."
        return HTMLResponse(_page(ok, message), 200 if ok else 400)


def _page(ok: bool, message: str) -> str:
    title = "Signed in to modelport" if ok else "modelport sign-in failed"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title}</title></head><body style='font-family:sans-serif;margin:3em'>"
        f"<h1>{title}</h1><p id=message>{html.escape(message)}</p>"
        "<p>You can close this tab and return to the terminal.</p></body></html>"
    )
