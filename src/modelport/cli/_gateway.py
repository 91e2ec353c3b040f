"""Talking to a running gateway from the command line: where it is, its admin key, and
telling it to reload after a command wrote config.toml or a key.

The gateway is found at ``[gateway]`` host and port (``127.0.0.1:4848`` by
default). :func:`tell_gateway_to_reload` is best effort: with no gateway
running it says nothing, and a gateway that refuses is reported in the same
line as the change (``modelport serve`` also notices a changed config.toml
or key file by itself within a second; a key in the OS keyring it learns of
only from this call, SIGHUP, or a restart).
"""

from __future__ import annotations

import os

__all__ = ["admin_key", "gateway_url", "tell_gateway_to_reload"]

#: Connecting to a gateway on this machine takes microseconds; none there is refused at once.
_CONNECT_TIMEOUT = 0.5
_RELOAD_TIMEOUT = 10.0


def gateway_url(url: str | None = None) -> str:
    """``url``, else the gateway's from ``[gateway]`` host and port in config.toml."""
    if url:
        return url.rstrip("/")
    from modelport.config import load_config

    gateway = load_config().gateway
    host = "127.0.0.1" if gateway.host in ("0.0.0.0", "::", "") else gateway.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{gateway.port}"


def admin_key() -> str | None:
    """The admin key (else the gateway key) from config.toml or the environment."""
    from modelport.config import load_config

    gateway = load_config().gateway
    for inline, env_name, fallback in (
        (gateway.admin_key, gateway.admin_key_env, "MODELPORT_ADMIN_KEY"),
        (gateway.key, gateway.key_env, "MODELPORT_GATEWAY_KEY"),
    ):
        value = inline or (os.environ.get(env_name) if env_name else None)
        value = value or os.environ.get(fallback)
        if value:
            return value
    return None


def tell_gateway_to_reload() -> str:
    """Ask a running gateway to reload; the words to add to the command's one line.

    ``""`` when no gateway answers (or something else listens there);
    ``"; the gateway at URL picked it up"`` when it reloaded; else why not.
    """
    import httpx

    from modelport.errors import ModelportError

    try:
        base = gateway_url()
        key = admin_key()
    except ModelportError:
        return ""  # the config that was just written is checked; another file is broken
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = httpx.Timeout(_RELOAD_TIMEOUT, connect=_CONNECT_TIMEOUT)
    try:
        response = httpx.post(f"{base}/admin/reload", headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return ""
    if response.status_code == 200:
        return f"; the gateway at {base} picked it up"
    message = _error_message(response)
    if message is None:
        return ""  # not a modelport gateway
    if response.status_code == 409:
        return f"; the gateway at {base} kept its last good configuration: {message}"
    return f"; the gateway at {base} did not reload (HTTP {response.status_code}: {message})"


def _error_message(response: object) -> str | None:
    try:
        body = response.json()  # type: ignore[attr-defined]
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None
