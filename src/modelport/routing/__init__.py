"""The router: a model address → a connection, its provider and the bare model id.

::

    router = Router(load_config())
    async for event in router.stream(ChatRequest(model="local/llama3.1:8b", messages=...)):
        ...

Settings resolve per call — the call's overrides, then ``config.toml``, the
connection's preset, the environment, built-in defaults — and a key goes only
to a URL it was paired with (the stored key and ``api_key_env`` only to the
connection's own URL; ``MODELPORT_BASE_URL`` only for a connection with no URL;
``MODELPORT_API_KEY`` with that variable or an explicitly configured
``base_url``). Fallbacks happen only where configured under ``[fallbacks]``.

The router (:mod:`._router`) ties together six private pieces, each with its own
module, and takes the values they share (:class:`Route`) from :mod:`._route`:

- :mod:`modelport.routing._settings` — the settings ladder: which URL, key, timeout
  and retries a call uses; a key goes only to a URL it was paired with;
- :mod:`modelport.routing._route_cache` — the providers it keeps (one per connection
  and settings), those registered at run time, those built for one call with
  its own key, and remembered routes;
- :mod:`modelport.routing._provider_source` — providers that exist only while
  something runs (plugins), from an optional :class:`ProviderSource`
  (``Router(provider_source=plugin_host)``) started once, on first need;
- :mod:`modelport.routing._fallbacks` — the fallbacks configured under
  ``[fallbacks]``, each one logged (there are no others);
- :mod:`modelport.routing._balancer` — model groups (an alias written as a table):
  which deployment a call goes to, cooldowns, failover within the group, with
  in-flight counts in this process or in Redis (:mod:`._deployment_state`);
- :mod:`modelport.routing._usage` — usage tracking, with a ledger (a :class:`UsageTracker`).

Every call is wrapped in retries (:mod:`modelport.providers._retry`; an
:data:`OnRetry` callback hears of each). :meth:`Router.complete` asks the
upstream for a non-streaming answer. The router counts its calls in flight
(:mod:`modelport.routing._calls`), so one that a reload replaced closes once
they end (:meth:`Router.aclose_when_idle`).
"""

from modelport.providers._retry import OnRetry
from modelport.routing._provider_source import ProviderSource, ProviderSourceFactory, plugin_host
from modelport.routing._route import ConnectionModels, ProviderRegistry, Route
from modelport.routing._router import Router
from modelport.routing._settings import is_local_url
from modelport.routing._usage import UsageTracker

__all__ = [
    "ConnectionModels",
    "OnRetry",
    "ProviderRegistry",
    "ProviderSource",
    "ProviderSourceFactory",
    "Route",
    "Router",
    "UsageTracker",
    "is_local_url",
    "plugin_host",
]
