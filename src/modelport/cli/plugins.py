"""``modelport plugins``: list, trust, scaffold and check plugins; drive a running gateway's.

``list``, ``trust``, ``new`` and ``check`` work on the folders here and now.
A plugin process lives inside a running gateway, so ``load``, ``start``,
``stop`` and ``logs`` (and ``list --gateway``) call its admin routes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelport.cli._gateway import admin_key, gateway_url
from modelport.cli._output import err_console, exit_with, fail, out_console

__all__ = ["register"]

plugins_app = typer.Typer(
    name="plugins",
    help="List, trust, create and check plugins; start and stop them in a running gateway.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        help="URL of the running gateway (default: [gateway] host and port from config.toml).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``plugins`` group to ``app``."""
    app.add_typer(plugins_app)


# --- talking to a running gateway ---------------------------------------------


def _admin(method: str, path: str, gateway: str | None) -> Any:
    import aiohttp

    base = gateway_url(gateway)
    key = admin_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        status, content = asyncio.run(_request(method, f"{base}{path}", headers))
    except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
        fail(
            f"cannot reach the gateway at {base} ({type(exc).__name__})",
            "Start it with `modelport serve`, or pass --gateway URL.",
        )
    try:
        body = json.loads(content)
    except ValueError:
        body = {}
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = (
            error.get("message")
            if isinstance(error, dict)
            else content.decode("utf-8", "replace")[:300]
        )
        fail(f"{message} (HTTP {status})")
    return body


async def _request(method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One call to the admin API: its status and body."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60.0, sock_read=60.0)
    # trust_env off: no proxy between the CLI and its local gateway, and no ~/.netrc entry
    # clashing with the Authorization header. No redirect is followed: the key stays here.
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.request(
            method,
            url,
            headers=headers,
            allow_redirects=False,
            # The admin POSTs carry no body; aiohttp would label the nothing
            # application/octet-stream, which the gateway refuses (415).
            skip_auto_headers=("Content-Type",),
        ) as response,
    ):
        return response.status, await response.read()


# --- local folders ---------------------------------------------------------------


def _local_host() -> Any:
    from modelport.config import find_project_dir, modelport_home
    from modelport.plugin_host.discovery import default_dirs
    from modelport.plugin_host.host import PluginHost

    home = modelport_home()
    return PluginHost(dirs=default_dirs(home, find_project_dir()), home=home)


def _trusted_cell(info: dict[str, Any]) -> str:
    if info["source"] != "project":
        return "-"
    return "yes" if info["trusted"] else "NO"


def _note(info: dict[str, Any]) -> str:
    """The error, then any other problems (a refused provider id, an unknown capability)."""
    notes = [info["error"]] if info.get("error") else []
    notes += [p for p in info.get("problems") or [] if p not in notes]
    return "; ".join(notes)


@plugins_app.command(name="list")
def list_(
    gateway: GatewayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List plugin folders and provider packages (live states with --gateway)."""
    from modelport.plugin_host.entrypoints import entry_point_plugins

    if gateway is not None:
        listing = _admin("GET", "/plugins", gateway)
        plugins, skipped = listing["plugins"], listing.get("skipped", [])
    else:
        host = _local_host()
        asyncio.run(host.load())
        plugins, skipped = host.describe_all(), host.describe_skipped()
    packages = [vars(p) for p in entry_point_plugins()]
    if as_json:
        out_console().print_json(
            json.dumps({"plugins": plugins, "skipped": skipped, "packages": packages})
        )
        return
    console = out_console()
    for folder in skipped:
        err_console().print(f"skipped {folder['dir']}: {folder['reason']}", markup=False)
    if not plugins and not packages:
        err_console().print(
            "No plugins. Create one with `modelport plugins new NAME` and put it in "
            "MODELPORT_HOME/plugins/ or the project's .modelport/plugins/.",
            markup=False,
        )
        return
    if plugins:
        table = Table("NAME", "VERSION", "SOURCE", "STATE", "TRUSTED", "PROVIDERS", "NOTE")
        for info in plugins:
            providers = ", ".join(
                f"{p['id']} ({len(p['models'])} models)" for p in info["providers"]
            )
            table.add_row(
                info["name"],
                info["version"] or "-",
                info["source"],
                info["state"],
                _trusted_cell(info),
                providers or "-",
                _note(info),
            )
        console.print(table)
    untrusted = [i for i in plugins if i["source"] == "project" and not i["trusted"]]
    if untrusted:
        err_console().print(
            "Project plugins start only once trusted: review them, then run "
            "`modelport plugins trust`.",
            markup=False,
        )
    if packages:
        table = Table("PACKAGE ENTRY POINT", "TARGET", "DISTRIBUTION", "STATUS")
        for package in packages:
            status = "ok" if package["ok"] else f"BROKEN: {package['error']}"
            dist = f"{package['package']} {package['version']}" if package["package"] else "-"
            table.add_row(package["name"], package["target"], dist, status)
        console.print(table)


@plugins_app.command()
def load(gateway: GatewayOption = None) -> None:
    """Rescan the plugin folders of the running gateway."""
    plugins = _admin("POST", "/plugins/load", gateway)["plugins"]
    names = ", ".join(f"{p['name']} ({p['state']})" for p in plugins) or "none"
    err_console().print(f"Plugins: {names}", markup=False)


@plugins_app.command()
def start(
    name: Annotated[str, typer.Argument(help="Plugin name.")], gateway: GatewayOption = None
) -> None:
    """Start plugin NAME in the running gateway."""
    info = _admin("POST", f"/plugins/{name}/start", gateway)
    models = [f"{p['id']}/{m}" for p in info["providers"] for m in p["models"]]
    err_console().print(
        f"{name}: {info['state']} (pid {info['pid']}); models: {', '.join(models) or 'none'}",
        markup=False,
    )


@plugins_app.command()
def stop(
    name: Annotated[str, typer.Argument(help="Plugin name.")], gateway: GatewayOption = None
) -> None:
    """Stop plugin NAME in the running gateway."""
    info = _admin("POST", f"/plugins/{name}/stop", gateway)
    err_console().print(f"{name}: {info['state']}", markup=False)


@plugins_app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    gateway: GatewayOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
) -> None:
    """Print the last lines of plugin NAME's stderr (from the running gateway)."""
    info = _admin("GET", f"/plugins/{name}", gateway)
    tail = info.get("stderr") or []
    for line in tail[-lines:] if lines > 0 else tail:
        out_console().print(line, markup=False, highlight=False)
    if info.get("state") == "crashed":
        err_console().print(
            f"{name} crashed (exit code {info.get('exit_code')}): {info.get('error')}",
            markup=False,
        )


@plugins_app.command()
def trust(
    path: Annotated[
        Path | None,
        typer.Argument(help="Project folder or its .modelport/plugins (default: here)."),
    ] = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="Withdraw trust instead.")] = False,
) -> None:
    """Trust the project's plugins and config.toml (as they are now) so that they apply."""
    from modelport.config import find_project_dir, modelport_home
    from modelport.trust import TrustStore, config_hash, plugins_folder, project_config_file

    if path is None:
        project = find_project_dir()
        if project is None:
            fail("no .modelport/ folder here or above; pass the project folder as PATH")
        path = project
    folder = plugins_folder(path)
    store = TrustStore(modelport_home())
    if revoke:
        removed = store.revoke(folder)
        err_console().print(
            f"{'Withdrew trust from' if removed else 'No trust recorded for'} {folder}.",
            markup=False,
        )
        return
    config = project_config_file(folder)
    has_config = config is not None and config.is_file()
    if not folder.is_dir() and not has_config:
        fail(f"{folder.parent} holds neither plugins nor a config.toml to trust")
    trusted = store.trust(folder)
    if not trusted and not has_config:
        fail(f"{folder} holds no plugins (folders with modelport-plugin.toml or package.json)")
    for name, digest in trusted.items():
        out_console().print(
            f"trusted {name} (manifest sha256 {digest[:12]}, and its files)", markup=False
        )
    if has_config and config is not None:
        digest = config_hash(config.read_bytes())
        out_console().print(f"trusted {config} (sha256 {digest[:12]})", markup=False)
    err_console().print(
        "A changed manifest, plugin file or config, or a plugin added later, needs "
        "`modelport plugins trust` again (.git, node_modules and virtualenvs excepted).",
        markup=False,
    )


@plugins_app.command()
def new(
    name: Annotated[str, typer.Argument(help="Plugin name (also its provider id).")],
    lang: Annotated[
        str, typer.Option("--lang", help="python, node or ts (TypeScript).")
    ] = "python",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: ./NAME).")
    ] = None,
) -> None:
    """Write a working plugin that wraps an OpenAI-compatible API."""
    from modelport.plugin_host.scaffold import LANGUAGES, new_plugin

    if lang not in LANGUAGES:
        fail(f"unknown language {lang!r}", f"Choose one of: {', '.join(LANGUAGES)}.")
    target = directory if directory is not None else Path(name)
    written = new_plugin(target, name, lang)  # type: ignore[arg-type]
    for path in written:
        out_console().print(str(path), markup=False)
    if lang == "ts":
        err_console().print(
            f"Build it first: `cd {target} && npm install && npm run build` (the SDK is "
            "vendored; npm fetches only TypeScript).",
            markup=False,
        )
    err_console().print(
        f"Next: `modelport plugins check {target} --set apiKey=... --set baseUrl=...`, then "
        f"copy it into MODELPORT_HOME/plugins/ and set its key with "
        f"`modelport keys set {name}`.",
        markup=False,
    )


@plugins_app.command()
def check(
    directory: Annotated[Path, typer.Argument(help="The plugin folder.")],
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A providerConfig value, KEY=VALUE (repeatable)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model id to test with.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per step.")] = 10.0,
) -> None:
    """Start the plugin in DIRECTORY and run the protocol conformance checks."""
    from modelport.plugin_host.conformance import check_plugin

    config: dict[str, str] = {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set takes KEY=VALUE, not {item!r}")
        config[key] = value
    results = asyncio.run(
        check_plugin(directory, provider_config=config, model=model, timeout=timeout)
    )
    console = out_console()
    for result in results:
        mark = "PASS" if result.ok else "FAIL"
        console.print(
            f"{mark}  {result.name:<10} {result.detail}",
            style="green" if result.ok else "bold red",
            markup=False,
        )
    failed = [r for r in results if not r.ok]
    passed = len(results) - len(failed)
    err_console().print(f"{passed} passed, {len(failed)} failed", markup=False)
    if failed:
        exit_with(1)
