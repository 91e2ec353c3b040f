"""What of an error may be shown: the one redaction for providers, the gateway and the ledger.

Error messages are written to be secret-free, but an upstream's text travels
in them ("invalid key sk-…"), and so do URLs, which may carry a key in their
query (``?api-key=…``), a fragment, or a ``user:password@`` part.
:func:`public_message` is what the gateway's ``/health``, its error bodies
and the ledger's error excerpt show of an exception; :func:`public_url` is the
URL part of it, and what every upstream error message carries. It lives at
the bottom of the package so providers, the ledger and the gateway share it.

Patterns catch keys of the usual shapes; a key of another shape is caught
because the process knows it: every key it holds is remembered
(:func:`remember_secret`: connection settings, plugin passwords, the gateway's
keys), and :func:`public_text` masks each one, and any run of eight or more of
its first characters (an upstream that echoes ``sk-holdout-OAI...``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_secrets", "public_message", "public_text", "public_url", "remember_secret"]

#: How many distinct secrets are remembered (a process holds a handful; per-call
#: keys from a long-running caller must not grow this without end).
MAX_KNOWN_SECRETS = 256
#: A secret this short is masked where it appears whole, and never by prefix; a
#: shorter one is not masked at all ("ab" everywhere would garble text, not protect it).
_SHORTEST = 4
#: A run of this many of a secret's first characters is masked wherever it appears.
PREFIX = 8

# Newest last. Replaced whole (never changed in place), so a reader on another
# thread (the ledger's writer) always sees a complete tuple.
_known: tuple[str, ...] = ()
_known_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` (and any 8+ character prefix of it) in every public text from now on.

    Values shorter than eight characters are not remembered: they are
    placeholders (``ollama``, ``EMPTY``) far more often than keys, and masking
    them everywhere would garble messages that name them.
    """
    global _known
    if not value or len(value) < PREFIX or value in _known:
        return
    with _known_lock:
        if value not in _known:
            _known = (*_known[-(MAX_KNOWN_SECRETS - 1) :], value)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` and of the remembered ones replaced by ``***``.

    A secret is masked wherever it appears whole. One of eight characters or
    more is also masked where a run of at least its first eight stands as a token
    of its own (not inside a longer word: ``nomic-embed-text`` does not show a
    cut of the key ``embed-test-…``): an upstream that echoes a cut key
    (``sk-abcdefgh...``) still shows none of it. Where keys share a beginning
    (``sk-proj-…``), each place is masked as far as the longest of them matches,
    whatever order they were remembered in. ``secrets`` may be as short as four
    characters (the gateway's own keys); shorter ones are not masked.
    """
    spans: list[tuple[int, int]] = []
    for secret in (*secrets, *_known):
        if len(secret) >= _SHORTEST:
            _find_runs(text, secret, spans)
    if not spans:
        return text
    spans.sort()
    pieces: list[str] = []
    position = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        pieces += (text[position:start], "***")
        position = end
        start, end = next_start, next_end
    pieces += (text[position:start], "***", text[end:])
    return "".join(pieces)


def _find_runs(text: str, secret: str, spans: list[tuple[int, int]]) -> None:
    """Add to ``spans`` each place ``secret`` is whole, or 8+ of its first characters
    stand as a token."""
    size = len(secret)
    start = text.find(secret if size < PREFIX else secret[:PREFIX])
    while start != -1:
        if size < PREFIX:
            spans.append((start, start + size))
        else:
            end = start + PREFIX
            limit = min(len(text), start + size)
            while end < limit and text[end] == secret[end - start]:
                end += 1
            if end - start == size or _is_token(text, start, end):
                spans.append((start, end))
        start = text.find(secret if size < PREFIX else secret[:PREFIX], start + 1)


def _is_token(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is not part of a longer word (a cut key is not)."""
    return (start == 0 or not _continues_key(text[start - 1])) and (
        end == len(text) or not _continues_key(text[end])
    )


def _continues_key(character: str) -> bool:
    return character.isalnum() or character in "-_"


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
    """``text`` with URL queries and fragments dropped and anything key-like masked.

    Key-like: the usual key shapes, and every secret this process remembers
    (:func:`remember_secret`), whole or by a prefix of eight characters or more.
    """
    text = mask_secrets(text)
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
