from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.host import PluginHost

# Fixtures shared with the CLI and gateway tests.
from tests.cli.conftest import cli  # noqa: F401
from tests.server.conftest import gateway_factory  # noqa: F401

SCRIPTED = Path(__file__).with_name("_scripted_plugin.py")


def write_plugin(
    parent: Path,
    name: str,
    command: list[str],
    *,
    triggers: list[str] | None = None,
    env: list[str] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """A plugin folder with a manifest (and any extra files) under ``parent``."""
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f'name = "{name}"',
        'version = "1.0.0"',
        'type = "llm-provider"',
        "command = [" + ", ".join(f'"{part}"' for part in command) + "]",
        "triggers = [" + ", ".join(f'"{t}"' for t in (triggers or [])) + "]",
    ]
    if env is not None:
        lines.append("env = [" + ", ".join(f'"{v}"' for v in env) + "]")
    (folder / "modelport-plugin.toml").write_text("\n".join(lines) + "\n")
    for relative, text in (files or {}).items():
        (folder / relative).write_text(text)
    return folder


def write_garbage_plugins(parent: Path) -> None:
    """Folders of every kind of broken manifest, and a library that is not a plugin."""
    cases = {
        "objects": 'name = "objects"\nversion = "1"\ntype = "llm-provider"\n'
        'command = ["x"]\ntriggers = [{type = ["startup"]}, [1]]\n',
        "wrong-types": "name = 1\nversion = []\ntype = {a = 1}\ncommand = [1]\nenv = [{}]\n",
        "not-toml": "name = = =",
    }
    for name, text in cases.items():
        (parent / name).mkdir(parents=True)
        (parent / name / "modelport-plugin.toml").write_text(text)
    (parent / "not-utf8").mkdir()
    (parent / "not-utf8" / "modelport-plugin.toml").write_bytes(b"name = '\xff'\n")
    (parent / "huge").mkdir()
    (parent / "huge" / "modelport-plugin.toml").write_bytes(b" " * (10 * 1024 * 1024))
    (parent / "loop").mkdir()
    (parent / "loop" / "modelport-plugin.toml").symlink_to("modelport-plugin.toml")
    (parent / "loop-dir").symlink_to("loop-dir")
    (parent / "bad-json").mkdir()
    (parent / "bad-json" / "package.json").write_text('{"modelport": {"plugin": 7}')
    (parent / "a-library").mkdir()
    (parent / "a-library" / "package.json").write_text('{"name": "lib", "version": "1.0.0"}')


def scripted(mode: str, provider: str = "scripted") -> list[str]:
    return [sys.executable, str(SCRIPTED), mode, provider]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check`` holds: a plugin's exit, its stderr, reach the host a moment
    after the call that caused them, later still on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class FakeRegistry:
    """Stands in for the router: remembers what the host registers."""

    def __init__(self) -> None:
        self.providers: dict[str, object] = {}
        self.models: dict[str, list] = {}
        self.events: list[tuple[str, str]] = []

    def register_provider(self, name: str, provider: object, models: list | None = None) -> None:
        self.providers[name] = provider
        self.models[name] = list(models or [])
        self.events.append(("register", name))

    def unregister_provider(self, name: str) -> None:
        self.providers.pop(name, None)
        self.models.pop(name, None)
        self.events.append(("unregister", name))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "plugins").mkdir(parents=True)
    return path


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


HostFactory = Callable[..., PluginHost]


@pytest.fixture
async def make_host(home: Path, registry: FakeRegistry) -> AsyncIterator[HostFactory]:
    """Build hosts over ``home/plugins`` (and any extra dirs); every one is closed afterwards."""
    hosts: list[PluginHost] = []

    def factory(*extra: PluginDir, **options: object) -> PluginHost:
        options.setdefault("initialize_timeout", 5.0)
        options.setdefault("shutdown_timeout", 1.0)
        options.setdefault("kill_grace", 1.0)
        options.setdefault("restart_backoff", 0.05)
        dirs = [PluginDir(home / "plugins", "home"), *extra]
        host = PluginHost(options.pop("router", registry), dirs=dirs, home=home, **options)
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        await host.aclose()
