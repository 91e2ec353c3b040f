"""Model groups: one name in ``[aliases]`` with several deployments behind it.

A plain alias names one address (``fast = "local/qwen2.5-coder:7b"``). An
alias whose value is a table names a *group*: the same model served by
several connections, one of which the router picks for each call::

    [aliases.gpt-4o]
    strategy = "least-busy"          # weighted (default) | least-busy | lowest-latency
    cooldown = 30                    # seconds a failing deployment sits out
    allowed_fails = 3                # failures a minute it may have before that
    deployments = [
        { model = "azure-east/gpt-4o", weight = 2 },
        { model = "azure-west/gpt-4o" },
        "openai/gpt-4o",             # shorthand for weight 1
    ]

The shape is LiteLLM's (several deployments under one ``model_name``, each
``model`` a ``provider/model`` address with a ``weight``; ``allowed_fails``
and a cooldown) with Portkey's vocabulary for the strategy. Each deployment
is an address the user wrote: a group never reaches a model not listed here.
Parsing lives here so ``_load.py`` only has to split plain aliases from groups.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from modelport.errors import ConfigError

__all__ = ["STRATEGIES", "Deployment", "ModelGroup", "Strategy", "parse_group"]

Strategy = Literal["weighted", "least-busy", "lowest-latency"]
#: The strategies a group may name, in the order the docs list them.
STRATEGIES: tuple[str, ...] = ("weighted", "least-busy", "lowest-latency")

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Deployment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One deployment of a group: a ``connection/model`` address and its share."""

    model: str
    weight: _Positive = 1.0


class ModelGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A name with several deployments, and how calls are spread over them."""

    name: str
    deployments: tuple[Deployment, ...]
    strategy: Strategy = "weighted"
    #: Seconds a deployment sits out after more than ``allowed_fails`` failures in a minute.
    cooldown: float = 30.0
    allowed_fails: int = 3

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(d.model for d in self.deployments)


class _GroupFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    deployments: list[Deployment | str]
    strategy: str = "weighted"
    cooldown: _NonNegative = 30.0
    allowed_fails: Annotated[int, msgspec.Meta(ge=0)] = 3


_KEYS = frozenset(_GroupFields.__struct_fields__)


def parse_group(name: str, table: dict[str, Any], path: Path | str = "<config>") -> ModelGroup:
    """The group ``[aliases.<name>]`` describes; ConfigError naming the file and the key."""
    where = f"{path}: [aliases.{name}]"
    for key in table:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}.{hint} Known keys: {', '.join(sorted(_KEYS))}"
            )
    try:
        fields = msgspec.convert(table, _GroupFields)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {str(exc).replace('`$.', '`')}") from None
    if fields.strategy not in STRATEGIES:
        close = difflib.get_close_matches(fields.strategy, STRATEGIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: unknown strategy {fields.strategy!r}.{hint} "
            f"Choose one of: {', '.join(STRATEGIES)}"
        )
    deployments = tuple(
        Deployment(model=entry) if isinstance(entry, str) else entry for entry in fields.deployments
    )
    if not deployments:
        raise ConfigError(f"{where}: `deployments` is empty; list at least one address")
    seen: set[str] = set()
    for deployment in deployments:
        connection, slash, model = deployment.model.partition("/")
        if not (connection and slash and model):
            raise ConfigError(
                f"{where}: deployment {deployment.model!r} is not a model address; write "
                "each as 'connection/model', for example 'azure-east/gpt-4o'"
            )
        if deployment.model in seen:
            raise ConfigError(f"{where}: {deployment.model!r} is listed twice")
        seen.add(deployment.model)
    strategy: Strategy = fields.strategy  # type: ignore[assignment]  # checked above
    return ModelGroup(
        name=name,
        deployments=deployments,
        strategy=strategy,
        cooldown=fields.cooldown,
        allowed_fails=fields.allowed_fails,
    )
