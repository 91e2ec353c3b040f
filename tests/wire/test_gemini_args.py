"""Gemini's streamed ``partialArgs`` → the arguments' JSON text, fragment by fragment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.errors import ParseError
from modelport.wire._gemini_args import ArgumentWriter, parse_json_path
from modelport.wire._gemini_shapes import PartialArg


def _path(steps: tuple[str | int, ...]) -> str:
    out = "$"
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step and not any(c in step for c in ".[]'\""):
            out += f".{step}"
        elif "'" not in step:
            out += f"['{step}']"
        else:
            out += f'["{step}"]'
    return out


def _leaves(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*prefix, key))]
    if isinstance(value, list):
        return [
            leaf for index, item in enumerate(value) for leaf in _leaves(item, (*prefix, index))
        ]
    return [(prefix, value)]


def _pieces(path: str, value: Any, cuts: list[int]) -> list[PartialArg]:
    if isinstance(value, bool):
        return [PartialArg(jsonPath=path, boolValue=value)]
    if value is None:
        return [PartialArg(jsonPath=path, nullValue=None)]
    if isinstance(value, int | float):
        return [PartialArg(jsonPath=path, numberValue=value)]
    bounds = [0, *sorted({c % (len(value) + 1) for c in cuts}), len(value)]
    texts = [value[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    return [
        PartialArg(jsonPath=path, stringValue=text, willContinue=i < len(texts) - 1)
        for i, text in enumerate(texts)
    ]


_KEY = st.text(min_size=1, max_size=6).filter(lambda k: not ("'" in k and '"' in k))
_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(_KEY, inner, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_KEY, _VALUE, min_size=1, max_size=4),
    st.lists(st.integers(0, 50), max_size=4),
    st.lists(st.integers(1, 4), max_size=8),
)
def test_any_arguments_streamed_in_any_batches_come_back_whole(
    arguments: dict[str, Any], cuts: list[int], batches: list[int]
) -> None:
    pieces = [
        piece for path, value in _leaves(arguments) for piece in _pieces(_path(path), value, cuts)
    ]
    writer = ArgumentWriter()
    text = ""
    start = 0
    for size in [*batches, len(pieces)]:
        text += writer.add(pieces[start : start + size])
        start += size
    text += writer.finish()
    assert json.loads(text) == arguments


def test_no_arguments_at_all() -> None:
    assert ArgumentWriter().finish() == "{}"


def test_nested_objects_and_arrays() -> None:
    writer = ArgumentWriter()
    first = writer.add(
        [
            PartialArg(jsonPath="$.recipe.name", stringValue="Lasa", willContinue=True),
            PartialArg(jsonPath="$.recipe.name", stringValue="gna"),
            PartialArg(jsonPath="$.recipe.items[0].qty", numberValue=2),
        ]
    )
    assert first == '{"recipe":{"name":"Lasagna","items":[{"qty":2'
    second = writer.add([PartialArg(jsonPath="$.recipe.items[1].qty", numberValue=1.5)])
    assert second == '},{"qty":1.5'
    assert writer.add([PartialArg(jsonPath="$.done", boolValue=True)]) == '}]},"done":true'
    assert writer.finish() == "}"


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$.a", ("a",)),
        ("$.a.b[2].c", ("a", "b", 2, "c")),
        ("$['a.b']", ("a.b",)),
        ('$["it\'s"][0]', ("it's", 0)),
    ],
)
def test_paths(path: str, steps: tuple[str | int, ...]) -> None:
    assert parse_json_path(path) == steps


@pytest.mark.parametrize("path", ["", "$", "a.b", "$.", "$[x]", "$.a[", "$..a"])
def test_unreadable_paths(path: str) -> None:
    with pytest.raises(ParseError):
        parse_json_path(path)


@pytest.mark.parametrize(
    "pieces",
    [
        # Back into a container already closed.
        [("$.a.x", 1), ("$.b", 2), ("$.a.y", 3)],
        # The same leaf twice.
        [("$.a", 1), ("$.a", 2)],
        # A key where an index belongs.
        [("$.l[0]", 1), ("$.l.k", 2)],
    ],
)
def test_pieces_that_cannot_become_json_text(pieces: list[tuple[str, int]]) -> None:
    writer = ArgumentWriter()
    with pytest.raises(ParseError):
        writer.add([PartialArg(jsonPath=path, numberValue=value) for path, value in pieces])
