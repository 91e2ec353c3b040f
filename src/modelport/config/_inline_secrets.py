"""A key written into ``config.toml`` is refused, with the line, never silently dropped.

The built-in adapters take their key from the keyring or an environment
variable; an ``api_key = "sk-…"`` in ``[connections.work]`` used to land among
the connection's options, where nothing read it: the user's key was dropped
without a word and the calls went out without one. Refusing is the safer of
the two honest answers (using it would keep a secret in a file that is often
shared or committed): the message names the file, the line and the command
that stores the key properly.

A plugin's connection is different: its ``configFields`` values, a password
field's included, come from the table (DESIGN.md), so they are used as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError

__all__ = ["refuse_inline_secrets"]

#: Names under which a secret ends up written inline in a built-in connection's table.
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "apiKey",
        "key",
        "token",
        "access_token",
        "bearer_token",
        "secret",
        "password",
        "client_secret",
    }
)
#: The compat names of the built-in adapters, which read keys only from the keyring or env.
_BUILTIN_COMPATS = (None, "openai", "anthropic", "ollama")


def refuse_inline_secrets(name: str, table: dict[str, Any], path: Path) -> None:
    """Raise :class:`ConfigError` for a secret written in ``[connections.<name>]``."""
    if table.get("compat") not in _BUILTIN_COMPATS:
        return
    for key in table:
        if key not in _SECRET_KEYS:
            continue
        line = _line_of(path, name, key)
        where = f"{path}, line {line}" if line else str(path)
        variable = f"{name.upper().replace('-', '_')}_API_KEY"
        raise ConfigError(
            f"{where}: [connections.{name}] sets {key!r} in the file, and modelport never "
            f"reads a key from config.toml (it would be silently unused). Remove the line, "
            f"then store the key with `modelport keys set {name}`, or put it in an "
            f'environment variable and name it with api_key_env = "{variable}"',
            connection=name,
        )


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def _line_of(path: Path, name: str, key: str) -> int | None:
    """The 1-based line that sets ``key`` in ``[connections.<name>]``, when it can be found."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    table = f"connections.{name}"
    names = {table, f'connections."{name}"'}
    assignment = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    dotted = re.compile(rf"^\s*connections\.[\"']?{re.escape(name)}[\"']?\.{re.escape(key)}\s*=")
    current = ""
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).replace(" ", "")
            continue
        if current in names and assignment.match(line):
            return number
        if current == "" and dotted.match(line):
            return number
    return None
