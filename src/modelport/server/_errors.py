"""How the gateway answers an error: in the shape of the API that was called, and safe to show.

Every error the gateway writes goes through here: a chat route's (with the
route's own wire module, :func:`json_error`), and one answered before any
route ran (a refusal by the guard, a 404 or 405), which takes its shape from
the path (:func:`error_response_for_path`): Anthropic's under
``/v1/messages``, OpenAI's everywhere else. The shapes themselves are the wire
modules' ``encode_error``; no error JSON is written here by hand.

Before an upstream's error is encoded, :func:`scrub_secrets` takes out what
must never reach a client: the keys this gateway holds, URL queries,
credentials.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.responses import Response

from modelport._redact import mask_secrets, public_text, public_url
from modelport.errors import InvalidRequestError, ModelportError
from modelport.types import ChatRequest, ChatResponse
from modelport.wire import anthropic_messages_server, openai_chat_server

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_BODY_BYTES_IN_FLIGHT",
    "MAX_ERROR_TEXT",
    "BodyTooLarge",
    "GatewayBusy",
    "ServerWire",
    "cap_error_text",
    "error_response_for_path",
    "json_error",
    "scrub_secrets",
]

#: The largest request body the gateway reads (a long chat with images fits well within;
#: Anthropic's own limit is 32 MB).
MAX_BODY_BYTES = 32 * 1024 * 1024

#: The most bytes of request bodies the gateway holds at once, counted from each
#: request's start to its end (a body is read, parsed and re-encoded for the
#: upstream: it costs several times its size while its call runs). Past it, a large
#: body is answered 503 with ``Retry-After`` (see :class:`GatewayBusy`).
MAX_BODY_BYTES_IN_FLIGHT = 256 * 1024 * 1024


class GatewayBusy(ModelportError):
    """The request bodies in flight fill the gateway's budget (answered 503, ``Retry-After``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The gateway is holding {limit // (1024 * 1024)} MiB of request bodies already; "
            "retry in a moment.",
            retry_after=1.0,
        )


class BodyTooLarge(InvalidRequestError):
    """A request body over the gateway's limit (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this gateway accepts ({limit // (1024 * 1024)} MiB)."
        )
        self.limit = limit


class ServerWire(Protocol):
    """The server half of a wire module (``modelport.wire.*_server``)."""

    def parse_request(self, body: Any) -> ChatRequest: ...

    def encode_response(self, response: ChatResponse) -> bytes: ...

    def encode_error(self, exc: ModelportError) -> tuple[int, bytes, dict[str, str]]: ...


#: The most of an error's message (and body excerpt) a client is sent. A message may
#: quote what the client or an upstream chose (a model name, an upstream's own
#: error text), so it is cut here rather than trusted to be short.
MAX_ERROR_TEXT = 2_000


def cap_error_text(exc: ModelportError) -> None:
    """Cut ``exc``'s message and body to :data:`MAX_ERROR_TEXT` characters (``…`` marks it)."""
    if len(exc.message) > MAX_ERROR_TEXT:
        exc.message = exc.message[:MAX_ERROR_TEXT] + "…"
    if exc.body and len(exc.body) > MAX_ERROR_TEXT:
        exc.body = exc.body[:MAX_ERROR_TEXT] + "…"


def json_error(wire: ServerWire, exc: ModelportError) -> Response:
    """A complete error answer in ``wire``'s shape."""
    cap_error_text(exc)
    status, body, headers = wire.encode_error(exc)
    response = Response(body, status_code=status, headers=headers, media_type="application/json")
    if isinstance(exc, BodyTooLarge):
        response.status_code = 413
    elif isinstance(exc, GatewayBusy):
        response.status_code = 503
        response.headers["retry-after"] = "1"
    return response


def error_response_for_path(path: str, exc: ModelportError) -> Response:
    """The error in the shape of the API that ``path`` belongs to (Anthropic or OpenAI)."""
    if path.startswith("/v1/messages"):
        return json_error(anthropic_messages_server, exc)
    return json_error(openai_chat_server, exc)


def scrub_secrets(state: Any, exc: ModelportError) -> None:
    """Make ``exc`` safe to encode: no key this gateway holds, no URL query, no credential.

    Errors are written to be secret-free, but an upstream may echo the key it
    was sent ("invalid key sk-…") and that text travels in the message. The
    gateway knows the exact values (its own keys and the failing connection's
    upstream key), so it replaces them outright; then the message, body and
    URL go through the same redaction as ``/health`` and the ledger
    (:mod:`modelport._redact`): no query string, fragment or
    ``user:password@`` part, nothing key-shaped.
    """
    secrets = [key.decode() for key in (state.keys.gateway, state.keys.admin) if key]
    if exc.connection:
        try:
            upstream_key = state.router.settings_for(exc.connection).api_key
        except Exception:  # an unknown or broken connection has no key to hide
            upstream_key = None
        if upstream_key:
            secrets.append(upstream_key)
    # Each exactly, and any run of 8+ of its first characters (mask_secrets; then
    # public_text masks every other key the process holds the same way).
    exc.message = mask_secrets(exc.message, secrets)
    if exc.body:
        exc.body = mask_secrets(exc.body, secrets)
    exc.message = public_text(exc.message)
    if exc.body:
        exc.body = public_text(exc.body)
    if exc.url:
        exc.url = public_url(exc.url)
    cap_error_text(exc)  # also on the way into a stream's in-band error
