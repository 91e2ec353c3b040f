"""Status codes and headers → the error classes; shared by every wire format."""

from __future__ import annotations

import email.utils
import html
import re
import time
from collections.abc import Mapping

from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)

__all__ = [
    "describe_body",
    "error_for_status",
    "excerpt",
    "parse_retry_after",
    "status_for_code",
    "truncated_stream",
]

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "maximum context",
    "input is too long",
    "context limit",
)
_NUMBERS = re.compile(r"(\d[\d,]*)")
# "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000" (Anthropic)
_SUM_OVER_LIMIT = re.compile(r"(\d[\d,]*)\s*\+\s*(\d[\d,]*)\s*>\s*(\d[\d,]*)")


def excerpt(body: bytes | str, limit: int = 500) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "…"


_HTML_START = ("<!doctype html", "<html", "<head", "<body", "<title")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<script.*?</script>|<style.*?</style>|<[^>]*>", re.IGNORECASE | re.DOTALL)
#: Where an HTML page's title or text is looked for: its beginning is enough.
_HTML_SCAN = 64 * 1024


def describe_body(body: bytes | str, limit: int = 300) -> str:
    """An error body in a few words for a message: an excerpt of text or JSON, but an
    HTML page (a proxy's or a load balancer's error page) as its title or first words,
    never its markup."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if not text[:256].lower().startswith(_HTML_START):
        return excerpt(text, limit)
    page = text[:_HTML_SCAN]
    title = _TITLE.search(page)
    words = html.unescape(_TAGS.sub(" ", title.group(1) if title else page)).split()
    summary = excerpt(" ".join(words), 120)
    return f"an HTML page ({summary})" if summary else "an HTML page"


def truncated_stream() -> NetworkError:
    """The error for a body that ended before the stream said it had finished."""
    return NetworkError("The upstream closed the stream before it finished")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _context_numbers(message: str) -> tuple[int | None, int | None]:
    """(limit, actual) from messages like "maximum context length is 8192 tokens ... 9000"."""
    summed = _SUM_OVER_LIMIT.search(message)
    if summed:
        first, second, limit = (int(n.replace(",", "")) for n in summed.groups())
        return limit, first + second
    numbers = [int(n.replace(",", "")) for n in _NUMBERS.findall(message)]
    numbers = [n for n in numbers if n >= 16]
    if len(numbers) >= 2:
        if "maximum" in message.lower() or "limit" in message.lower():
            # Providers phrase it both ways round; the limit is the smaller one in practice.
            return min(numbers[:2]), max(numbers[:2])
    return (numbers[0], None) if numbers else (None, None)


def error_for_status(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    code: str | None = None,
) -> ModelportError:
    """The error class a status (and an upstream error ``code``) stands for."""
    headers = headers or {}
    text = excerpt(body) if body is not None else None
    lowered = f"{code or ''} {message}".lower()
    kwargs = {"status": status, "body": text}
    if status in (401, 403):
        return AuthError(
            f"{message} — check the API key for this connection "
            "(`modelport keys set NAME`, or the environment variable it reads)",
            **kwargs,
        )
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers), **kwargs)
    if status == 404 or code in ("model_not_found", "not_found_error"):
        return ModelNotFoundError(message, **kwargs)
    if status in (400, 413, 422):
        if any(hint in lowered for hint in _CONTEXT_HINTS):
            limit, actual = _context_numbers(message)
            return ContextTooLongError(message, limit=limit, actual=actual, **kwargs)
        return InvalidRequestError(message, **kwargs)
    return UpstreamError(message, retry_after=parse_retry_after(headers), **kwargs)


#: Status for an in-band OpenAI error that names no number, from its ``code`` or ``type``.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "model_not_found": 404,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
}


def status_for_code(code: object, kind: object) -> tuple[int, str | None]:
    """The HTTP status an in-band OpenAI error stands for, and its ``code`` when a word.

    An integer ``code`` (or its digits) is the status itself; a word such as
    ``insufficient_quota`` or a ``type`` such as ``rate_limit_error`` is looked
    up; anything else is a 500.
    """
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        return (code if 400 <= code <= 599 else 500), None
    text = code if isinstance(code, str) else None
    status = _ERROR_STATUS.get(text or "") or _ERROR_STATUS.get(
        kind if isinstance(kind, str) else ""
    )
    return status or 500, text
