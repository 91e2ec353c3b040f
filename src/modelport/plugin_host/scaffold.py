"""``modelport plugins new``: write a working plugin to start from.

Each language has a folder of templates under ``templates/`` (``*.tmpl``,
with ``{{name}}`` and ``{{provider_id}}`` placeholders). The plugin they make
wraps an OpenAI-compatible chat API and declares an API-key config field; the
examples in ``examples/plugins/`` are these templates rendered, and a test
keeps the two the same.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from modelport.errors import ConfigError

__all__ = ["LANGUAGES", "TEMPLATES_DIR", "new_plugin", "render"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
Language = Literal["python", "node"]
LANGUAGES: tuple[Language, ...] = ("python", "node")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


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
    for template in sorted((TEMPLATES_DIR / language).glob("*.tmpl")):
        text = template.read_text("utf-8")
        text = text.replace("{{name}}", name).replace("{{provider_id}}", name)
        files[template.name.removesuffix(".tmpl")] = text
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
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
