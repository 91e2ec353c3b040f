"""Gemini's error bodies → the error classes; :mod:`modelport.wire.gemini` re-exports them.

The choices made here are listed under **Errors** in that module's docstring.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from modelport.errors import ContextTooLongError, ModelNotFoundError, ModelportError
from modelport.wire import _gemini_shapes as _shapes
from modelport.wire._errors import error_for_status, excerpt

__all__ = ["error_from_response", "in_band_error"]

#: ``status`` words → HTTP status, for an in-band error that gives no ``code``.
_STATUSES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_TOKEN_LIMIT = re.compile(
    r"input token count \(?(\d+)\)? exceeds the maximum number of tokens allowed \(?(\d+)\)?"
)
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")
#: ``ErrorInfo.reason`` values that mean the key, whatever the status says.
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"})


def in_band_error(detail: _shapes.ErrorDetail) -> ModelportError:
    status = detail.code if detail.code and 400 <= detail.code <= 599 else None
    return _error(status or _STATUSES.get(detail.status or "", 500), detail, {}, None)


def _reason(detail: _shapes.ErrorDetail) -> str | None:
    for item in detail.details or ():
        reason = item.get("reason")
        if isinstance(reason, str):
            return reason
    return None


def _retry_delay(detail: _shapes.ErrorDetail) -> str | None:
    for item in detail.details or ():
        delay = item.get("retryDelay")
        if isinstance(delay, str) and (seconds := _SECONDS.match(delay.strip())):
            return seconds.group(1)
    return None


def _error(
    status: int,
    detail: _shapes.ErrorDetail,
    headers: Mapping[str, str],
    body: bytes | None,
) -> ModelportError:
    message = f"Gemini: {detail.message or detail.status or f'HTTP {status}'}"
    text = excerpt(body) if body is not None else None
    if "retry-after" not in headers and (delay := _retry_delay(detail)) is not None:
        headers = {**headers, "retry-after": delay}
    if _reason(detail) in _KEY_REASONS or "api key not valid" in message.lower():
        # Google answers a bad key with 400 INVALID_ARGUMENT; it is still the key.
        error = error_for_status(401, message, headers=headers, body=body)
        error.status = status
        return error
    if status == 404:
        return ModelNotFoundError(
            f"{message} — check the model id (`modelport models` lists them)",
            status=status,
            body=text,
        )
    limit = _TOKEN_LIMIT.search(message)
    if limit is not None:
        return ContextTooLongError(
            message, limit=int(limit.group(2)), actual=int(limit.group(1)), status=status, body=text
        )
    return error_for_status(status, message, headers=headers, body=body, code=detail.status)


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelportError:
    """The error for a non-2xx answer (Google's ``{"error": {...}}`` body)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        detail = _shapes.ERROR_BODY.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = None
    if detail is None:
        text = excerpt(body.strip(), 300) or "an empty body"
        detail = _shapes.ErrorDetail(message=f"HTTP {status}: {text}")
    return _error(status, detail, lowered, body)
