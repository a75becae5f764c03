"""The typer app shared by the command modules, and the error-to-exit-code mapping."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import EdgeserError
from ..runtime.pipes import EXIT_STDOUT_CLOSED, silence_stdout

__all__ = ["app", "console", "err_console", "handle_errors", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
"""The parser's usage errors (a value outside an option's range, an unknown option, a missing argument)."""


class _OneLineUsageErrors(TyperGroup):
    """The command group: a usage error (of ``edgeser`` or of a command) is one line on stderr, exit code 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _USAGE_ERROR as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _USAGE_ERROR as exc:
            raise _one_line(exc) from None


def _one_line(exc: Any) -> BaseException:
    """Print a usage error as one line (``error: ... (see 'edgeser live --help')``); the exception to raise."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `edgeser` alone shows the help
        return exc  # type: ignore[no-any-return]
    where = getattr(exc, "ctx", None)
    hint = f" (see '{where.command_path} --help')" if where is not None else ""
    err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}{escape(hint)}", highlight=False,
                      soft_wrap=True)
    return typer.Exit(code=exc.exit_code)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="edgeser",
    help="Speech emotion recognition (arousal, dominance, valence) on edge devices: "
    "distil, quantise, check drift, bundle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Console(Console):
    """A rich console that lets a closed pipe reach :func:`handle_errors` (rich would exit with status 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "output closed by its reader")


console = _Console()
err_console = _Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn edgeser errors into one red line on stderr and their exit code; Ctrl-C into 130.

    A closed standard output (``edgeser predict ... | head -1``) ends the command quietly with exit code 0:
    the reader asked for no more.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeserError as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(code=EXIT_STDOUT_CLOSED) from None

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
