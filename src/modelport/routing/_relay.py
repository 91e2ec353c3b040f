"""Which calls may take the same-format passthrough, decided from the config alone.

The passthrough (:mod:`modelport.wire.relay`) sends a client's own body to an
upstream of the same API. The router can promise that only where every route
a call may take speaks that API with nothing of the gateway's own to add:
:func:`relay_compat` says ``openai`` or ``anthropic`` when the address and each
configured fallback (none a model group) is a connection of that one compat (a preset or a
``[connections.*]`` table, not a plugin or a registered provider), that logs
in with a key (an OAuth login is refreshed around each call by its own
provider), and none of them sets a request default (``temperature``, ``max_tokens``, ``top_p``: the
decode-encode path merges those into the request). The server adds what it
alone knows (the API the client speaks, what the request asks for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport.errors import ModelportError
from modelport.providers._relay import Relay

if TYPE_CHECKING:
    from modelport.routing._router import Router

__all__ = ["RELAYED_COMPATS", "REQUEST_DEFAULTS", "Relay", "relay_compat"]

#: The compats whose provider is the built-in one for the API of the same name.
RELAYED_COMPATS = frozenset({"openai", "anthropic"})
#: Connection keys that would change a request's body on the decode-encode path.
REQUEST_DEFAULTS = frozenset({"temperature", "max_tokens", "top_p"})


def relay_compat(router: Router, address: str | None) -> str | None:
    """The compat every route of ``address``'s chain shares, when it may be relayed."""
    from modelport.routing._fallbacks import fallback_chain

    try:
        chain = fallback_chain(address, router.config, router.env)
    except ModelportError:
        return None
    if router.config.model_groups.keys() & {address, *chain}:
        return None  # a model group's balancer picks the deployment (and may mix APIs)
    found: str | None = None
    for entry in chain:
        connection = entry.partition("/")[0]
        if not entry.partition("/")[2] or router.needs_provider_source(connection):
            return None  # a bare connection name, or a plugin's or a registered provider
        try:
            config = router._connection_config(connection)
        except ModelportError:
            return None
        compat = _relayable_compat(config)
        if compat is None or (found is not None and compat != found):
            return None
        found = compat
    return found


def _relayable_compat(config: Any) -> str | None:
    """The API a connection's own provider speaks, when the passthrough covers it: a
    built-in compat (``openai``, ``anthropic``), logging in with a key (an OAuth login
    is refreshed around each call by its provider), adding no request default to the body.
    """
    if config.compat not in RELAYED_COMPATS:
        return None
    if config.oauth is not None or config.auth not in (None, "key"):
        return None
    if REQUEST_DEFAULTS & config.options.keys() or any(
        getattr(config, key, None) is not None for key in REQUEST_DEFAULTS
    ):
        return None
    return str(config.compat)
