"""``GET /health``: is the gateway up, and how is each connection and plugin doing.

The answer never waits on an upstream: probing every provider would make a
liveness check as slow as the slowest server and hammer them on every poll.
Instead the chat routes report each call's outcome to a :class:`HealthTracker`
and ``/health`` shows what the last real call saw. The route answers 200 as
soon as the app has started; a connection that is failing turns the overall
``status`` to ``degraded`` without making the gateway look dead, as does a
usage ledger whose database is unreachable (its records wait meanwhile).
The route also reports the configuration: one that no longer loads
(``config.state`` ``stale``: the last good one runs, ``config.error`` says why)
turns ``status`` to ``degraded`` too. Each connection shows where it goes
(``upstream``: its URL without credentials or query, or ``plugin:<id>``).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelport._redact import public_message, public_url
from modelport.errors import (
    AuthError,
    ConfigError,
    ModelportError,
    NetworkError,
    ParseError,
    PluginError,
    RateLimitError,
    UpstreamError,
)

__all__ = ["HealthTracker", "health_endpoint"]

# Errors that say something about the connection itself. A bad request or an
# unknown model is the caller's problem and leaves the connection's state alone.
_CONNECTION_ERRORS = (
    AuthError,
    ConfigError,
    NetworkError,
    ParseError,
    PluginError,
    RateLimitError,
    UpstreamError,
)


class _ConnectionHealth:
    __slots__ = ("calls", "failures", "last_error", "last_error_at", "last_success_at", "state")

    def __init__(self) -> None:
        self.state = "idle"
        self.calls = 0
        self.failures = 0
        self.last_error: dict[str, Any] | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None


class HealthTracker:
    """Per-connection outcome of the most recent calls through the gateway.

    ``known`` returns the current connection names; outcomes for any other
    name (a client asking for a connection that does not exist) are dropped,
    so a stream of bad requests cannot grow this table without bound.
    """

    def __init__(self, known: Any) -> None:
        self._known = known
        self._names: set[str] = set()
        self._connections: dict[str, _ConnectionHealth] = {}
        self.started_at = time.time()

    def _entry(self, name: str) -> _ConnectionHealth | None:
        entry = self._connections.get(name)
        if entry is None:
            if name not in self._names:
                self._names = set(self._known())
                if name not in self._names:
                    return None
            entry = self._connections[name] = _ConnectionHealth()
        return entry

    def record(self, address: str, error: BaseException | None) -> None:
        """Note how one call to ``address`` (``connection/model``) went."""
        connection = getattr(error, "connection", None) or address.partition("/")[0]
        entry = self._entry(connection)
        if entry is None:
            return
        entry.calls += 1
        if error is None:
            entry.state = "ok"
            entry.last_success_at = time.time()
            return
        if isinstance(error, _CONNECTION_ERRORS):
            entry.state = "error"
            entry.failures += 1
        entry.last_error = {"class": type(error).__name__, "message": _message(error)}
        entry.last_error_at = time.time()

    def snapshot(self, names: list[str]) -> list[dict[str, Any]]:
        rows = []
        for name in names:
            entry = self._connections.get(name) or _ConnectionHealth()
            rows.append(
                {
                    "name": name,
                    "state": entry.state,
                    "calls": entry.calls,
                    "failures": entry.failures,
                    "last_error": entry.last_error,
                    "last_error_at": entry.last_error_at,
                    "last_success_at": entry.last_success_at,
                }
            )
        return rows


#: The most of a connection's last error ``/health`` shows (as the ledger keeps).
_MAX_MESSAGE = 500


def _message(error: BaseException) -> str:
    # /health needs no key: the same redaction as error bodies and the ledger
    # (no credential, URL query or fragment), and only the class of anything else.
    # Cut short: the message may quote an upstream's error text of any length.
    if not isinstance(error, ModelportError):
        return type(error).__name__
    text = public_message(error)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _plugins(host: Any) -> list[dict[str, Any]]:
    # A plugin's own error text may quote its stderr (paths, tokens, prompts), and
    # /health needs no key: only the state shows here, the details on the admin
    # routes (GET /plugins/{name}).
    if host is None:
        return []
    rows = []
    for info in host.describe_all():
        rows.append(
            {
                "name": info.get("name"),
                "state": info.get("state"),
                "last_error": _PLUGIN_ERROR if info.get("error") else None,
                "exit_code": info.get("exit_code"),
                "restarts": info.get("restarts"),
            }
        )
    return rows


_PLUGIN_ERROR = "The plugin failed; GET /plugins/{name} (admin key) shows why."


def _ledger(state: Any) -> dict[str, Any] | None:
    # The usage ledger's own report (ok, or degraded while its database is away);
    # a router handed in may record through a ledger of its own.
    ledger = getattr(state, "ledger", None) or getattr(state.router, "ledger", None)
    health = getattr(ledger, "health", None)
    return health() if callable(health) else None


async def health_endpoint(request: Request) -> Response:
    """``GET /health``: 200 with each connection's, plugin's and the ledger's state."""
    state = request.app.state
    tracker: HealthTracker = state.health
    router = state.router
    connections = tracker.snapshot(sorted(router.connection_names()))
    for row in connections:
        upstream = router.upstream(row["name"])
        row["upstream"] = public_url(upstream) if upstream else None
    plugins = _plugins(getattr(state, "plugin_host", None))
    ledger = _ledger(state)
    reloader = getattr(state, "reloader", None)
    config = reloader.status() if reloader is not None else None
    degraded = (
        any(c["state"] == "error" for c in connections)
        or any(p["state"] == "crashed" for p in plugins)
        or (ledger is not None and ledger["state"] != "ok")
        or (config is not None and config["state"] == "stale")
    )
    body = {
        "status": "degraded" if degraded else "ok",
        "uptime_s": round(time.time() - tracker.started_at, 3),
        "connections": connections,
        "plugins": plugins,
        "ledger": ledger,
    }
    if config is not None:
        body["config"] = config
    return Response(msgspec.json.encode(body), media_type="application/json")
