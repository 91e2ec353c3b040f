"""What to say when a local model server does not answer: which one it is, and how to start it.

A connection is taken for one of the servers below by its name (the presets
``ollama``, ``lmstudio``, ``vllm``, ``llamacpp``) or, on this machine, by the
port its URL names (each server's default). The hint then says "is it
running? start it with …" in that server's own terms, and for Ollama also
whether the model is pulled. Anything else gets the general hint.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["LocalServer", "local_server", "local_server_hint", "on_this_machine"]


@dataclass(frozen=True, slots=True)
class LocalServer:
    """One kind of local server: what it is called and how it is started."""

    label: str
    start: str
    #: The preset connection named after it.
    preset: str
    #: The port it listens on unless told otherwise.
    port: int
    #: How to fetch a model it lacks (``{model}`` is filled in), if it can.
    pull: str | None = None


SERVERS = (
    LocalServer("Ollama", "`ollama serve`", "ollama", 11434, pull="`ollama pull {model}`"),
    LocalServer(
        "LM Studio",
        "`lms server start` (or Developer → Start Server in LM Studio)",
        "lmstudio",
        1234,
    ),
    LocalServer("vLLM", "`vllm serve MODEL`", "vllm", 8000),
    LocalServer("llama.cpp's server", "`llama-server -m MODEL.gguf --port 8080`", "llamacpp", 8080),
)


def local_server(connection: str, base_url: str | None) -> LocalServer | None:
    """The local server a connection reaches, by its preset name or its local URL's port."""
    for server in SERVERS:
        if connection == server.preset:
            return server
    try:
        parts = urlsplit(base_url or "")
        port = parts.port
    except ValueError:
        return None
    if port is None or not on_this_machine(parts.hostname):
        return None
    for server in SERVERS:
        if port == server.port:
            return server
    return None


def local_server_hint(connection: str, base_url: str | None, model: str | None) -> str | None:
    """ "is it running? start it with …" for a local server, else ``None``."""
    server = local_server(connection, base_url)
    if server is None:
        return None
    hint = f"is {server.label} running? start it with {server.start}; is the URL right?"
    if server.pull is not None:
        pull = server.pull.format(model=model) if model else server.pull.format(model="…")
        hint += f" is the model pulled ({pull})?"
    return hint


def on_this_machine(host: str | None) -> bool:
    """Whether ``host`` is this machine (``localhost``, a loopback or unspecified address)."""
    if not host:
        return False
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
