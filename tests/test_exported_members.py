"""``modelport.__all__`` is sorted and names exactly the public members (as httpx checks)."""

from __future__ import annotations

import types
import typing

import modelport

#: Names ``modelport/__init__.py`` needs for itself, not part of the API.
_MODULE_PLUMBING = {"annotations", "TYPE_CHECKING", "Any"}


def _public_names() -> set[str]:
    return {
        name
        for name, value in vars(modelport).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in _MODULE_PLUMBING
    }


def test_all_is_sorted() -> None:
    assert modelport.__all__ == sorted(modelport.__all__)


def test_all_matches_the_public_members() -> None:
    lazy = set(modelport._LAZY)  # type: ignore[attr-defined]
    assert set(modelport.__all__) - {"__version__"} == _public_names() | lazy


def test_every_exported_name_resolves() -> None:
    for name in modelport.__all__:
        assert getattr(modelport, name) is not None, name
    assert set(modelport.__all__) - {"__version__"} == _public_names()


def test_dir_lists_the_exports() -> None:
    assert dir(modelport) == sorted(modelport.__all__)


def test_exported_members_are_defined_in_modelport() -> None:
    for name in modelport.__all__:
        if name == "__version__":
            continue
        member = getattr(modelport, name)
        # A union alias (StreamEvent, ContentPart) is judged by its members.
        for part in typing.get_args(member) or (member,):
            module = getattr(part, "__module__", "")
            assert module.startswith("modelport"), (name, module)
