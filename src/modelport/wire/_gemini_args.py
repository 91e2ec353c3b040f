"""A Gemini call's arguments as JSON text, built from the ``partialArgs`` it streams.

With ``streamFunctionCallArguments`` Gemini (Vertex, Gemini 3) sends a call's
arguments as leaves: ``{"jsonPath": "$.location", "stringValue": "Bos",
"willContinue": true}``, then more of the same string, then other leaves.
:class:`ArgumentWriter` turns each batch into the next fragment of the JSON
text, so the fragments joined are the arguments object (what
:class:`~modelport.events.ToolCallDeltaEvent` promises).

Leaves are written in the order they arrive, which is the order the model
writes them: a container is opened when a path first enters it and closed
when a path leaves it. A string stays open until another leaf (or the end)
comes, so a later ``stringValue`` for the same path continues it. A path
that returns to a container already closed, or names a leaf twice, cannot
become valid JSON text any more and raises :class:`ParseError`.
"""

from __future__ import annotations

import re

import msgspec

from modelport.errors import ParseError
from modelport.wire._gemini_shapes import PartialArg

__all__ = ["ArgumentWriter", "parse_json_path"]

Segment = str | int
Path = tuple[Segment, ...]

# One step of a JSON path after "$": .name, [3], ['name'] or ["name"].
_STEP = re.compile(r"""\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")


def parse_json_path(path: str) -> Path:
    """``$.recipe.items[0].name`` → ``("recipe", "items", 0, "name")``."""
    if not path.startswith("$"):
        raise ParseError(f"Gemini streamed an argument with an unreadable jsonPath: {path!r}")
    steps: list[Segment] = []
    position = 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise ParseError(f"Gemini streamed an argument with an unreadable jsonPath: {path!r}")
        name, index, single, double = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(next(value for value in (name, single, double) if value is not None))
        position = match.end()
    if not steps:
        raise ParseError(f"Gemini streamed an argument for the whole object ({path!r}), not a leaf")
    return tuple(steps)


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _value_json(arg: PartialArg) -> str | None:
    """The leaf's JSON text, or ``None`` for a piece that carries no value."""
    if arg.stringValue is not None:
        return _json(arg.stringValue)
    if arg.numberValue is not None:
        return _json(arg.numberValue)
    if arg.boolValue is not None:
        return "true" if arg.boolValue else "false"
    if arg.nullValue is not msgspec.UNSET:
        return "null"
    return None


class _Container:
    __slots__ = ("array", "children", "path")

    def __init__(self, path: Path, array: bool) -> None:
        self.path = path
        self.array = array
        self.children = 0


class ArgumentWriter:
    """Feed each chunk's ``partialArgs`` to :meth:`add`; :meth:`finish` closes the object."""

    def __init__(self) -> None:
        self._stack: list[_Container] = []
        self._seen: set[Path] = set()
        self._open_string: Path | None = None

    def add(self, pieces: list[PartialArg]) -> str:
        """The next fragment of the arguments' JSON text."""
        out: list[str] = []
        for piece in pieces:
            path = parse_json_path(piece.jsonPath)
            if piece.stringValue is not None and path == self._open_string:
                out.append(_json(piece.stringValue)[1:-1])
                continue
            value = _value_json(piece)
            if value is None:
                continue
            out.append(self._enter(path))
            if piece.stringValue is not None:
                out.append(value[:-1])  # the closing quote waits: more of it may follow
                self._open_string = path
            else:
                out.append(value)
        return "".join(out)

    def finish(self) -> str:
        """The text that closes what is open (``{}`` for a call with no arguments)."""
        if not self._stack:
            return "{}"
        out = ['"'] if self._open_string is not None else []
        self._open_string = None
        while self._stack:
            out.append("]" if self._stack.pop().array else "}")
        return "".join(out)

    def _enter(self, path: Path) -> str:
        """Close and open containers to reach ``path``'s parent; write its key."""
        out: list[str] = []
        if self._open_string is not None:
            out.append('"')
            self._open_string = None
        if not self._stack:
            out.append("{")
            self._stack.append(_Container((), array=False))
        parents = path[:-1]
        depth = 0
        while (
            depth + 1 < len(self._stack)
            and depth < len(parents)
            and self._stack[depth + 1].path == parents[: depth + 1]
        ):
            depth += 1
        while len(self._stack) > depth + 1:
            out.append("]" if self._stack.pop().array else "}")
        for level in range(depth, len(parents)):
            child = parents[level + 1] if level + 1 < len(parents) else path[-1]
            out.append(self._key(parents[: level + 1]))
            container = _Container(parents[: level + 1], array=isinstance(child, int))
            out.append("[" if container.array else "{")
            self._stack.append(container)
        out.append(self._key(path))
        return "".join(out)

    def _key(self, path: Path) -> str:
        """The comma and key (none in an array) that put ``path`` in the open container."""
        if path in self._seen:
            raise ParseError(
                f"Gemini streamed the argument {_shown(path)} again after moving past it"
            )
        self._seen.add(path)
        parent = self._stack[-1]
        step = path[-1]
        if parent.array != isinstance(step, int):
            raise ParseError(
                f"Gemini streamed the argument {_shown(path)} into a container of another kind"
            )
        comma = "," if parent.children else ""
        parent.children += 1
        return comma if parent.array else f"{comma}{_json(step)}:"


def _shown(path: Path) -> str:
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
