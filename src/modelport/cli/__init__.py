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
        app(args=argv, prog_name="modelport", standalone_mode=False)
    except ModelportError as exc:
        print_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


app = None  # built on demand by main(); tests call build_app()
