"""``modelport local``: switch the default model to a local server and back.

``local on`` creates (or updates) the connection ``local`` — OpenAI-compatible,
``http://localhost:11434/v1`` (Ollama) unless another URL is given — and points
``default_model`` at one of its models, remembering the previous default so
that ``local off`` can restore it. The connection itself stays configured.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelport.cli._output import err_console, exit_with, fail, out_console, redact

if TYPE_CHECKING:
    from modelport.config import Config, ConnectionConfig
    from modelport.routing import Router
    from modelport.types import ModelInfo

__all__ = ["register"]

LOCAL = "local"
DEFAULT_URL = "http://localhost:11434/v1"
#: Key in the ``local`` connection's table that remembers the default to restore.
_PREVIOUS = "previous_default_model"

local_app = typer.Typer(
    name="local",
    help="Use a local model server (Ollama, LM Studio, llama.cpp, vLLM) by default.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``local`` group to ``app``."""
    app.add_typer(local_app)


@local_app.command(name="on")
def on(
    url: Annotated[
        str, typer.Argument(help="Base URL of the local server's OpenAI-compatible API.")
    ] = DEFAULT_URL,
    model: Annotated[
        str | None, typer.Argument(help="Model to use; the server's first model if omitted.")
    ] = None,
) -> None:
    """Use a local server's model by default (until `local off`).

    A URL without a path gets ``/v1`` (``http://localhost:1234`` means LM
    Studio's ``http://localhost:1234/v1``).
    """
    from modelport import config as config_module

    url = _api_url(url)
    config = config_module.load_config()
    previous = config.default_model
    if model is None:
        # Ask the server before touching config.toml: an unreachable URL must not
        # replace a [connections.local] that works.
        from modelport.errors import ModelportError

        try:
            listed = _models(_with_local(config, url))
        except ModelportError as exc:
            fail(
                f"cannot list the models of {url}: {redact(exc.message)}",
                "Start the server (`ollama serve`), or give the model: "
                "`modelport local on URL MODEL`. Your configuration is unchanged.",
            )
        if not listed:
            fail(
                f"the server at {url} lists no models", "Pull one first: `ollama pull llama3.1:8b`."
            )
        model = listed[0].id
    values: dict[str, Any] = {"compat": "openai", "base_url": url}
    if not _is_on(previous):
        # Switching from one local model to another keeps the default from before them.
        values[_PREVIOUS] = previous  # None clears a stale one
    # One edit: the connection and the default model change together or not at all.
    with config_module.edit_config() as document:
        _set_local(document, values)
        document["default_model"] = f"{LOCAL}/{model}"
    err_console().print(f"Local mode on: default model is {LOCAL}/{model} ({url}).", markup=False)


def _with_local(config: Config, url: str) -> Config:
    """``config`` with the ``local`` connection pointing at ``url`` (nothing written)."""
    import msgspec

    from modelport.config import ConnectionConfig

    current = config.connections.get(LOCAL) or ConnectionConfig()
    local = msgspec.structs.replace(current, compat="openai", base_url=url)
    return msgspec.structs.replace(config, connections={**config.connections, LOCAL: local})


def _set_local(document: Any, values: dict[str, Any]) -> None:
    import tomlkit

    if "connections" not in document:
        document["connections"] = tomlkit.table(is_super_table=True)
    connections = document["connections"]
    if LOCAL not in connections:
        connections[LOCAL] = tomlkit.table()
    table = connections[LOCAL]
    for key, value in values.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


@local_app.command(name="off")
def off() -> None:
    """Restore the default model from before `local on`.

    The `local` connection stays configured.
    """
    from modelport import config as config_module

    config = config_module.load_config()
    connection = config.connections.get(LOCAL)
    if connection is None or not _is_on(config.default_model):
        fail("local mode is not on", "`modelport local on` turns it on.")
    previous = _remembered(connection)
    config_module.set_default_model(previous)
    config_module.set_value(f"connections.{LOCAL}.{_PREVIOUS}", None)
    restored = f"default model is {previous} again" if previous else "no default model set"
    err_console().print(f"Local mode off: {restored}.", markup=False)


@local_app.command(name="status")
def status() -> None:
    """Show whether local mode is on and the server answers.

    Exits 1 when the local connection exists but its server cannot be reached.
    """
    from modelport.config import load_config
    from modelport.errors import ModelportError

    config = load_config()
    connection = config.connections.get(LOCAL)
    console = out_console()
    state = "on" if _is_on(config.default_model) and connection is not None else "off"
    console.print(f"local mode: {state}", markup=False)
    console.print(f"default model: {config.default_model or '(none)'}", markup=False)
    if connection is None:
        console.print("url: (no local connection; `modelport local on` creates it)", markup=False)
        return
    console.print(f"url: {connection.base_url}", markup=False)
    try:
        count = len(_models(config))
    except ModelportError as exc:
        console.print(f"reachable: no ({redact(exc.message)})", style="red", markup=False)
        exit_with(1)
    console.print(f"reachable: yes, {count} models", style="green", markup=False)


@local_app.command(name="list")
def list_() -> None:
    """List the local server's models.

    Ollama's own list when the server is Ollama, else its /v1/models.
    """
    from modelport.config import load_config

    config = load_config()
    if LOCAL not in config.connections:
        fail("no local connection", "`modelport local on` creates it.")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("model")
    table.add_column("address")
    for model in _models(config, native=True):
        table.add_row(model.id, f"{LOCAL}/{model.id}")
    out_console().print(table)


@local_app.command(name="model")
def model(name: Annotated[str, typer.Argument(help="A model the local server offers.")]) -> None:
    """Make local/NAME the default model."""
    from modelport import config as config_module

    config = config_module.load_config()
    if LOCAL not in config.connections:
        fail("no local connection", "`modelport local on` creates it.")
    if not _is_on(config.default_model) and config.default_model:
        config_module.set_value(f"connections.{LOCAL}.{_PREVIOUS}", config.default_model)
    config_module.set_default_model(f"{LOCAL}/{name}")
    err_console().print(f"Default model is {LOCAL}/{name}.", markup=False)


def _api_url(url: str) -> str:
    from urllib.parse import urlsplit

    url = url.rstrip("/")
    return url if urlsplit(url).path else f"{url}/v1"


def _is_on(default_model: str | None) -> bool:
    return bool(default_model) and default_model.startswith(f"{LOCAL}/")  # type: ignore[union-attr]


def _remembered(connection: ConnectionConfig | None) -> str | None:
    if connection is None:
        return None
    value = connection.options.get(_PREVIOUS)
    return str(value) if value else None


def _models(config: Config, *, native: bool = False) -> list[ModelInfo]:
    """The local server's models; with ``native``, Ollama's ``/api/tags`` where it answers.

    Ollama's own list names every pulled model the way ``ollama list`` does;
    any other server (LM Studio, llama.cpp, vLLM) gets its ``/v1/models``.
    """
    from modelport.routing import Router

    async def _run() -> list[ModelInfo]:
        router = Router(config)
        try:
            if native:
                found = await _ollama_models(router)
                if found is not None:
                    return found
            return list(await router.list_models(connection=LOCAL))
        finally:
            await router.aclose()

    return asyncio.run(_run())


async def _ollama_models(router: Router) -> list[ModelInfo] | None:
    """The models from ``/api/tags``, or ``None`` when the server is not Ollama."""
    import msgspec

    from modelport.errors import ModelportError
    from modelport.providers import load_factory

    settings = msgspec.structs.replace(router.settings_for(LOCAL), compat="ollama", max_retries=0)
    provider = load_factory("ollama")(settings)
    try:
        return list(await provider.list_models())
    except ModelportError:
        return None
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()
