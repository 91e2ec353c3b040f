"""Rendering for the command line: errors, tables, and a stream of events.

Every command prints through these helpers so that the CLI looks the same
everywhere: answers on stdout, everything about the answer (reasoning, usage,
progress, errors) on stderr, colour only where a terminal shows it. Consoles
are built per call, so they follow whatever ``sys.stdout`` is at that moment
(a pipe, a terminal, or ``CliRunner``'s capture).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, NoReturn

import msgspec
from rich.console import Console

from modelport.aggregate import Aggregator
from modelport.errors import (
    AuthError,
    ConfigError,
    ContextTooLongError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)

if TYPE_CHECKING:
    from modelport.types import ChatResponse, ToolCall, Usage

__all__ = [
    "EventPrinter",
    "err_console",
    "error_hint",
    "exit_with",
    "fail",
    "out_console",
    "print_error",
    "print_response",
    "print_usage",
    "redact",
]

# A URL's query may carry a key (``?key=...``); such values never reach the screen.
_SECRET_QUERY = re.compile(r"(?i)([?&](?:key|api[_-]?key|token|access_token|secret)=)[^&\s),]+")
# Bearer tokens and the usual vendor key shapes, in case an upstream echoed one back.
_SECRET_TOKEN = re.compile(r"(?i)(bearer\s+)[\w.\-~+/]+=*|\b(sk|pk|rk)-[\w\-]{8,}")


def out_console() -> Console:
    """A console on stdout; plain text when stdout is not a terminal.

    Off a terminal the width is unbounded, so a table piped into a file or
    ``grep`` keeps whole model addresses instead of wrapping them at 80 columns.
    """
    width = None if sys.stdout.isatty() else 1000
    return Console(highlight=False, soft_wrap=True, width=width)


def err_console() -> Console:
    """A console on stderr; plain text when stderr is not a terminal."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by ``***``."""
    text = _SECRET_QUERY.sub(r"\1***", text)
    return _SECRET_TOKEN.sub(lambda m: f"{m.group(1)}***" if m.group(1) else "***", text)


def error_hint(exc: ModelportError) -> str | None:
    """What to try next for ``exc``, or ``None`` where its message already says it."""
    name = exc.connection
    match exc:
        case NetworkError():
            # The message already says what to check; point at the command that checks it.
            return "`modelport doctor` checks every connection and suggests a fix."
        case AuthError():
            if name:
                return f"Store a valid key with `modelport keys set {name}`."
            return "Store a valid key with `modelport keys set <connection>`."
        case RateLimitError():
            if exc.retry_after is not None:
                return f"The upstream asks to wait {exc.retry_after:g} s before trying again."
            return "Wait a moment and try again."
        case ContextTooLongError():
            return "Shorten the prompt or the history, or pick a model with a larger context."
        case ModelNotFoundError():
            return "`modelport models` lists the models every connection offers."
        case ConfigError():
            return "`modelport doctor` shows where the configuration lives and what is wrong."
        case _:
            return None


def print_error(exc: ModelportError) -> None:
    """One red ``error: ...`` line and, where useful, a dim hint; on stderr, no traceback."""
    console = err_console()
    console.print(f"error: {redact(str(exc))}", style="bold red", markup=False)
    hint = error_hint(exc)
    if hint:
        console.print(hint, style="dim", markup=False)


def fail(message: str, hint: str | None = None, *, code: int = 1) -> NoReturn:
    """Print a CLI-level error (bad arguments, nothing to do) and exit with ``code``."""
    console = err_console()
    console.print(f"error: {message}", style="bold red", markup=False)
    if hint:
        console.print(hint, style="dim", markup=False)
    exit_with(code)


def exit_with(code: int) -> NoReturn:
    """Exit with ``code``.

    ``SystemExit`` rather than ``typer.Exit``: ``main()`` runs the app with
    ``standalone_mode=False``, where click turns ``Exit`` into a return value
    and its code would be lost.
    """
    raise SystemExit(code)


def format_tool_call(call: ToolCall) -> str:
    """``→ tool name(arguments)``, the way a tool call shows in a transcript."""
    return f"→ tool {call.name}({call.arguments})"


def usage_line(usage: Usage) -> str:
    """``12 in · 34 out`` plus whichever extra counts are non-zero."""
    parts = [f"{usage.input_tokens} in", f"{usage.output_tokens} out"]
    if usage.reasoning_tokens:
        parts.append(f"{usage.reasoning_tokens} reasoning")
    if usage.cache_read_tokens:
        parts.append(f"{usage.cache_read_tokens} cache read")
    if usage.cache_write_tokens:
        parts.append(f"{usage.cache_write_tokens} cache write")
    if usage.cost is not None:
        parts.append(f"${usage.cost:.6f}")
    return "tokens: " + " · ".join(parts)


def print_usage(usage: Usage) -> None:
    """The dim usage footer, on stderr."""
    err_console().print(usage_line(usage), style="dim", markup=False)


class EventPrinter:
    """Renders one answer as its events arrive, and folds them for the history.

    Text goes to stdout, flushed per chunk, exactly as the model produced it.
    Reasoning goes to stderr (dimmed on a terminal) so a pipe receives only the
    answer. A tool call prints once its arguments are whole: when the next call
    starts, text follows or the answer finishes (a call whose fragments are
    still arriving, interleaved with another's, waits). With ``as_json`` every
    event is one JSON line on stdout instead.
    """

    def __init__(self, *, model: str, as_json: bool = False) -> None:
        self.as_json = as_json
        self.aggregator = Aggregator(model=model)
        self._out = out_console()
        self._err = err_console()
        #: Calls started and not shown yet: index → (id, name, argument fragments).
        self._pending_calls: dict[int, tuple[str, str, list[str]]] = {}
        self._last: str = ""  # "text" or "reasoning": which stream printed last
        self._text_ends_with_newline = True

    def add(self, event: StreamEvent) -> None:
        """Show ``event`` and remember it."""
        self.aggregator.add(event)
        if self.as_json:
            sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
            sys.stdout.flush()
            return
        match event:
            case TextEvent(text=text):
                self._flush_calls()
                self._switch("text")
                self._write_text(text)
            case ReasoningEvent(text=text) if text:
                self._switch("reasoning")
                self._err.print(text, style="dim italic", markup=False, end="")
                self._err.file.flush()
            case ToolCallStartEvent(index=index, id=id, name=name):
                # The calls before this one are done; this one's arguments are yet to come.
                self._flush_calls()
                self._pending_calls[index] = (id, name, [])
            case ToolCallDeltaEvent(index=index, arguments=arguments):
                pending = self._pending_calls.get(index)
                if pending is not None:
                    pending[2].append(arguments)
            case UsageEvent() | ReasoningEvent():
                pass
            case FinishEvent():
                self._flush_calls()

    def close(self) -> ChatResponse:
        """End the answer (printing what is still pending) and return it aggregated."""
        response = self.aggregator.response()
        if not self.as_json:
            self._flush_calls(final=True)
            if self._last == "reasoning":
                self._err.print()
            elif not self._text_ends_with_newline:
                self._write_text("\n")
        return response

    def abort(self) -> None:
        """End the answer after a failure: finish the line, aggregate nothing."""
        if self.as_json:
            return
        if self._last == "reasoning":
            self._err.print()
        elif not self._text_ends_with_newline:
            self._write_text("\n")

    def _switch(self, kind: str) -> None:
        # Reasoning and text share a terminal; a newline keeps them on separate lines.
        if self._last == "reasoning" and kind == "text":
            self._err.print()
        elif self._last == "text" and kind == "reasoning" and not self._text_ends_with_newline:
            self._write_text("\n")
        self._last = kind

    def _write_text(self, text: str) -> None:
        if not text:
            return
        sys.stdout.write(text)
        sys.stdout.flush()
        self._text_ends_with_newline = text.endswith("\n")

    def _flush_calls(self, *, final: bool = False) -> None:
        """Show the pending calls whose arguments are whole JSON (every one when ``final``)."""
        if not self._pending_calls:
            return
        from modelport.types import ToolCall

        for index in sorted(self._pending_calls):
            id, name, fragments = self._pending_calls[index]
            arguments = "".join(fragments).strip() or "{}"
            if not final and not _is_whole_json(arguments):
                continue
            del self._pending_calls[index]
            self._print_call(ToolCall(id=id, name=name, arguments=arguments))

    def _print_call(self, call: ToolCall) -> None:
        self._switch("text")
        if not self._text_ends_with_newline:
            self._write_text("\n")
        self._out.print(format_tool_call(call), style="cyan", markup=False)
        self._out.file.flush()
        self._text_ends_with_newline = True


def _is_whole_json(text: str) -> bool:
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        return False
    return True


def print_response(response: ChatResponse, *, as_json: bool = False) -> None:
    """Show a finished (non-streamed) answer the way :class:`EventPrinter` shows a stream."""
    if as_json:
        sys.stdout.write(msgspec.json.encode(response).decode() + "\n")
        sys.stdout.flush()
        return
    if response.reasoning:
        err_console().print(response.reasoning, style="dim italic", markup=False)
    if response.content:
        sys.stdout.write(response.content)
        if not response.content.endswith("\n"):
            sys.stdout.write("\n")
    console = out_console()
    for call in response.tool_calls:
        console.print(format_tool_call(call), style="cyan", markup=False)
    sys.stdout.flush()
