"""``modelport-plugin.toml``: reading and validating a plugin's manifest.

Every problem is a :class:`ManifestError` naming the file and the key, with
what was expected, so that a plugin author can fix it without reading this
module. Unknown keys are allowed: newer manifests may add some.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError
from modelport.plugin_protocol import MANIFEST_NAME

__all__ = [
    "MANIFEST_NAME",
    "PLUGIN_TYPE",
    "TRIGGERS",
    "Manifest",
    "ManifestError",
    "load_manifest",
]

PLUGIN_TYPE = "llm-provider"
TRIGGERS = frozenset({"startup"})

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The host's keys and tokens never reach a plugin through its environment:
# secrets travel only as the providerConfig of the plugin's own provider.
# A name is refused when a secret word appears anywhere in it (AWS_SECRET_ACCESS_KEY,
# GH_TOKEN_FILE) or one of its _-separated words is a short secret word
# (AWS_ACCESS_KEY_ID, GITHUB_PAT), or it names a connection string (DATABASE_URL).
_SECRET_ENV = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|APIKEY|ACCESSKEY|PRIVATE"
    r"|(?:^|_)(?:KEYS?|PAT|PASS|PWD|AUTH|DSN|COOKIES?|SESSION|SIGNATURE)(?:_|$)"
    r"|(?:^|_)(?:DATABASE|DB|REDIS|MONGO(?:DB)?|POSTGRES(?:QL)?|PG|MYSQL|AMQP|BROKER)_?(?:URL|URI)$"
    r"|^MODELPORT_",
    re.I,
)


class ManifestError(ConfigError):
    """A manifest that is missing, not TOML, or has a key of the wrong shape."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A validated manifest. ``dir`` is the plugin folder (the child's working directory)."""

    name: str
    version: str
    command: tuple[str, ...]
    dir: Path
    type: str = PLUGIN_TYPE
    triggers: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    description: str = ""
    hash: str = field(default="", compare=False)

    @property
    def starts_at_startup(self) -> bool:
        return "startup" in self.triggers


def load_manifest(plugin_dir: Path) -> Manifest:
    """Read and check ``plugin_dir/modelport-plugin.toml``."""
    path = plugin_dir / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no {MANIFEST_NAME} in this plugin folder") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from exc
    return _validate(data, path, hashlib.sha256(raw).hexdigest())


def _validate(data: dict[str, Any], path: Path, digest: str) -> Manifest:
    def fail(key: str, expected: str) -> ManifestError:
        got = data.get(key)
        shown = "missing" if key not in data else f"got {got!r}"
        return ManifestError(f"{path}: '{key}' must be {expected} ({shown})")

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", "a name of letters, digits, '.', '_' or '-' (at most 64)")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("version", 'a version string such as "1.0.0"')
    if data.get("type") != PLUGIN_TYPE:
        raise fail("type", f'"{PLUGIN_TYPE}"')
    command = data.get("command")
    if isinstance(command, str):
        raise fail("command", 'a list of strings such as ["node", "index.js"], not one string')
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise fail("command", 'a non-empty list of strings such as ["node", "index.js"]')
    triggers = data.get("triggers", [])
    if not isinstance(triggers, list) or not all(t in TRIGGERS for t in triggers):
        raise fail("triggers", '["startup"] or [] (start only on request)')
    env = data.get("env", [])
    if not isinstance(env, list) or not all(isinstance(v, str) and _ENV_NAME.match(v) for v in env):
        raise fail("env", 'a list of environment variable names such as ["HTTPS_PROXY"]')
    secrets = [name for name in env if _SECRET_ENV.search(name)]
    if secrets:
        raise ManifestError(
            f"{path}: 'env' may not pass secrets to the plugin ({', '.join(secrets)}); declare a "
            "password field in configFields instead, and the user's key arrives as providerConfig"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "a string")
    return Manifest(
        name=name,
        version=version,
        command=tuple(command),
        dir=path.parent,
        triggers=tuple(dict.fromkeys(triggers)),
        env=tuple(env),
        description=description,
        hash=digest,
    )
