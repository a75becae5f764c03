"""The typer app shared by the command modules, and the error-to-exit-code mapping."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..errors import EdgeserError

__all__ = ["app", "console", "err_console", "handle_errors", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="edgeser",
    help="Speech emotion recognition (arousal, dominance, valence) on edge devices: "
    "distil, quantise, check drift, bundle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn edgeser errors into one red line on stderr and their exit code; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeserError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"edgeser {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.",
                                 callback=_version_callback, is_eager=True),
) -> None:
    """edgeser command line."""
    del version
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
