"""The ``[cache]`` table: which answers the gateway keeps, for how long, and how many.

::

    [cache]
    models = ["gpt-4o", "local/*"]   # names as clients send them; globs; default ["*"]
    ttl = 3600                       # seconds an answer is served from the cache
    max_entries = 10000              # answers kept at most (least recently used go first)
    max_bytes = 268435456            # their encoded size at most, all together
    max_entry_bytes = 1048576        # a larger answer is not kept
    per_tenant = true                # one partition per key/team; false shares answers

No ``[cache]`` table, no cache. With ``redis_url`` set the answers live in
Redis and every instance shares them; otherwise in this process's memory.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any

import msgspec

from modelport.errors import ConfigError

__all__ = ["CacheConfig", "parse_cache"]


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The response cache's settings (see the module docstring)."""

    models: list[str] = msgspec.field(default_factory=lambda: ["*"])
    ttl: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    max_entries: Annotated[int, msgspec.Meta(gt=0)] = 10_000
    max_bytes: Annotated[int, msgspec.Meta(gt=0)] = 256 * 1024 * 1024
    max_entry_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1024 * 1024
    per_tenant: bool = True


_KEYS = frozenset(CacheConfig.__struct_fields__)


def parse_cache(table: dict[str, Any], path: Path | str = "<config>") -> CacheConfig:
    """``[cache]`` validated; ConfigError naming the file and the key."""
    for key in table:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(f"{path}: [cache]: unknown key {key!r}.{hint} Known keys: {known}")
    try:
        return msgspec.convert(table, CacheConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: [cache]: {str(exc).replace('`$.', '`')}") from None
