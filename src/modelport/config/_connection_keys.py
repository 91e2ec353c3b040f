"""Which keys a ``[connections.<name>]`` table may hold, so that none is accepted and ignored.

Every connection understands the keys the settings ladder and the router read
(``compat``, ``base_url``, ``timeout``, ``temperature`` …: the fields of the
table's schema in :mod:`modelport.config._load`). Beyond those, a key must be
one that the connection's adapter reads:

* ``compat = "anthropic"``: ``anthropic_version``, ``anthropic_beta``;
* ``compat = "ollama"``: ``options`` (Ollama's model options, such as
  ``{num_ctx = 32768}``, sent with every request);
* ``compat = "azure"``: ``api_version``, ``deployments``;
* ``compat = "openai"``, ``"openai-responses"`` and ``"gemini"``: nothing more;
* ``compat = "plugin:<id>"``: anything, for the plugin's ``configFields``
  (the plugin decides; ``base_url`` goes to a field of that name too), but
  not ``headers`` or ``timeout``, which reach no plugin process;
* an installed provider package's compat: anything (its factory gets them all).

``[connections.local]`` also keeps ``previous_default_model``, the default
that ``modelport local off`` restores.

A key outside that set is refused with its name, the file, and the closest key
that would be understood, never silently dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError

__all__ = ["check_connection_keys"]

PLUGIN_PREFIX = "plugin:"

#: Keys each built-in adapter reads from the table (``ConnectionSettings.options``).
_ADAPTER_KEYS: dict[str, frozenset[str]] = {
    "openai": frozenset(),
    "openai-responses": frozenset(),
    "anthropic": frozenset({"anthropic_version", "anthropic_beta"}),
    "ollama": frozenset({"options"}),
    "gemini": frozenset(),
    "azure": frozenset({"api_version", "deployments"}),
}

#: Keys the ``modelport`` command keeps in the table of one connection name.
_NAMED_KEYS: dict[str, frozenset[str]] = {"local": frozenset({"previous_default_model"})}

#: Keys every connection understands that reach nothing on a plugin's connection.
_PLUGIN_INERT: dict[str, str] = {
    "headers": "a plugin makes its own requests, so no header reaches its upstream",
    "timeout": "the plugin host's request timeout applies to plugin calls",
}

#: What to say about a key that belongs to another adapter.
_ELSEWHERE: dict[str, str] = {
    "options": (
        'Ollama\'s model options need its native API: compat = "ollama" with base_url = '
        '"http://localhost:11434" (Ollama\'s OpenAI-compatible /v1 ignores options; there, '
        "set OLLAMA_CONTEXT_LENGTH for the server or a num_ctx PARAMETER in a Modelfile)"
    ),
    "anthropic_version": 'it is read only by compat = "anthropic"',
    "anthropic_beta": 'it is read only by compat = "anthropic"',
    "api_version": 'it is read only by compat = "azure"',
    "deployments": 'it is read only by compat = "azure"',
    "previous_default_model": "only [connections.local] keeps it (for `modelport local off`)",
}


def check_connection_keys(
    path: Path,
    name: str,
    table: Mapping[str, Any],
    *,
    common: frozenset[str],
    preset_compat: str | None,
) -> None:
    """Raise :class:`ConfigError` for a key of ``table`` that would have no effect.

    ``common`` are the keys every connection understands; ``preset_compat``
    is the compat of the ready-made connection of the same name, if any (a
    table without ``compat`` takes it, else ``openai``).
    """
    compat = table.get("compat") or preset_compat or "openai"
    if not isinstance(compat, str):
        return  # the schema check names a compat that is not a string
    where = f"{path}: [connections.{name}]"
    if compat.startswith(PLUGIN_PREFIX):
        for key in table:
            if key in _PLUGIN_INERT:
                raise ConfigError(
                    f"{where}: {key!r} has no effect on a plugin's connection "
                    f"({_PLUGIN_INERT[key]}); remove it",
                    connection=name,
                )
        return
    adapter = _ADAPTER_KEYS.get(compat)
    if adapter is None:
        return  # an installed provider package: its factory receives every key
    allowed = common | adapter | _NAMED_KEYS.get(name, frozenset())
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: {_refusal(key, compat, allowed)}", connection=name)
    _check_values(where, name, table)


def _refusal(key: str, compat: str, allowed: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.5)
    if close:
        hint = f" Did you mean {close[0]!r}?"
    elif key in _ELSEWHERE:
        hint = f" ({_ELSEWHERE[key]})."
    else:
        hint = ""
    return (
        f"unknown key {key!r}: a connection with compat = {compat!r} would ignore it.{hint} "
        f"Keys it understands: {', '.join(sorted(allowed))}"
    )


def _check_values(where: str, name: str, table: Mapping[str, Any]) -> None:
    """The adapter keys' own shapes (the common keys have their schema)."""
    options = table.get("options")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(
            f"{where}: options must be a table, such as options = {{num_ctx = 32768}}",
            connection=name,
        )
    version = table.get("anthropic_version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(f"{where}: anthropic_version must be a string", connection=name)
    beta = table.get("anthropic_beta")
    if beta is not None and not (
        isinstance(beta, str) or (isinstance(beta, list) and all(isinstance(b, str) for b in beta))
    ):
        raise ConfigError(
            f"{where}: anthropic_beta must be a string or a list of strings", connection=name
        )
