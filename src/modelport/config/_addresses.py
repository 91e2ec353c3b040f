"""Model addresses: ``connection/model``, aliases and the default model.

An address is split at its *first* slash only, so model ids keep theirs:
``openrouter/anthropic/claude-3.5-sonnet`` is the model
``anthropic/claude-3.5-sonnet`` on the connection ``openrouter``.

An address may name only the connection, when its table sets a ``model``
(``[connections.local] model = "llama3.1:8b"``): ``local/`` always means that
model, and a bare ``local`` does too when no alias of that name exists.

Any other name without a slash must be an alias. It is never quietly sent to
the default model's connection: a user who keeps prompts on a local server
would not want ``gpt-4o`` to go anywhere by guesswork, so the error suggests
the full address instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from modelport.config._load import Config
from modelport.errors import ConfigError, ModelNotFoundError

__all__ = ["default_model", "resolve_address", "resolve_target", "split_address"]

_HOW_TO = "Write a model as 'connection/model', for example 'openai/gpt-4o-mini'."


def split_address(address: str) -> tuple[str, str]:
    """``"a/b/c"`` → ``("a", "b/c")``; ModelNotFoundError if either half is empty."""
    connection, slash, model = address.partition("/")
    if not slash or not connection or not model:
        raise ModelNotFoundError(f"{address!r} is not a model address. {_HOW_TO}")
    return connection, model


def default_model(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """``default_model`` from the config, else ``MODELPORT_MODEL``, else ``None``."""
    if config.default_model:
        return config.default_model
    environ = os.environ if env is None else env
    return environ.get("MODELPORT_MODEL") or None


def resolve_address(
    name: str | None, config: Config, *, env: Mapping[str, str] | None = None
) -> str:
    """Turn what a caller wrote into a ``connection/model`` address.

    ``None`` or ``""`` means the default model. Aliases may point at other
    aliases; a cycle raises ConfigError. A name that is neither an alias nor
    an address raises ModelNotFoundError listing the aliases, and so does a
    model group (several deployments are not one address; see :func:`resolve_target`).
    """
    target = resolve_target(name, config, env=env)
    if target in config.model_groups:
        raise ModelNotFoundError(
            f"{target!r} is a model group of several deployments "
            f"({', '.join(config.model_groups[target].addresses)}), not one address; "
            "name one of them here",
            model=target,
        )
    return target


def resolve_target(
    name: str | None, config: Config, *, env: Mapping[str, str] | None = None
) -> str:
    """What a caller wrote, aliases followed: an address, or the name of a model group."""
    if not name:
        name = default_model(config, env)
        if not name:
            raise ModelNotFoundError(
                "No model given and no default model set. Pass a model, set "
                "default_model in config.toml, or set MODELPORT_MODEL. " + _HOW_TO
            )
    seen = [name]
    groups = config.model_groups
    if name in groups:
        return name
    while name in config.aliases:
        name = config.aliases[name]
        if name in seen:
            chain = " → ".join([*seen, name])
            raise ConfigError(
                f"The aliases form a cycle: {chain}. Point one of them at an address."
            )
        seen.append(name)
        if name in groups:
            return name
    connection, slash, model = name.partition("/")
    if not model and connection:
        own = _connection_model(connection, config)
        if own is not None:
            return f"{connection}/{own}"
        if slash:
            raise ModelNotFoundError(
                f"{name!r} names the connection {connection!r} without a model, and "
                f"[connections.{connection}] sets no model. Write '{connection}/MODEL', or set "
                f'model = "MODEL" under [connections.{connection}] in config.toml.',
                connection=connection,
            )
    if not slash:
        raise ModelNotFoundError(_unknown_name_message(name, config, env), model=name)
    split_address(name)
    return name


def _connection_model(connection: str, config: Config) -> str | None:
    """The default model of ``[connections.<connection>]`` (``None`` when it sets none)."""
    table = config.connections.get(connection)
    return table.model if table is not None else None


def _unknown_name_message(name: str, config: Config, env: Mapping[str, str] | None) -> str:
    parts = [f"{name!r} is neither an alias nor a model address. {_HOW_TO}"]
    fallback = default_model(config, env)
    if fallback and "/" in fallback:
        connection = fallback.partition("/")[0]
        parts.append(f"Did you mean '{connection}/{name}'?")
    if config.aliases:
        listed = ", ".join(
            f"{alias} → {target}" for alias, target in sorted(config.aliases.items())
        )
        parts.append(f"Aliases: {listed}.")
    else:
        parts.append("No aliases are configured (add them under [aliases] in config.toml).")
    return " ".join(parts)
