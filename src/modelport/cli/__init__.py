"""The ``modelport`` command line.

Each command group lives in its own module exposing ``register(app)``; this
module only assembles them and renders errors in one place: a
:class:`~modelport.errors.ModelportError` prints one clear line and exits
non-zero, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from modelport.errors import ModelportError

__all__ = ["app", "main"]

#: Command modules under ``modelport.cli``, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "chat",
    "models",
    "connections",
    "keys",
    "login",
    "vkeys",
    "local",
    "doctor",
    "serve",
    "usage",
    "plugins",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="modelport",
        help="One port for every LLM: chat, list models, manage connections, run the gateway.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"modelport.cli.{name}")
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from modelport.cli._output import print_error

    app = build_app()
    try:
        from modelport.cli.serve import OWN_PROCESS

        # argv None: this process is ours (the console script, python -m modelport).
        own = {OWN_PROCESS: argv is None}
        code = app(args=argv, prog_name="modelport", standalone_mode=False, obj=own)
    except ModelportError as exc:
        print_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # Typer bundles its own click, so its usage errors and Exit/Abort are not
        # click's classes: recognise them by shape (show() and exit_code).
        show = getattr(exc, "show", None)
        exit_code = getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if isinstance(exit_code, int):  # Exit(n)
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise
    # With standalone_mode=False, click returns the exit code instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


app = None  # built on demand by main(); tests call build_app()
