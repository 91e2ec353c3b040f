"""The import rules of the package map in ``docs/architecture.md``, checked from the source.

The map's table is the rule: each row names a package, what of modelport it may
import, and what it must never import. Every ``import`` statement counts —
module level, inside a function, under ``TYPE_CHECKING`` — because a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "modelport"
MAP = ROOT / "docs" / "architecture.md"

CORE = frozenset({"types", "events", "errors", "aggregate", "modelport"})


@dataclass(frozen=True)
class Rule:
    units: frozenset[str]
    allowed: frozenset[str]
    forbidden: frozenset[str]


def _names(cell: str) -> frozenset[str]:
    names = set(re.findall(r"`([\w.]+)`", cell))
    if re.search(r"\bcore\b", cell):
        names |= CORE
    return frozenset(names)


def read_map(text: str) -> list[Rule]:
    """The rows of the first table under ``## The map``."""
    section = text.split("## The map", 1)[1]
    rules = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            if rules and not line.startswith("|"):
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        units, _what, allowed, forbidden = cells
        rules.append(Rule(_names(units), _names(allowed), _names(forbidden)))
    return rules


def unit_of(module: str) -> str:
    """``modelport.routing._router`` → ``routing``; ``modelport`` → ``modelport``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "modelport"


def _resolve(module: str, root: Path) -> str:
    """``modelport.x`` names a submodule or package when one exists, else the package itself."""
    parts = module.split(".")
    if len(parts) > 1 and not ((root / f"{parts[1]}.py").exists() or (root / parts[1]).is_dir()):
        return "modelport"
    return module


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) for every modelport module ``path`` imports."""
    relative = path.relative_to(root).with_suffix("")
    package = (
        ["modelport", *relative.parts[:-1]]
        if path.name != "__init__.py"
        else [
            "modelport",
            *relative.parts[:-1],
        ]
    )
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "modelport":
                # `from modelport import config` imports the submodule config.
                found += [(node.lineno, _resolve(f"modelport.{a.name}", root)) for a in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if m == "modelport" or m.startswith("modelport.")]


def violations(root: Path, rules: list[Rule]) -> list[str]:
    by_unit = {unit: rule for rule in rules for unit in rule.units}
    problems = []
    for path in sorted(root.rglob("*.py")):
        unit = unit_of(".".join(["modelport", *path.relative_to(root).with_suffix("").parts]))
        if path.parent == root and path.name == "__init__.py":
            unit = "modelport"
        rule = by_unit.get(unit)
        if rule is None:
            problems.append(f"{path.relative_to(root)}: package {unit!r} is not on the map")
            continue
        for line, module in imports_of(path, root):
            target = unit_of(module)
            if target == unit:
                continue
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if target in rule.forbidden:
                problems.append(f"{where}: {unit} must never import {target}")
            elif target not in rule.allowed:
                problems.append(f"{where}: {target} is not among what {unit} may import")
    return problems


RULES = read_map(MAP.read_text("utf-8"))


def test_the_map_covers_every_package_once() -> None:
    units = [unit for rule in RULES for unit in rule.units]
    assert len(units) == len(set(units))
    on_disk = {p.stem for p in SOURCE.glob("*.py")} | {
        p.name for p in SOURCE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    on_disk = {"modelport" if name == "__init__" else name for name in on_disk}
    assert on_disk == set(units)


def test_no_row_allows_what_it_forbids() -> None:
    for rule in RULES:
        assert not (rule.allowed & rule.forbidden), rule


def test_every_import_keeps_to_the_map() -> None:
    assert violations(SOURCE, RULES) == []


TYPE_CHECKING_IMPORT = (
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from modelport.config import Config\n"
)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "wire/bad.py",
            "from modelport.providers import Provider\n",
            "wire must never import providers",
        ),
        (
            "plugin_sdk/bad.py",
            "def f():\n    from modelport.plugin_host import host\n",
            "plugin_sdk must never import plugin_host",
        ),
        (
            "errors.py",
            TYPE_CHECKING_IMPORT,
            "config is not among what errors may import",
        ),
        ("providers/bad.py", "from ..server import app\n", "providers must never import server"),
        ("routing/bad.py", "from modelport import cli\n", "routing must never import cli"),
    ],
)
def test_a_broken_rule_is_reported(tmp_path: Path, module: str, source: str, expected: str) -> None:
    root = tmp_path / "modelport"
    for package in (
        "wire",
        "plugin_sdk",
        "plugin_host",
        "providers",
        "server",
        "routing",
        "cli",
        "config",
    ):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / module).write_text(source)
    found = [problem for problem in violations(root, RULES) if "is not on the map" not in problem]
    assert len(found) == 1 and expected in found[0], found
