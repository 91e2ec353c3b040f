"""Reading and validating ``config.toml``, global and per project, into a :class:`Config`."""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from modelport.config._cache_settings import CacheConfig, parse_cache
from modelport.config._connection_keys import check_connection_keys
from modelport.config._groups import ModelGroup, parse_group
from modelport.config._inline_secrets import refuse_inline_secrets
from modelport.config._oauth import OAuthConfig, check_auth, parse_oauth
from modelport.errors import ConfigError
from modelport.types import ModelPrices

__all__ = [
    "CONFIG_FILE",
    "PROJECT_DIR",
    "PRESETS",
    "PRESET_KEY_FALLBACKS",
    "Config",
    "ConnectionConfig",
    "GatewayConfig",
    "IgnoredSettings",
    "OAuthConfig",
    "check_base_url",
    "find_project_dir",
    "global_config_path",
    "load_config",
    "modelport_home",
    "parse_config",
    "project_config_path",
]

logger = logging.getLogger("modelport.config")

CONFIG_FILE = "config.toml"
PROJECT_DIR = ".modelport"
#: What an untrusted project's config.toml may set.
_UNTRUSTED_KEYS = frozenset({"default_model", "aliases"})

_Timeout = Annotated[float, msgspec.Meta(gt=0)]
_Retries = Annotated[int, msgspec.Meta(ge=0)]
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
_Seconds = Annotated[float, msgspec.Meta(ge=0)]


class ConnectionConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One ``[connections.<name>]`` table. ``None`` means "not set here".

    ``compat`` is ``openai``, ``anthropic``, ``ollama``, ``gemini``, ``azure``,
    ``openai-responses``, ``plugin:<provider id>`` or the name of an installed
    ``modelport.providers`` entry point. ``model``, ``temperature`` and
    ``max_tokens`` are the connection's defaults (a request's own values win;
    ``model`` answers an address that names only the connection).
    ``retry_base_delay`` and ``retry_max_delay`` bound the backoff between
    retries. ``options`` holds every other key of the table, untouched (an
    adapter's own settings, a plugin's ``configFields`` values); only keys with
    an effect get here (:mod:`modelport.config._connection_keys`). ``auth`` (``key``, ``oauth``,
    ``auto``) and ``oauth`` say how the connection logs in (:mod:`._oauth`).
    """

    compat: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    retry_base_delay: float | None = None
    retry_max_delay: float | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    prices: dict[str, ModelPrices] = msgspec.field(default_factory=dict)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    auth: str | None = None
    oauth: OAuthConfig | None = None


class _ConnectionFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    compat: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: _Timeout | None = None
    max_retries: _Retries | None = None
    retry_base_delay: _Timeout | None = None
    retry_max_delay: _Timeout | None = None
    model: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(gt=0)] | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    prices: dict[str, ModelPrices] = msgspec.field(default_factory=dict)
    auth: str | None = None
    oauth: OAuthConfig | None = None


_CONNECTION_KEYS = frozenset(_ConnectionFields.__struct_fields__)


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[gateway]`` table: where ``modelport serve`` listens and its keys.

    ``key`` / ``admin_key`` may be given inline or, better, through the
    environment variables that ``key_env`` / ``admin_key_env`` name.
    """

    host: str = "127.0.0.1"
    port: _Port = 4848
    key: str | None = None
    key_env: str | None = None
    admin_key: str | None = None
    admin_key_env: str | None = None
    #: Host names beyond loopback and the bound address that requests may name
    #: (a DNS name for the bound IP, the name a reverse proxy forwards).
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    #: Seconds in-flight calls get to finish on shutdown before they end with an error.
    drain_timeout: _Seconds = 30.0

    def __repr__(self) -> str:
        # The inline keys are secrets; keep them out of logs and tracebacks.
        return (
            f"GatewayConfig(host={self.host!r}, port={self.port!r}, "
            f"key={'***' if self.key else None}, key_env={self.key_env!r}, "
            f"admin_key={'***' if self.admin_key else None}, "
            f"admin_key_env={self.admin_key_env!r}, allowed_hosts={self.allowed_hosts!r}, "
            f"drain_timeout={self.drain_timeout!r})"
        )


class _FileFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    default_model: str | None = None
    connections: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # A plain alias is a string; a table is a model group (``_groups.py``).
    aliases: dict[str, str | dict[str, Any]] = msgspec.field(default_factory=dict)
    database_url: str | None = None
    redis_url: str | None = None
    gateway: dict[str, Any] = msgspec.field(default_factory=dict)
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    cache: dict[str, Any] | None = None


_TOP_LEVEL_KEYS = frozenset(_FileFields.__struct_fields__)


#: Connection names that work without configuration (beyond a key).
PRESETS: Mapping[str, ConnectionConfig] = {
    "openai": ConnectionConfig(
        compat="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
    ),
    "anthropic": ConnectionConfig(
        compat="anthropic", base_url="https://api.anthropic.com", api_key_env="ANTHROPIC_API_KEY"
    ),
    "openrouter": ConnectionConfig(
        compat="openai", base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY"
    ),
    "groq": ConnectionConfig(
        compat="openai", base_url="https://api.groq.com/openai/v1", api_key_env="GROQ_API_KEY"
    ),
    "deepseek": ConnectionConfig(
        compat="openai", base_url="https://api.deepseek.com/v1", api_key_env="DEEPSEEK_API_KEY"
    ),
    "gemini": ConnectionConfig(
        compat="gemini",
        base_url="https://generativelanguage.googleapis.com",
        api_key_env="GEMINI_API_KEY",
    ),
    "ollama": ConnectionConfig(compat="ollama", base_url="http://localhost:11434"),
    "lmstudio": ConnectionConfig(compat="openai", base_url="http://localhost:1234/v1"),
    "vllm": ConnectionConfig(compat="openai", base_url="http://localhost:8000/v1"),
    "llamacpp": ConnectionConfig(compat="openai", base_url="http://localhost:8080/v1"),
}

#: Variables a preset's vendor also reads its key from, after its ``api_key_env``
#: (Google's SDKs take either name).
PRESET_KEY_FALLBACKS: Mapping[str, tuple[str, ...]] = {"gemini": ("GOOGLE_API_KEY",)}


class IgnoredSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What an untrusted project's config.toml set that was left out.

    ``keys`` names them as written (``[connections.openai]``, ``database_url``);
    ``fix`` is the command that trusts the project folder.
    """

    path: Path
    project: Path
    keys: list[str]

    @property
    def fix(self) -> str:
        return f"modelport plugins trust {self.project}"

    @property
    def message(self) -> str:
        return (
            f"Ignoring {', '.join(self.keys)} in {self.path}: a project's config may set "
            "only default_model and [aliases] until you trust its folder. "
            f"Review the file, then run `{self.fix}`."
        )


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The merged configuration (global, then project). ``sources`` lists the files read.

    ``ignored`` lists what an untrusted project file set that was left out.
    ``aliases`` holds the plain aliases (a name for one address) and
    ``model_groups`` the aliases written as tables (a name for several
    deployments, :mod:`modelport.config._groups`). ``cache`` is ``[cache]``,
    ``None`` when there is none (no response cache).
    """

    default_model: str | None = None
    connections: dict[str, ConnectionConfig] = msgspec.field(default_factory=dict)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    model_groups: dict[str, ModelGroup] = msgspec.field(default_factory=dict)
    database_url: str | None = None
    #: The Redis that several gateway instances share their budget and rate counters in.
    redis_url: str | None = None
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    cache: CacheConfig | None = None
    sources: list[Path] = msgspec.field(default_factory=list)
    ignored: list[IgnoredSettings] = msgspec.field(default_factory=list)

    def is_configured(self, name: str) -> bool:
        """Whether ``[connections.<name>]`` exists (a preset alone does not count)."""
        return name in self.connections

    def connection(self, name: str) -> ConnectionConfig | None:
        """The connection's table with its preset's defaults filled in.

        ``None`` when the name is neither configured nor a preset. A preset's
        ``api_key_env`` is *not* filled in: whether the vendor's variable may be
        used depends on the URL the call goes to, which the router decides.
        """
        configured = self.connections.get(name)
        preset = PRESETS.get(name)
        if configured is None:
            return None if preset is None else msgspec.structs.replace(preset, api_key_env=None)
        if preset is None or configured.compat not in (None, preset.compat):
            return configured
        return msgspec.structs.replace(
            configured,
            compat=preset.compat,
            base_url=configured.base_url or preset.base_url,
        )


# --- base URLs -------------------------------------------------------------


def check_base_url(url: str, *, connection: str | None = None, where: str = "") -> None:
    """Raise :class:`ConfigError` unless ``url`` is a usable ``http(s)://`` base URL.

    A URL that does not parse (``http://[::1/v1``), has another scheme or no
    host, or carries ``user:password@`` is refused with a message naming the
    connection (and ``where`` the URL came from). Credentials in the URL are
    refused rather than sent, because they would clash with the connection's
    own key header; put the key in the keyring (``modelport keys set NAME``).
    """
    problem = _base_url_problem(url, connection or "NAME")
    if problem is None:
        return
    subject = f"Connection {connection!r}" if connection else "The connection"
    origin = f" ({where})" if where else ""
    raise ConfigError(f"{subject} has a base_url{origin} that {problem}", connection=connection)


def _base_url_problem(url: str, name: str) -> str | None:
    shown = _shown_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc}): {shown!r}"
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https://: {shown!r}"
    if not parts.hostname:
        return f"has no host name: {shown!r}"
    if parts.username is not None or parts.password is not None:
        return (
            f"contains a user name or password ({shown!r}); remove it from the URL and store "
            f"the key with `modelport keys set {name}` instead"
        )
    return None


def _shown_url(url: str) -> str:
    """``url`` without ``user:password@`` or a query, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        url = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return url.split("?", 1)[0].split("#", 1)[0]


# --- locations -------------------------------------------------------------


def modelport_home() -> Path:
    """``MODELPORT_HOME``, or ``~/.modelport``."""
    value = os.environ.get("MODELPORT_HOME")
    return Path(value).expanduser() if value else Path.home() / ".modelport"


def ensure_private_dir(path: Path) -> None:
    """Create ``path``, and each missing folder above it, readable by its owner only (0700).

    For ``MODELPORT_HOME`` and what lives in it: usage records (whose error
    excerpts quote upstreams), tokens, config. ``mkdir(parents=True)`` would give
    the missing parents the default mode, so they are made one at a time. A
    folder that exists is left as it is.
    """
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=0o700)


def find_project_dir(cwd: Path | str | None = None, *, home: Path | None = None) -> Path | None:
    """The directory at or above ``cwd`` that holds ``.modelport/`` (the project root).

    The global home (``~/.modelport``, or ``home``) is not a project, so it never counts.
    """
    start = Path(cwd if cwd is not None else Path.cwd()).resolve()
    home = _resolved(home if home is not None else modelport_home())
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_DIR
        if candidate.is_dir() and _resolved(candidate) != home:
            return directory
    return None


def global_config_path(home: Path | None = None) -> Path:
    """``MODELPORT_HOME/config.toml``."""
    return (home if home is not None else modelport_home()) / CONFIG_FILE


def project_config_path(cwd: Path | str | None = None, *, home: Path | None = None) -> Path | None:
    """The project's ``.modelport/config.toml`` (it may not exist yet), or ``None``."""
    project = find_project_dir(cwd, home=home)
    return None if project is None else project / PROJECT_DIR / CONFIG_FILE


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


# --- loading ---------------------------------------------------------------


def load_config(home: Path | None = None, cwd: Path | str | None = None) -> Config:
    """Read and merge the global and project files; missing files count as empty.

    An untrusted project file contributes only ``default_model`` and
    ``[aliases]`` (see the module docstring and :attr:`Config.ignored`).
    """
    merged: dict[str, Any] = {}
    sources: list[Path] = []
    ignored: list[IgnoredSettings] = []
    global_path = global_config_path(home)
    data = _read(global_path)
    if data is not None:
        _validate(data, global_path)
        _merge(merged, data)
        sources.append(global_path)
    project = find_project_dir(cwd, home=home)
    if project is not None:
        path = project / PROJECT_DIR / CONFIG_FILE
        data, held_back = _read_project(path, project, home)
        if data is not None:
            _validate(data, path)
            _merge(merged, data)
            sources.append(path)
        if held_back is not None:
            ignored.append(held_back)
    return _build(merged, sources, ignored)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from exc


def _decode(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from exc
    return _parse_toml(text, path)


def _read(path: Path) -> dict[str, Any] | None:
    raw = _read_bytes(path)
    return None if raw is None else _decode(raw, path)


# (file, content hash) pairs already warned about: one warning per file version per process.
_warned: set[tuple[Path, str]] = set()


def _read_project(
    path: Path, project: Path, home: Path | None
) -> tuple[dict[str, Any] | None, IgnoredSettings | None]:
    """The project file's data, less what it may not set while untrusted."""
    raw = _read_bytes(path)
    if raw is None:
        return None, None
    data = _decode(raw, path)
    held = [key for key, value in data.items() if _needs_trust(key, value)]
    if not held:
        return data, None
    from modelport.trust import TrustStore, config_hash

    digest = config_hash(raw)
    store = TrustStore(home if home is not None else modelport_home())
    if store.is_config_trusted(path, digest):
        return data, None
    ignored = IgnoredSettings(path=path, project=project, keys=_key_names(data, held))
    if (path, digest) not in _warned:
        _warned.add((path, digest))
        logger.warning("%s", ignored.message)
    return {key: value for key, value in data.items() if key not in held}, ignored


def _key_names(data: dict[str, Any], keys: list[str]) -> list[str]:
    """How the held-back keys are written in the file: ``[connections.x]``, ``database_url``."""
    names: list[str] = []
    for key in keys:
        if key == "connections" and isinstance(data[key], dict):
            names.extend(f"[connections.{name}]" for name in data[key])
        else:
            names.append(f"[{key}]" if isinstance(data[key], dict) else key)
    return names


def _needs_trust(key: str, value: Any) -> bool:
    # Unknown keys are left for _validate to name; empty tables set nothing.
    return key in _TOP_LEVEL_KEYS and key not in _UNTRUSTED_KEYS and value not in ({}, None)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _problem(exc: msgspec.ValidationError, where: str) -> str:
    message = str(exc)
    if message.startswith("Object contains unknown field"):
        return f"{message} in {where}"
    if where == "$":
        return message.replace("`$.", "`")
    return message.replace("`$", f"`{where}")


def _did_you_mean(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}.{hint} Known keys: {', '.join(sorted(known))}"


def _validate(data: dict[str, Any], path: Path) -> None:
    """Raise ConfigError naming ``path`` for anything :func:`_build` could not use."""
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}: {_did_you_mean(key, _TOP_LEVEL_KEYS)}")
    try:
        fields = msgspec.convert(data, _FileFields)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_problem(exc, '$')}") from exc
    for name, table in fields.connections.items():
        where = f"connections.{name}"
        if not name or "/" in name:
            raise ConfigError(
                f"{path}: [{where}]: a connection name cannot be empty or contain '/', "
                "because model addresses are split at the first slash"
            )
        refuse_inline_secrets(name, table, path)
        preset = PRESETS.get(name)
        check_connection_keys(
            path,
            name,
            table,
            common=_CONNECTION_KEYS,
            preset_compat=preset.compat if preset is not None else None,
        )
        for key in table:
            # Other keys are provider options, but a near miss of ours is a typo.
            # `<field>_env` names the variable holding a plugin's config field
            # (DESIGN.md), so `apiKey_env` is an option, not a misspelt api_key_env.
            if key in _CONNECTION_KEYS or key.endswith("_env"):
                continue
            close = difflib.get_close_matches(key, sorted(_CONNECTION_KEYS), n=1, cutoff=0.85)
            if close:
                raise ConfigError(
                    f"{path}: [{where}]: unknown key {key!r}. Did you mean {close[0]!r}?"
                )
        compat = table.get("compat")
        plugin = isinstance(compat, str) and compat.startswith("plugin:")
        try:
            check_auth(name, table, plugin=plugin)
            if "oauth" in table:
                parse_oauth(table["oauth"], f"[{where}.oauth]")
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", connection=name) from None
        known = {k: v for k, v in table.items() if k in _CONNECTION_KEYS}
        try:
            msgspec.convert(known, _ConnectionFields)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{path}: {_problem(exc, where)}") from exc
        base_url = table.get("base_url")
        if base_url:
            problem = _base_url_problem(base_url, name)
            if problem is not None:
                raise ConfigError(f"{path}: [{where}]: base_url {problem}", connection=name)
        compat = table.get("compat")
        if compat is not None and (not compat or compat == "plugin:"):
            raise ConfigError(
                f"{path}: connections.{name}.compat must be openai, anthropic, ollama, gemini, "
                "azure, openai-responses, plugin:<provider id> or an installed provider's name"
            )
    for key in fields.gateway:
        if key not in GatewayConfig.__struct_fields__:
            known_gateway = frozenset(GatewayConfig.__struct_fields__)
            raise ConfigError(f"{path}: [gateway]: {_did_you_mean(key, known_gateway)}")
    try:
        msgspec.convert(fields.gateway, GatewayConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_problem(exc, 'gateway')}") from exc
    for name, target in fields.aliases.items():
        if isinstance(target, dict):
            parse_group(name, target, path)
    if fields.cache is not None:
        parse_cache(fields.cache, path)


def _merge(merged: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in ("connections", "aliases", "fallbacks", "gateway", "cache"):
            # Connections replace whole tables by name; the others merge key by key.
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value


def _connection(table: dict[str, Any]) -> ConnectionConfig:
    known = msgspec.convert(
        {k: v for k, v in table.items() if k in _CONNECTION_KEYS}, _ConnectionFields
    )
    return ConnectionConfig(
        **msgspec.structs.asdict(known),
        options={k: v for k, v in table.items() if k not in _CONNECTION_KEYS},
    )


def _build(
    merged: dict[str, Any], sources: list[Path], ignored: list[IgnoredSettings] | None = None
) -> Config:
    fields = msgspec.convert(merged, _FileFields)
    return Config(
        default_model=fields.default_model,
        connections={name: _connection(t) for name, t in fields.connections.items()},
        aliases={k: v for k, v in fields.aliases.items() if isinstance(v, str)},
        model_groups={
            k: parse_group(k, v) for k, v in fields.aliases.items() if isinstance(v, dict)
        },
        database_url=fields.database_url,
        redis_url=fields.redis_url,
        gateway=msgspec.convert(fields.gateway, GatewayConfig),
        fallbacks={k: list(v) for k, v in fields.fallbacks.items()},
        cache=None if fields.cache is None else parse_cache(fields.cache),
        sources=sources,
        ignored=list(ignored or []),
    )


def parse_config(text: str, path: Path | str = "<config>") -> Config:
    """Validate one file's text on its own (what :func:`edit_config` checks before saving)."""
    data = _parse_toml(text, Path(path))
    _validate(data, Path(path))
    return _build(data, [Path(path)])
