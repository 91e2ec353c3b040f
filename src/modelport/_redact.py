"""What of an error may be shown: the one redaction for providers, the gateway and the ledger.

Error messages are written to be secret-free, but an upstream's text travels
in them ("invalid key sk-…"), and so do URLs, which may carry a key in their
query (``?api-key=…``), a fragment, or a ``user:password@`` part.
:func:`public_message` is what the gateway's ``/health``, its error bodies
and the ledger's error excerpt show of an exception; :func:`public_url` is the
URL part of it, and what every upstream error message carries. It lives at
the bottom of the package so providers, the ledger and the gateway share it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["public_message", "public_text", "public_url"]

# Shapes of credentials: key-like tokens, auth schemes, and URL userinfo.
_SECRET = re.compile(
    r"(?i)(\b(?:sk|pk|rk|key|xai|gsk|hf)[-_][A-Za-z0-9_\-]{12,})"
    r"|((?:bearer|basic)\s+)\S+"
    r"|(://[^:/@\s]+:)[^@\s]+@"
)
# A URL's query or fragment inside free text: everything from ``?``/``#`` to the next space.
_URL_TAIL = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s?#\"'<>]*)[?#][^\s\"'<>]*")
# A query-style credential outside a URL ("…/v1?key=…" cut, or "api_key=…").
_PARAM = re.compile(r"(?i)(\b(?:api[-_]?key|key|token|access_token|sig|password)=)[^&\s\"']+")


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return "***"
    if match.group(2):
        return match.group(2) + "***"
    return match.group(3) + "***@"


def public_url(url: str) -> str:
    """``url`` without ``user:password@``, the query or the fragment, safe for messages.

    The query goes whole: ``?key=…``, ``?api-key=…`` and ``?token=…`` are how some
    services take their keys, and no message needs the query to say what to check.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not parseable: cut the same parts out by hand.
        scheme, sep, rest = url.partition("://")
        if sep:
            authority, slash, path = rest.partition("/")
            url = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
        return url.split("?", 1)[0].split("#", 1)[0]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def public_text(text: str) -> str:
    """``text`` with URL queries and fragments dropped and anything key-like masked."""
    text = _URL_TAIL.sub(r"\1", text)
    text = _PARAM.sub(r"\1***", text)
    return _SECRET.sub(_mask, text)


def public_message(exc: BaseException) -> str:
    """What may be shown of ``exc``: its message and context, with no credential in it.

    A modelport error keeps its message and its connection, model, URL (see
    :func:`public_url`) and status; any other exception shows its text, masked
    the same way.
    """
    from modelport.errors import ModelportError

    if not isinstance(exc, ModelportError):
        return public_text(str(exc) or type(exc).__name__)
    context = exc.context_parts(show_url=public_url)
    message = public_text(exc.message or type(exc).__name__)
    return f"{message} ({', '.join(context)})" if context else message
