"""How a connection logs in, as ``config.toml`` says: ``auth`` and ``[connections.X.oauth]``.

``auth`` is ``"key"`` (the default: an API key from the keyring or the
environment), ``"oauth"`` (tokens from ``modelport login NAME``) or ``"auto"``
(the dual mode: the key when one is stored or set, else OAuth). The
``[connections.X.oauth]`` table says where to log in::

    [connections.corp.oauth]
    authorize_url = "https://login.corp.example/authorize"
    token_url = "https://login.corp.example/token"
    revocation_url = "https://login.corp.example/revoke"   # optional (RFC 7009)
    client_id = "modelport"
    client_secret_env = "CORP_CLIENT_SECRET"   # only for a confidential client
    scopes = ["llm", "offline_access"]
    redirect_port = 1455                       # 0 (the default): any free port
    redirect_path = "/callback"
    redirect_host = "127.0.0.1"                # or "localhost"; always bound to 127.0.0.1
    params = { audience = "https://llm.corp.example" }   # extra authorize parameters

Everything here is checked when the file is read, so a typo is a
:class:`~modelport.errors.ConfigError` naming the key, never an inert setting:
the endpoints must be ``https://`` (plain ``http://`` only to this machine),
the callback stays on loopback, and a client secret is never written in the
file (``client_secret_env`` names the variable that holds it).
"""

from __future__ import annotations

import difflib
import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from modelport.errors import ConfigError

__all__ = ["AUTH_MODES", "OAuthConfig", "check_auth", "check_oauth_url", "parse_oauth"]

#: What ``auth`` may say.
AUTH_MODES = ("key", "oauth", "auto")
#: Host names the callback URL may carry (the server itself always binds 127.0.0.1).
_REDIRECT_HOSTS = ("127.0.0.1", "localhost")

_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class OAuthConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[connections.X.oauth]`` table (or a plugin registration's ``oauth`` block)."""

    authorize_url: str
    token_url: str
    client_id: str
    #: The RFC 7009 endpoint ``modelport logout`` revokes the tokens at, if the provider has one.
    revocation_url: str | None = None
    client_secret_env: str | None = None
    scopes: list[str] = msgspec.field(default_factory=list)
    redirect_port: _Port = 0
    redirect_path: str = "/callback"
    redirect_host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    params: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def confidential(self) -> bool:
        """Whether the client authenticates with a secret (from ``client_secret_env``)."""
        return self.client_secret_env is not None


_KEYS = frozenset(OAuthConfig.__struct_fields__)


def check_oauth_url(url: str, what: str) -> str | None:
    """Why ``url`` cannot be an OAuth endpoint, or ``None`` when it can.

    Tokens and codes travel there, so plain ``http://`` is allowed only to this
    machine (a test server, a local identity provider).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"{what} is not a valid URL ({exc})"
    if not parts.hostname:
        return f"{what} has no host name: {url!r}"
    if parts.username is not None or parts.password is not None:
        return f"{what} must not contain a user name or password"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return None
    return f"{what} must start with https:// (plain http:// only to this machine): {url!r}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_oauth(table: Any, where: str) -> OAuthConfig:
    """``table`` as an :class:`OAuthConfig`; :class:`ConfigError` saying what to fix.

    ``where`` names the table in messages (``[connections.corp.oauth]``, or a
    plugin's registration).
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    if "client_secret" in table:
        raise ConfigError(
            f"{where}: client_secret must not be written in the file; put it in an "
            'environment variable and name it with client_secret_env = "VAR"'
        )
    for key in table:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}.{hint} Known keys: {', '.join(sorted(_KEYS))}"
            )
    missing = [key for key in ("authorize_url", "token_url", "client_id") if not table.get(key)]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    host = table.get("redirect_host", "127.0.0.1")
    if host not in _REDIRECT_HOSTS:
        raise ConfigError(
            f"{where}: redirect_host must be 127.0.0.1 or localhost (the login callback "
            f"listens on this machine only), not {host!r}"
        )
    try:
        config = msgspec.convert(table, OAuthConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {str(exc).replace('`$.', '`')}") from None
    for what in ("authorize_url", "token_url", "revocation_url"):
        url = getattr(config, what)
        problem = None if url is None else check_oauth_url(url, what)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")
    if not config.redirect_path.startswith("/"):
        raise ConfigError(f"{where}: redirect_path must start with '/': {config.redirect_path!r}")
    return config


def check_auth(name: str, table: dict[str, Any], *, plugin: bool) -> None:
    """``auth`` and ``oauth`` of ``[connections.<name>]`` make sense together, or ConfigError.

    ``auth = "oauth"`` or ``"auto"`` needs the ``oauth`` table (a plugin may bring
    its own through its registration); an ``oauth`` table without either would
    never be used, so it is refused rather than silently ignored.
    """
    auth = table.get("auth")
    if auth is not None and auth not in AUTH_MODES:
        raise ConfigError(
            f"[connections.{name}]: auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}"
        )
    has_oauth = "oauth" in table
    if auth in ("oauth", "auto") and not has_oauth and not plugin:
        raise ConfigError(
            f'[connections.{name}]: auth = "{auth}" needs a [connections.{name}.oauth] table '
            "with authorize_url, token_url and client_id"
        )
    if has_oauth and auth in (None, "key") and not plugin:
        raise ConfigError(
            f"[connections.{name}]: the [connections.{name}.oauth] table is used only when "
            f'[connections.{name}] sets auth = "oauth" (or auth = "auto": the key when one '
            "is stored or set, else OAuth); add that line, or remove the table"
        )
