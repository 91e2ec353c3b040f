"""The plugin protocol: JSON-RPC 2.0, one JSON object per line over stdio.

This module is the contract between the host (:mod:`modelport.plugin_host`)
and every SDK (:mod:`modelport.plugin_sdk`, and ``sdk/node`` which mirrors it):
the manifest's file name, the method names, the payloads exactly as they travel
(camelCase TypedDicts, as in DESIGN.md "The plugin protocol"), the error codes,
and framing. It does no I/O and imports nothing of modelport but
:mod:`modelport.errors`, so neither side loads the other, and the two cannot drift.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal, NotRequired, TypedDict

from modelport import errors
from modelport.errors import ModelportError, PluginError, error_from_dict

__all__ = [
    "CANCEL_REQUEST",
    "CANCELLED",
    "EXIT",
    "INITIALIZE",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LOG",
    "MANIFEST_NAME",
    "METHOD_NOT_FOUND",
    "PACKAGE_JSON",
    "PARSE_ERROR",
    "PROTOCOL_VERSION",
    "PROVIDER_CHUNK",
    "PROVIDER_COMPLETE",
    "PROVIDER_EMBED",
    "PROVIDER_REGISTER",
    "PROVIDER_STREAM",
    "PROVIDER_UNREGISTER",
    "SERVER_ERROR",
    "SHUTDOWN",
    "ChunkParams",
    "ConfigField",
    "InitializeParams",
    "OAuthBlock",
    "ProtocolError",
    "ProviderRequestParams",
    "RegisterParams",
    "RpcError",
    "encode",
    "error_from_rpc",
    "error_to_rpc",
    "notification",
    "parse_line",
    "request",
    "response",
]

PROTOCOL_VERSION = "1"

#: The file that makes a folder a plugin.
MANIFEST_NAME = "modelport-plugin.toml"
#: A Node plugin may declare itself here instead, in a "modelport": {"plugin": {...}} section.
PACKAGE_JSON = "package.json"

# Host → plugin.
INITIALIZE = "initialize"
PROVIDER_COMPLETE = "provider.complete"
PROVIDER_STREAM = "provider.stream"
#: Optional: ``options`` is an OpenAI ``/embeddings`` body (plus ``providerConfig``);
#: the answer an OpenAI embeddings ``list``. A plugin without it answers METHOD_NOT_FOUND.
PROVIDER_EMBED = "provider.embed"
CANCEL_REQUEST = "$/cancelRequest"
SHUTDOWN = "shutdown"
EXIT = "exit"
# Plugin → host.
PROVIDER_REGISTER = "provider.register"
PROVIDER_UNREGISTER = "provider.unregister"
PROVIDER_CHUNK = "provider.chunk"
LOG = "log"

# Standard JSON-RPC codes, plus LSP's "request cancelled" and one code for
# every modelport error (its class travels in ``data``).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
CANCELLED = -32800


class RpcError(TypedDict):
    code: int
    message: str
    data: NotRequired[dict[str, Any]]


class InitializeParams(TypedDict):
    protocolVersion: str
    host: dict[str, str]
    plugin: dict[str, str]


class ConfigField(TypedDict):
    """One value the user gives the provider. ``password`` values are secrets; an
    ``oauth`` field receives a fresh OAuth access token on every request."""

    key: str
    label: NotRequired[str]
    type: NotRequired[Literal["text", "password", "oauth"]]
    required: NotRequired[bool]


class OAuthBlock(TypedDict):
    """Where a provider's users log in (``modelport login <providerId>`` runs the flow).

    The user's ``[connections.<providerId>.oauth]`` overrides it; a client
    secret is never part of a registration.
    """

    authorizeUrl: str
    tokenUrl: str
    clientId: str
    scopes: NotRequired[list[str]]
    redirectPort: NotRequired[int]
    redirectPath: NotRequired[str]
    redirectHost: NotRequired[str]
    params: NotRequired[dict[str, str]]


class RegisterParams(TypedDict):
    providerId: str
    name: NotRequired[str]
    description: NotRequired[str]
    capabilities: NotRequired[list[str] | dict[str, bool]]
    requiresKey: NotRequired[bool]
    configFields: NotRequired[list[ConfigField]]
    models: NotRequired[list[dict[str, Any]]]
    oauth: NotRequired[OAuthBlock]


class ProviderRequestParams(TypedDict):
    requestId: str
    providerId: str
    options: dict[str, Any]


class ChunkParams(TypedDict):
    requestId: str
    chunk: dict[str, Any]


class ProtocolError(Exception):
    """A line that is not a JSON-RPC 2.0 message."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line. ``ensure_ascii`` keeps U+2028 and friends off the wire."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def request(id: int | str, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def response(
    id: int | str | None, *, result: Any = None, error: RpcError | None = None
) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "id": id, "error": error}
    return {"jsonrpc": "2.0", "id": id, "result": {} if result is None else result}


def parse_line(line: bytes | str) -> dict[str, Any]:
    """Decode one line into a request, notification or response; :class:`ProtocolError` if not."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {_excerpt(line)}") from exc
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise ProtocolError(f"not a JSON-RPC 2.0 message: {_excerpt(line)}")
    if "method" in message:
        if not isinstance(message["method"], str):
            raise ProtocolError(f"'method' is not a string: {_excerpt(line)}")
        if "id" in message and not isinstance(message["id"], int | str):
            raise ProtocolError(f"'id' is neither a number nor a string: {_excerpt(line)}")
        return message
    if "id" not in message or ("result" in message) == ("error" in message):
        raise ProtocolError(f"a response needs an id and one of result/error: {_excerpt(line)}")
    error = message.get("error")
    if "error" in message and (not isinstance(error, dict) or "code" not in error):
        raise ProtocolError(f"malformed error object: {_excerpt(line)}")
    return message


def _excerpt(line: bytes | str, limit: int = 200) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _wire_class(exc: ModelportError) -> str:
    """The nearest class of ``exc`` that :mod:`modelport.errors` defines: the other side
    knows only those names, so a subclass travels as the class it extends."""
    for cls in type(exc).__mro__:
        if getattr(errors, cls.__name__, None) is cls:
            return cls.__name__
    return ModelportError.__name__  # pragma: no cover - every ModelportError has one


def error_to_rpc(exc: BaseException) -> RpcError:
    """A JSON-RPC error whose ``data`` keeps a modelport error's class, status and retry-after."""
    if isinstance(exc, ModelportError):
        data = exc.to_dict()
        data["class"] = _wire_class(exc)
        return {"code": SERVER_ERROR, "message": data.pop("message"), "data": data}
    return {
        "code": INTERNAL_ERROR,
        "message": f"{type(exc).__name__}: {exc}",
        "data": {"class": "PluginError"},
    }


_INT_FIELDS = ("status", "limit", "actual")
_TEXT_FIELDS = ("connection", "url", "model", "body", "plugin")


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """``value`` as a finite, non-negative number (``"3"`` and ``3.0`` too), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    if kind is int:
        return int(value) if value == int(value) else None
    return float(value)


def _clean_data(data: dict[str, Any]) -> dict[str, Any]:
    """The fields of an error's ``data`` in the types the error classes expect.

    A plugin's answer is untrusted input: ``"retry_after": "3"`` or
    ``"status": "503"`` would otherwise reach the retry logic as strings.
    Numbers are converted where they can be; anything else is dropped.
    """
    clean: dict[str, Any] = {"class": data["class"]}
    for key in _INT_FIELDS:
        number = _number(data.get(key), int)
        if number is not None:
            clean[key] = number
    retry_after = _number(data.get("retry_after"), float)
    if retry_after is not None:
        clean["retry_after"] = retry_after
    for key in _TEXT_FIELDS:
        if isinstance(data.get(key), str):
            clean[key] = data[key]
    return clean


def error_from_rpc(error: dict[str, Any], *, plugin: str) -> ModelportError:
    """Rebuild the error a plugin answered with; anything unnamed becomes a PluginError.

    Fields of the wrong type are converted or dropped (see :func:`_clean_data`),
    so a sloppy plugin still produces a well-formed error of the class it named.
    """
    message = str(error.get("message") or "the plugin reported an error")
    data = error.get("data")
    if isinstance(data, dict) and isinstance(data.get("class"), str):
        try:
            rebuilt = error_from_dict({**_clean_data(data), "message": message})
        except Exception:  # whatever a class's constructor makes of it, never a crash
            rebuilt = None
        if isinstance(rebuilt, PluginError) and rebuilt.plugin is None:
            rebuilt.plugin = plugin
        if rebuilt is not None and type(rebuilt) is not ModelportError:
            return rebuilt
    code = error.get("code")
    return PluginError(f"{message} (JSON-RPC error {code})", plugin=plugin)
