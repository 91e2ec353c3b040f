"""``modelport local``: switch the default model to a local server and back.

The commands follow the ``/local`` command users of other tools know::

    modelport local                      status (as `local status`)
    modelport local llama3.1:8b          = local on llama3.1:8b
    modelport local on [URL] [MODEL]     either, both or neither, in any order
    modelport local set URL              point the local connection at another server
    modelport local model NAME|clear     pick the local model, or forget it
    modelport local list                 the server's models
    modelport local off                  restore the default from before (fine when off)

``local on`` creates (or updates) the connection ``local`` — OpenAI-compatible,
``http://localhost:11434/v1`` (Ollama) unless a URL is given or the connection
already has one — records the model as the connection's ``model`` and points
``default_model`` at it, remembering the previous default for ``local off``.
An argument is a URL when it has a scheme (``http://…``) or is a bare
``localhost:PORT`` / ``IP:PORT`` address; a URL without a path gets ``/v1``
(``http://localhost:1234`` means LM Studio's ``http://localhost:1234/v1``).
The connection stays configured after ``off``.

Every change prints one line that says what happened, and a running gateway
is told to reload (:mod:`modelport.cli._gateway`).
"""

from __future__ import annotations

import asyncio
import difflib
import re
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from modelport.cli._gateway import tell_gateway_to_reload
from modelport.cli._output import err_console, exit_with, fail, out_console, redact

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.routing import Router
    from modelport.types import ModelInfo

__all__ = ["register"]

LOCAL = "local"
DEFAULT_URL = "http://localhost:11434/v1"
#: Key in the ``local`` connection's table that remembers the default to restore.
_PREVIOUS = "previous_default_model"
#: ``local model clear`` (and ``none``) forgets the local model.
_CLEAR = ("clear", "none")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: A server address written without its scheme: ``localhost:1234``, ``127.0.0.1:8080/v1``.
_BARE_ADDRESS = re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\])(:\d+)?(/.*)?$")


class _LocalGroup(TyperGroup):
    """``modelport local MODEL`` means ``local on MODEL``; a near miss of a command is a typo."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            word = args[0]
            close = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.75)
            if close:
                fail(
                    f"no command {word!r}; did you mean `modelport local {close[0]}`? "
                    f"(for a model of that name: `modelport local on {word}`)",
                    code=2,
                )
            return "on", self.commands["on"], args
        return super().resolve_command(ctx, args)


local_app = typer.Typer(
    name="local",
    cls=_LocalGroup,
    help="Use a local model server (Ollama, LM Studio, llama.cpp, vLLM) by default.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``local`` group to ``app``."""
    app.add_typer(local_app)


@local_app.callback()
def local(ctx: typer.Context) -> None:
    """Use a local model server by default; `modelport local` alone shows the status.

    `modelport local MODEL` is `modelport local on MODEL`.
    """
    if ctx.invoked_subcommand is None:
        status()


# --- on, set, model, off ------------------------------------------------------------


@local_app.command(name="on")
def on(
    first: Annotated[
        str | None, typer.Argument(metavar="[URL]", help="The server's base URL (has a scheme).")
    ] = None,
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="[MODEL]", help="A model it serves (the last used, else its first, if omitted)."
        ),
    ] = None,
) -> None:
    """Use a local server's model by default (until `local off`).

    URL and MODEL may come in either order; a URL is recognised by its scheme.
    Without a URL: the local connection's, else Ollama's http://localhost:11434/v1.
    """
    from modelport import config as config_module

    url, model = _url_and_model(first, second)
    config = config_module.load_config()
    current = config.connections.get(LOCAL)
    url = url or (current.base_url if current is not None and current.base_url else DEFAULT_URL)
    if model is None and current is not None and current.model and current.base_url == url:
        model = current.model
    if model is None:
        # Ask the server before touching config.toml: an unreachable URL must not
        # replace a [connections.local] that works.
        model = _first_model(config, url)
    previous = config.default_model
    values: dict[str, Any] = {"compat": "openai", "base_url": url, "model": model}
    if not _is_on(previous):
        # Switching from one local model to another keeps the default from before them.
        values[_PREVIOUS] = previous  # None clears a stale one
    else:
        previous = _remembered(config)
    # One edit: the connection and the default model change together or not at all.
    with config_module.edit_config() as document:
        _set_local(document, values)
        document["default_model"] = f"{LOCAL}/{model}"
    restore = f"`modelport local off` restores {previous}" if previous else "`local off` undoes it"
    _done(f"Local mode on: default model is {LOCAL}/{model} at {url}; {restore}")


@local_app.command(name="set")
def set_(url: Annotated[str, typer.Argument(help="The local server's base URL.")]) -> None:
    """Point the local connection at another server (the default model stays as it is)."""
    from modelport import config as config_module

    url = _checked_url(url)
    config = config_module.load_config()
    created = LOCAL not in config.connections
    with config_module.edit_config() as document:
        _set_local(document, {"compat": "openai", "base_url": url})
    if created:
        _done(f"Local server set to {url}; `modelport local on MODEL` makes its model the default")
    elif _is_on(config.default_model):
        _done(f"Local server set to {url}; the default model is still {config.default_model}")
    else:
        _done(f"Local server set to {url} (local mode is off)")


@local_app.command(name="model")
def model(
    name: Annotated[str, typer.Argument(help="A model the local server offers, or `clear`.")],
) -> None:
    """Make local/NAME the default model; `clear` forgets the local model (and turns local mode
    off if it was on)."""
    from modelport import config as config_module

    config = config_module.load_config()
    if LOCAL not in config.connections:
        fail("no local connection yet; `modelport local on [URL] [MODEL]` creates it")
    if name in _CLEAR:
        _clear_model(config)
        return
    name = _model_name(name)
    values: dict[str, Any] = {"model": name}
    if not _is_on(config.default_model):
        values[_PREVIOUS] = config.default_model
    with config_module.edit_config() as document:
        _set_local(document, values)
        document["default_model"] = f"{LOCAL}/{name}"
    _done(f"Default model is {LOCAL}/{name} at {config.connections[LOCAL].base_url}")


def _clear_model(config: Config) -> None:
    from modelport import config as config_module

    was_on = _is_on(config.default_model)
    previous = _remembered(config)
    with config_module.edit_config() as document:
        _set_local(document, {"model": None, _PREVIOUS: None if was_on else _remembered(config)})
        if was_on:
            _set_default(document, previous)
    if was_on:
        _done(f"Local model cleared and local mode off: {_default_words(previous)}")
    else:
        _done("Local model cleared (local mode was off)")


@local_app.command(name="off")
def off() -> None:
    """Restore the default model from before `local on` (nothing to do when it is off).

    The `local` connection stays configured.
    """
    from modelport import config as config_module

    config = config_module.load_config()
    if not _is_on(config.default_model):
        current = config.default_model or "none set"
        _done(f"Local mode is already off (default model: {current})", reload=False)
        return
    previous = _remembered(config)
    with config_module.edit_config() as document:
        _set_default(document, previous)
        if LOCAL in config.connections:
            _set_local(document, {_PREVIOUS: None})
    _done(f"Local mode off: {_default_words(previous)}")


# --- status and list ----------------------------------------------------------------


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
        fail("no local connection yet; `modelport local on [URL] [MODEL]` creates it")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("model")
    table.add_column("address")
    for info in _models(config, native=True):
        table.add_row(info.id, f"{LOCAL}/{info.id}")
    out_console().print(table)


# --- helpers ----------------------------------------------------------------------


def _done(message: str, *, reload: bool = True) -> None:
    """The one line a change prints (with what the running gateway did about it)."""
    suffix = tell_gateway_to_reload() if reload else ""
    err_console().print(f"{message}{suffix}.", markup=False)


def _url_and_model(first: str | None, second: str | None) -> tuple[str | None, str | None]:
    """Which of the arguments is the URL (it has a scheme) and which the model."""
    url: str | None = None
    model: str | None = None
    for value in (first, second):
        if value is None:
            continue
        if _SCHEME.match(value) or _BARE_ADDRESS.match(value):
            if url is not None:
                fail(f"two URLs given ({url}, {value}); give one URL and one model")
            url = _checked_url(value)
        else:
            if model is not None:
                fail(f"two models given ({model}, {value}); a URL starts with http:// or https://")
            model = _model_name(value)
    return url, model


def _checked_url(url: str) -> str:
    from modelport.config import check_base_url
    from modelport.errors import ConfigError

    if not _SCHEME.match(url) and _BARE_ADDRESS.match(url):
        url = f"http://{url}"
    url = _api_url(url)
    try:
        check_base_url(url, connection=LOCAL)
    except ConfigError as exc:
        fail(exc.message)
    return url


def _model_name(name: str) -> str:
    """The model as the server names it (``local/llama3.1:8b`` is taken as ``llama3.1:8b``)."""
    name = name.strip().removeprefix(f"{LOCAL}/")
    if not name:
        fail("the model name is empty; give it as the server names it, such as llama3.1:8b")
    return name


def _api_url(url: str) -> str:
    from urllib.parse import urlsplit

    url = url.rstrip("/")
    return url if urlsplit(url).path else f"{url}/v1"


def _first_model(config: Config, url: str) -> str:
    from modelport.errors import ModelportError

    try:
        listed = _models(_with_local(config, url))
    except ModelportError as exc:
        fail(
            f"cannot list the models of {url} ({redact(exc.message)}); start the server, or name "
            "the model (`modelport local on URL MODEL`). Your configuration is unchanged"
        )
    if not listed:
        fail(
            f"the server at {url} lists no models; pull one first "
            "(`ollama pull llama3.1:8b`, or load one in LM Studio)"
        )
    return listed[0].id


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


def _set_default(document: Any, address: str | None) -> None:
    if address is None:
        document.pop("default_model", None)
    else:
        document["default_model"] = address


def _default_words(address: str | None) -> str:
    return f"default model is {address} again" if address else "no default model set"


def _is_on(default_model: str | None) -> bool:
    if not default_model:
        return False
    return default_model == LOCAL or default_model.startswith(f"{LOCAL}/")


def _remembered(config: Config) -> str | None:
    connection = config.connections.get(LOCAL)
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
