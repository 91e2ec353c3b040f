"""The access log: one line per HTTP request, with no header, no query string and no body.

:func:`access_fields` picks what a line holds and :func:`access_message`
writes it as ``key=value`` pairs; two writers share them:

* :func:`log_access`, the default: one :mod:`logging` record per request on
  the ``modelport.access`` logger, with the fields as ``record.access`` for
  an embedder's handlers (a JSON formatter, say);
* :class:`BufferedAccessLog`, what ``modelport serve`` uses: the same line,
  formatted here and written to a stream in batches, without the logging
  machinery's cost per request.

Both are an :data:`AccessLogWriter`, called by
:class:`~modelport.server._observe.ObserveMiddleware` once the response has
gone out, and only while ``modelport.access`` is enabled for ``INFO``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from typing import IO, Any

from starlette.types import Scope

__all__ = [
    "AccessLogWriter",
    "BufferedAccessLog",
    "access_fields",
    "access_line",
    "access_logger",
    "access_message",
    "log_access",
]

access_logger = logging.getLogger("modelport.access")

#: ``(scope, route, status, seconds)``: writes one request's line.
AccessLogWriter = Callable[[Scope, str, int, float], None]


#: The most of a path or model name a line holds; the rest is cut (with ``…``).
MAX_FIELD = 512

# A value written as it is: printable ASCII without a space, a quote or a backslash.
# Anything else (CR, LF, ESC, NUL, a space that would start a forged field) is quoted.
_PLAIN = re.compile(r"[!#-\[\]-~]*")


def access_fields(scope: Scope, route: str, status: int, seconds: float) -> dict[str, Any]:
    """One request's access-log fields: no header, no query string, no body.

    The path and the model name are the client's choice: each is cut to
    :data:`MAX_FIELD` characters here and escaped by :func:`access_message`.
    """
    client = scope.get("client")
    state = scope.get("state") or {}
    path = scope["path"]  # never the query string: some clients put keys there
    model = state.get("model")
    return {
        "method": scope["method"],
        "path": path if len(path) <= MAX_FIELD else path[:MAX_FIELD] + "…",
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "client": f"{client[0]}:{client[1]}" if client else None,
        "model": model if model is None or len(model) <= MAX_FIELD else model[:MAX_FIELD] + "…",
        "error": state.get("error"),
    }


def access_message(fields: dict[str, Any]) -> str:
    """The fields as ``key=value`` pairs; a path or model that is not plain is a JSON string.

    So no client can end a line, start a forged one, colour a terminal or add a
    field of its own: ``path=/a%0ab`` is logged as ``path="/a\\nb"``. The other
    fields are the gateway's own (a method llhttp checked, a route template, an
    address, a class name).
    """
    path = fields["path"]
    model = fields["model"]
    seen = _SEEN_PLAIN
    if not (path in seen or _is_plain(path)) or not (
        model is None or model in seen or _is_plain(model)
    ):
        fields = {**fields, "path": _escaped(path), "model": _escaped(model)}
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


# Paths and model names already found plain: a set lookup instead of a regex per line
# (the same few routes and models come back on every request). At most 1,024.
_SEEN_PLAIN: set[str] = set()


def _is_plain(value: str) -> bool:
    if _PLAIN.fullmatch(value) is None:
        return False
    if len(_SEEN_PLAIN) < 1_024:
        _SEEN_PLAIN.add(value)
    return True


def _escaped(value: str | None) -> str | None:
    if value is None or _is_plain(value):
        return value
    return json.dumps(value)  # ASCII only: \n, \r, \u001b, \u0000, \u2028 …


def access_line(scope: Scope, route: str, status: int, seconds: float) -> str:
    """``access_message(access_fields(...))`` written straight, without the dict and the join
    (the buffered log's line, once per request)."""
    state = scope.get("state") or {}
    path = scope["path"]
    if len(path) > MAX_FIELD:
        path = path[:MAX_FIELD] + "…"
    model = state.get("model")
    if model is not None and len(model) > MAX_FIELD:
        model = model[:MAX_FIELD] + "…"
    seen = _SEEN_PLAIN
    if not (path in seen or _is_plain(path)) or not (
        model is None or model in seen or _is_plain(model)
    ):
        path = _escaped(path)  # type: ignore[assignment]
        model = _escaped(model)
    line = (
        f"method={scope['method']} path={path} route={route} status={status} "
        f"duration_ms={round(seconds * 1000, 2)}"
    )
    client = scope.get("client")
    if client:
        line += f" client={client[0]}:{client[1]}"
    if model is not None:
        line += f" model={model}"
    error = state.get("error")
    if error is not None:
        line += f" error={error}"
    return line


def log_access(scope: Scope, route: str, status: int, seconds: float) -> None:
    """One :mod:`logging` record on ``modelport.access``, the fields as ``record.access``."""
    fields = access_fields(scope, route, status, seconds)
    access_logger.info(access_message(fields), extra={"access": fields})


class BufferedAccessLog:
    """The access log without the logging machinery: for ``modelport serve``.

    A :class:`logging.LogRecord` per request, passed through the handlers and
    written with a flush each, cost the event loop ~75 µs a request. This
    formats the same line as the serve log format
    (``%(asctime)s %(levelname)s %(name)s: %(message)s``) and writes lines
    in batches: every ``max_lines`` lines, ``interval`` seconds after the
    first unwritten line, and on :meth:`flush` (the app's shutdown). It honours
    the ``modelport.access`` logger's level, so ``--log-level warning`` still
    silences it. Embedders keep the default: one record per request through
    :mod:`logging`.
    """

    def __init__(self, stream: IO[str], *, max_lines: int = 256, interval: float = 0.5) -> None:
        self._stream = stream
        self._max_lines = max_lines
        self._interval = interval
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def __call__(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        message = access_line(scope, route, status, seconds)
        millis = int((now - second) * 1000)
        lines = self._lines
        lines.append(f"{self._stamp},{millis:03d} INFO modelport.access: {message}\n")
        if len(lines) >= self._max_lines:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Write every line held so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed stderr must not fail a request
            pass
