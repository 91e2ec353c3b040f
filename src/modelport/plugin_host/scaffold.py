"""``modelport plugins new``: write a working plugin to start from.

Each language has a folder of templates under ``templates/`` (``*.tmpl``, in
subfolders too, with ``{{name}}`` and ``{{provider_id}}`` placeholders). The
plugin they make wraps an OpenAI-compatible chat API and declares an API-key
config field; the examples in ``examples/plugins/`` are these templates
rendered, and a test keeps the two the same.

A Node or TypeScript plugin also gets the Node SDK (``@modelport/plugin-sdk``)
vendored in ``vendor/modelport-plugin-sdk/``, which its ``package.json``
names as a ``file:`` dependency, and linked at
``node_modules/@modelport/plugin-sdk`` as ``npm install`` would link it: the
plugin runs at once, with no registry, and ``npm install`` keeps working offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Literal

from modelport.errors import ConfigError

__all__ = [
    "LANGUAGES",
    "SDK_PACKAGE",
    "TEMPLATES_DIR",
    "VENDORED_SDK",
    "install_sdk",
    "new_plugin",
    "node_sdk_dir",
    "render",
]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
Language = Literal["python", "node", "ts"]
LANGUAGES: tuple[Language, ...] = ("python", "node", "ts")
#: The Node SDK's package name, and where a scaffolded plugin keeps its copy.
SDK_PACKAGE = "@modelport/plugin-sdk"
VENDORED_SDK = "vendor/modelport-plugin-sdk"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def node_sdk_dir() -> Path:
    """The Node SDK that ships with this modelport: inside the package when installed
    from a wheel, ``sdk/node`` of the repository in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "node_sdk", here.parents[2] / "sdk" / "node"):
        if (candidate / "package.json").is_file():
            return candidate
    raise ConfigError(
        "The Node SDK is missing from this modelport installation (no node_sdk/ beside "
        f"{here} and no sdk/node in a checkout); reinstall modelport"
    )


def _sdk_files(sdk: Path) -> list[str]:
    """The files the SDK publishes: its package.json and what its "files" lists."""
    listed = json.loads((sdk / "package.json").read_text("utf-8")).get("files", [])
    return ["package.json", *(name for name in listed if (sdk / name).is_file())]


def install_sdk(plugin_dir: Path, sdk: Path | None = None) -> Path:
    """Copy the Node SDK into ``plugin_dir/vendor/`` and link it as npm would; returns the copy."""
    sdk = sdk or node_sdk_dir()
    vendored = plugin_dir / VENDORED_SDK
    vendored.mkdir(parents=True, exist_ok=True)
    for name in _sdk_files(sdk):
        shutil.copyfile(sdk / name, vendored / name)
    link = plugin_dir / "node_modules" / SDK_PACKAGE
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        return vendored
    try:
        link.symlink_to(os.path.relpath(vendored, link.parent), target_is_directory=True)
    except OSError:  # no symlinks here (Windows without the privilege): a copy works too
        shutil.copytree(vendored, link)
    return vendored


def render(language: Language, name: str) -> dict[str, str]:
    """Relative path → text of every file of a new plugin called ``name``."""
    if language not in LANGUAGES:
        raise ConfigError(f"Unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    if not _NAME.match(name):
        raise ConfigError(
            f"Plugin name {name!r} must be lower case letters, digits, '.', '_' or '-' "
            "(it also becomes the provider id in model addresses)"
        )
    files = {}
    root = TEMPLATES_DIR / language
    for template in sorted(root.rglob("*.tmpl")):
        text = template.read_text("utf-8")
        text = text.replace("{{name}}", name).replace("{{provider_id}}", name)
        files[template.relative_to(root).as_posix().removesuffix(".tmpl")] = text
    return files


def new_plugin(directory: Path, name: str, language: Language = "python") -> list[Path]:
    """Create ``directory`` with a new plugin; refuses to write into a non-empty folder."""
    files = render(language, name)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} already exists and is not empty; choose another place")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if language in ("node", "ts"):
        written.append(install_sdk(directory))
    return written
