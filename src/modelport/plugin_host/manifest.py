"""A plugin's manifest: ``modelport-plugin.toml``, or a ``package.json`` with a plugin section.

Every problem is a :class:`ManifestError` naming the file and the key, with
what was expected, so that a plugin author can fix it without reading this
module; whatever the file holds (wrong types at any key, values that cannot
be hashed, bytes that are not UTF-8, a huge file, a symbolic link that loops),
reading it raises that error and nothing else. Unknown keys are allowed:
newer manifests may add some.

A Node plugin may declare itself in its ``package.json`` instead::

    {"name": "my-llm-provider", "version": "1.0.0", "main": "dist/index.js",
     "modelport": {"plugin": {"type": "llmProvider", "triggers": [{"type": "startup"}]}}}

``main`` is the entry (the command is ``node <main>`` unless the section sets
``command``); ``type``, ``triggers``, ``env``, ``description`` and ``command``
go in the section. A ``package.json`` without the section is not a plugin
(:class:`NotAPlugin` says why, for ``modelport plugins list``).
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.errors import ConfigError
from modelport.plugin_protocol import MANIFEST_NAME, PACKAGE_JSON

__all__ = [
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "PACKAGE_JSON",
    "PLUGIN_TYPE",
    "TRIGGERS",
    "Manifest",
    "ManifestError",
    "NotAPlugin",
    "load_manifest",
]

PLUGIN_TYPE = "llm-provider"
_TYPES = frozenset({PLUGIN_TYPE, "llmProvider"})
TRIGGERS = frozenset({"startup"})
#: A manifest is a few hundred bytes; anything past this is not one.
MAX_MANIFEST_BYTES = 1024 * 1024

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
_SECTION = "modelport"


class ManifestError(ConfigError):
    """A manifest that is missing, unreadable, not TOML/JSON, or has a key of the wrong shape."""


class NotAPlugin(ManifestError):
    """A ``package.json`` without a ``"modelport": {"plugin": {...}}`` section: not a plugin."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A validated manifest. ``dir`` is the plugin folder (the child's working directory).

    ``file`` is the manifest's file name and ``hash`` the SHA-256 of its bytes;
    ``entry`` is the ``main`` file of a ``package.json`` plugin run as ``node <main>``.
    """

    name: str
    version: str
    command: tuple[str, ...]
    dir: Path
    type: str = PLUGIN_TYPE
    triggers: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    description: str = ""
    file: str = MANIFEST_NAME
    entry: str | None = None
    hash: str = field(default="", compare=False)

    @property
    def starts_at_startup(self) -> bool:
        return "startup" in self.triggers


def _exists(path: Path) -> bool:
    """Whether anything is at ``path``, a broken or looping link included."""
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _read(path: Path) -> bytes:
    """The file's bytes, refusing what is not a small regular file."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path}: not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES // 1024} KiB")
        with path.open("rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_MANIFEST_BYTES:  # it grew while we looked
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES // 1024} KiB")
    return raw


def load_manifest(plugin_dir: Path) -> Manifest:
    """Read and check the plugin's manifest: ``modelport-plugin.toml``, else ``package.json``."""
    toml_path = plugin_dir / MANIFEST_NAME
    package_path = plugin_dir / PACKAGE_JSON
    if _exists(toml_path):
        raw = _read(toml_path)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ManifestError(f"{toml_path}: not valid TOML ({exc})") from None
        return _validate(data, toml_path, hashlib.sha256(raw).hexdigest(), {})
    if _exists(package_path):
        raw = _read(package_path)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise ManifestError(f"{package_path}: not valid JSON ({exc})") from None
        fields, names = _from_package(data, package_path)
        return _validate(fields, package_path, hashlib.sha256(raw).hexdigest(), names)
    raise ManifestError(
        f"{toml_path}: no {MANIFEST_NAME} (or {PACKAGE_JSON} with a plugin section) "
        "in this plugin folder"
    )


def _from_package(data: Any, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest fields a ``package.json`` declares, and the key each came from."""
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: must hold a JSON object")
    section = data.get(_SECTION)
    plugin = section.get("plugin") if isinstance(section, dict) else None
    if plugin is None:
        other = next(
            (k for k, v in data.items() if k != _SECTION and isinstance(v, dict) and "plugin" in v),
            None,
        )
        hint = (
            f" (it has a plugin section under {other!r}; modelport reads the same fields "
            'under "modelport")'
            if other is not None
            else ""
        )
        raise NotAPlugin(
            f'{path}: no "modelport": {{"plugin": {{...}}}} section, so this folder is '
            f"not a modelport plugin{hint}"
        )
    if not isinstance(plugin, dict):
        raise ManifestError(f"{path}: 'modelport.plugin' must be an object")
    names = {key: f"modelport.plugin.{key}" for key in ("type", "triggers", "env", "command")}
    names["description"] = "modelport.plugin.description"
    fields = {key: plugin[key] for key in names if key in plugin}
    for key in ("name", "version", "description"):
        if key in plugin:
            fields[key], names[key] = plugin[key], f"modelport.plugin.{key}"
        elif key in data:
            fields[key], names[key] = data[key], key
    if isinstance(fields.get("name"), str):
        fields["name"] = re.sub(r"^@[^/]*/", "", fields["name"])  # "@acme/x" is the plugin "x"
    if "command" not in plugin:
        main = data.get("main", "index.js")
        if not isinstance(main, str) or not main.strip():
            raise ManifestError(f"{path}: 'main' must name the plugin's entry file (got {main!r})")
        fields["command"] = ["node", main]
        fields["entry"] = main
    return fields, names


def _validate(data: dict[str, Any], path: Path, digest: str, names: dict[str, str]) -> Manifest:
    def fail(key: str, expected: str) -> ManifestError:
        shown = "missing" if key not in data else f"got {data[key]!r:.200}"
        return ManifestError(f"{path}: '{names.get(key, key)}' must be {expected} ({shown})")

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", "a name of letters, digits, '.', '_' or '-' (at most 64)")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("version", 'a version string such as "1.0.0"')
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise fail("type", f'"{PLUGIN_TYPE}" (or "llmProvider")')
    command = data.get("command")
    if isinstance(command, str):
        raise fail("command", 'a list of strings such as ["node", "index.js"], not one string')
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise fail("command", 'a non-empty list of strings such as ["node", "index.js"]')
    triggers = _triggers(data.get("triggers", []))
    if triggers is None:
        raise fail("triggers", '["startup"] or [{type = "startup"}], or [] (start only on request)')
    env = data.get("env", [])
    if not isinstance(env, list) or not all(isinstance(v, str) and _ENV_NAME.match(v) for v in env):
        raise fail("env", 'a list of environment variable names such as ["HTTPS_PROXY"]')
    secrets = [name for name in env if _SECRET_ENV.search(name)]
    if secrets:
        raise ManifestError(
            f"{path}: '{names.get('env', 'env')}' may not pass secrets to the plugin "
            f"({', '.join(secrets)}); declare a password field in configFields instead, "
            "and the user's key arrives as providerConfig"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "a string")
    entry = data.get("entry")
    return Manifest(
        name=name,
        version=version,
        command=tuple(command),
        dir=path.parent,
        triggers=triggers,
        env=tuple(env),
        description=description,
        file=path.name,
        entry=entry if isinstance(entry, str) else None,
        hash=digest,
    )


def _triggers(raw: Any) -> tuple[str, ...] | None:
    """``["startup"]`` or ``[{type = "startup"}]`` (mixed too) as trigger names; None if neither."""
    if not isinstance(raw, list):
        return None
    names = []
    for item in raw:
        if isinstance(item, dict):
            item = item.get("type")
        if not isinstance(item, str) or item not in TRIGGERS:
            return None
        names.append(item)
    return tuple(dict.fromkeys(names))
