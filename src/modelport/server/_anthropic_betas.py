"""Which ``anthropic-beta`` flags an Anthropic client may have passed on to its upstream.

An Anthropic SDK sends beta flags (``anthropic-beta: a,b``) to switch on
features that change a chat. The gateway forwards the known ones, and only
when the model's address leads to an Anthropic upstream; anything else the
client sent stays with the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ANTHROPIC_BETAS", "beta_flags", "forwarded_headers"]

#: Beta flags an Anthropic client may have forwarded to an Anthropic upstream. A
#: fixed list, not whatever a client sends: each distinct header set is a provider
#: (and a connection pool) of its own, and these are the ones that change a chat.
ANTHROPIC_BETAS = frozenset(
    {
        "claude-code-20250219",
        "code-execution-2025-05-22",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "dev-full-thinking-2025-05-14",
        "effort-2025-11-24",
        "extended-cache-ttl-2025-04-11",
        "files-api-2025-04-14",
        "fine-grained-tool-streaming-2025-05-14",
        "interleaved-thinking-2025-05-14",
        "mcp-client-2025-04-04",
        "mcp-client-2025-11-20",
        "mid-conversation-system-2026-04-07",
        "model-context-window-exceeded-2025-08-26",
        "output-128k-2025-02-19",
        "pdfs-2024-09-25",
        "prompt-caching-2024-07-31",
        "prompt-caching-scope-2026-01-05",
        "structured-outputs-2025-11-13",
        "structured-outputs-2025-12-15",
        "thinking-token-count-2026-05-13",
        "token-efficient-tools-2025-02-19",
    }
)


def beta_flags(headers: Iterable[tuple[bytes, bytes]]) -> set[str] | None:
    """The known flags of the client's ``anthropic-beta`` header (``None``: none to pass on).

    ``headers`` are the request's raw ASGI headers (``scope["headers"]``, names in
    lower case, as Starlette's ``Headers`` reads them too): one pass over them, with no
    ``Headers`` object made for a lookup that almost always finds nothing, so the
    handler pays for :func:`forwarded_headers` only when there is something to forward.
    """
    for name, value in headers:
        if name == b"anthropic-beta":
            sent = value.decode("latin-1")
            break
    else:
        return None
    if not sent:
        return None
    return ({flag.strip() for flag in sent.split(",")} & ANTHROPIC_BETAS) or None


async def forwarded_headers(router: Any, address: str, flags: set[str]) -> dict[str, str] | None:
    """The client's beta ``flags`` (from :func:`beta_flags`), when ``address`` leads to an
    Anthropic upstream.

    Only known flags (:data:`ANTHROPIC_BETAS`) travel, merged with any the
    connection configures; ``anthropic-version`` never does (the provider speaks
    the version it was written for), nor does anything for another compat. The
    route is resolved with ``router.aresolve``: the connection's stored key is
    read off the event loop.
    """
    flags = set(flags)
    try:
        settings = (await router.aresolve(address)).settings
    except Exception:  # the call itself will say what is wrong with the address
        return None
    if settings.compat != "anthropic":
        return None
    configured = settings.headers.get("anthropic-beta") or settings.options.get("anthropic_beta")
    if isinstance(configured, str):
        flags.update(f.strip() for f in configured.split(",") if f.strip())
    elif configured:
        flags.update(str(f) for f in configured)
    return {"anthropic-beta": ",".join(sorted(flags))}
