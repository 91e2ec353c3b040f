"""``modelport chat``: one prompt, piped input, or an interactive session.

With a PROMPT argument (or text piped on stdin, or both: stdin first, then the
prompt, the way ``llm`` does it) the command answers once and exits. With
neither it opens a session that keeps the history until ``/exit`` or Ctrl-D;
Ctrl-C there abandons the answer in progress, not the session.

Plugin models (``<provider id>/<model>``) work too: the plugin host starts when
the address needs it and stops when the command ends. Each answer is recorded
in the usage ledger with ``api = "cli"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli._output import (
    EventPrinter,
    err_console,
    fail,
    print_error,
    print_response,
    print_usage,
)
from modelport.types import ChatRequest, ChatResponse, Message, Reasoning

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.ledger import Ledger
    from modelport.routing import Router

__all__ = ["register"]

_EXIT_COMMANDS = frozenset({"/exit", "/quit", "exit", "quit"})
_EFFORTS = ("minimal", "low", "medium", "high")
_API = "cli"  # what the usage ledger records these calls under


def register(app: typer.Typer) -> None:
    """Add ``chat`` to ``app``."""
    app.command(name="chat")(chat)


def chat(
    prompt: Annotated[
        str | None, typer.Argument(help="The prompt. Omit it to read stdin or start a session.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("-m", "--model", help="Model address (connection/model) or alias."),
    ] = None,
    system: Annotated[str | None, typer.Option("-s", "--system", help="System prompt.")] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Most tokens the answer may use.")
    ] = None,
    reasoning: Annotated[
        str | None,
        typer.Option(
            "--reasoning",
            metavar="low|medium|high|N",
            help="Reasoning effort, or a budget of N thinking tokens.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON object per line.")
    ] = False,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer, then print it.")
    ] = False,
    usage: Annotated[
        bool, typer.Option("-u", "--usage", help="Show token usage after a one-shot answer.")
    ] = False,
) -> None:
    """Chat with a model: one PROMPT, piped input, or a session.

    With neither a PROMPT nor piped input, starts an interactive session:
    /exit or Ctrl-D leaves, Ctrl-C cancels the answer in progress.
    """
    from modelport.config import default_model, load_config

    config = load_config()
    address = model or default_model(config)
    if not address:
        fail(
            "no model given and no default model set",
            "Pass -m connection/model, run `modelport local on`, or set default_model "
            "(`modelport local model NAME`, or MODELPORT_MODEL in the environment).",
        )
    template = ChatRequest(
        model=address,
        messages=[],
        temperature=temperature,
        max_tokens=max_tokens,
        reasoning=_parse_reasoning(reasoning),
    )
    history = [Message(role="system", content=system)] if system else []
    options = _Options(stream=not no_stream, as_json=as_json, usage=usage)

    if prompt is None and _stdin_is_interactive():
        _session(config, template, history, options)
        return
    text = _one_shot_prompt(prompt)
    with asyncio.Runner() as runner:
        runner.run(_one_shot(config, template, [*history, _user(text)], options))


@dataclass(frozen=True, kw_only=True)
class _Options:
    """How answers are shown; the same for every turn of a session."""

    stream: bool
    as_json: bool
    usage: bool


def _stdin_is_interactive() -> bool:
    return sys.stdin.isatty()


def _parse_reasoning(value: str | None) -> Reasoning | None:
    if value is None:
        return None
    if value in _EFFORTS:
        return Reasoning(effort=value)  # type: ignore[arg-type]
    if value.isdigit() and int(value) > 0:
        return Reasoning(budget_tokens=int(value))
    raise typer.BadParameter(
        f"{value!r} is neither an effort ({', '.join(_EFFORTS)}) nor a token budget",
        param_hint="--reasoning",
    )


def _one_shot_prompt(prompt: str | None) -> str:
    piped = "" if _stdin_is_interactive() else _read_stdin()
    text = "\n".join(part for part in (piped.strip("\n"), prompt) if part)
    if not text.strip():
        fail("empty prompt", "Give a PROMPT argument or pipe text in on stdin.")
    return text


def _read_stdin() -> str:
    """Piped text as UTF-8; bytes that are not (a binary file, another encoding) become U+FFFD.

    Reading text would keep them as lone surrogates, which no JSON body can carry.
    """
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a stdin replaced by a text-only stream
        return sys.stdin.read().encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return buffer.read().decode("utf-8", errors="replace")


def _user(text: str) -> Message:
    return Message(role="user", content=text)


def _request(template: ChatRequest, messages: list[Message]) -> ChatRequest:
    import msgspec

    return msgspec.structs.replace(template, messages=messages)


async def _answer(router: Router, request: ChatRequest, options: _Options) -> ChatResponse:
    """Send one request and show the answer as it arrives (or at once with ``--no-stream``)."""
    if not options.stream:
        response = await router.complete(request, api=_API)
        print_response(response, as_json=options.as_json)
        return response
    printer = EventPrinter(model=request.model, as_json=options.as_json)
    try:
        async for event in router.stream(request, api=_API):
            printer.add(event)
    except BaseException:
        # A broken or cancelled stream still leaves the terminal on a fresh line.
        printer.abort()
        raise
    return printer.close()


def _router(config: Config) -> tuple[Router, Ledger | None]:
    """A router that reaches plugin models and records calls in the usage ledger."""
    from modelport.errors import ModelportError
    from modelport.ledger import open_ledger
    from modelport.routing import Router, plugin_host

    ledger: Ledger | None
    try:
        ledger = open_ledger(config)
    except ModelportError as exc:  # the answer matters more than the bookkeeping
        err_console().print(f"usage ledger disabled: {exc}", style="dim", markup=False)
        ledger = None
    return Router(config, ledger=ledger, provider_source=plugin_host), ledger


async def _close(router: Router, ledger: Ledger | None) -> None:
    try:
        await router.aclose()
    finally:
        if ledger is not None:
            await ledger.aclose()


async def _one_shot(
    config: Config, template: ChatRequest, messages: list[Message], options: _Options
) -> None:
    router, ledger = _router(config)
    try:
        response = await _answer(router, _request(template, messages), options)
    finally:
        await _close(router, ledger)
    if options.usage and not options.as_json:
        print_usage(response.usage)


def _session(
    config: Config, template: ChatRequest, history: list[Message], options: _Options
) -> None:
    """The interactive loop: one event loop and one router for the whole session."""
    from modelport.errors import ModelportError

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())

    console = err_console()
    console.print(
        f"Chatting with {template.model}. /exit or Ctrl-D to leave, Ctrl-C cancels an answer.",
        style="dim",
        markup=False,
    )
    with asyncio.Runner() as runner:
        router, ledger = _router(config)
        try:
            while True:
                line = _read_line()
                if line is None or line.strip() in _EXIT_COMMANDS:
                    break
                if not line.strip():
                    continue
                turn = [*history, _user(line)]
                try:
                    response = runner.run(_answer(router, _request(template, turn), options))
                except KeyboardInterrupt:
                    # The cancelled turn leaves no trace in the history.
                    console.print("(cancelled)", style="dim", markup=False)
                    continue
                except ModelportError as exc:
                    # One failed turn should not end the session; the history stays as it was.
                    print_error(exc)
                    continue
                history = [*turn, response.to_message()]
                if not options.as_json:
                    print_usage(response.usage)
        finally:
            runner.run(_close(router, ledger))


def _read_line() -> str | None:
    """The next line typed, or ``None`` on Ctrl-D."""
    while True:
        try:
            return input("> ")
        except EOFError:
            err_console().print()
            return None
        except KeyboardInterrupt:
            # Ctrl-C at the prompt discards the line, as a shell does.
            err_console().print()
            continue
