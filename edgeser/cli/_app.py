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
from typer.core import TyperGroup, TyperOption

from ..errors import EdgeserError
from ..runtime.pipes import EXIT_STDOUT_CLOSED, silence_stdout

__all__ = ["app", "console", "err_console", "handle_errors", "COMMAND_ORDER", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__
                    if c.__name__ == "UsageError" and issubclass(c, Exception))
"""The parser's usage errors (a value outside an option's range, an unknown option, a missing argument)."""


COMMAND_ORDER = ("build", "predict", "verify", "live", "label", "distill", "evaluate", "drift")
"""Commands in the order a user meets them, as ``edgeser --help`` lists them (any other command follows)."""
HELP_MAX_WIDTH = 100
"""Widest help text, in columns, however wide the terminal."""
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "bool": "BOOLEAN"}


def _metavar(label: str) -> str:
    """A value's placeholder in help, in click's style: ``<int range>`` -> ``INTEGER``, ``<a|b>`` -> ``[a|b]``."""
    label = label.strip("<>").removesuffix(" range")
    if label.lower().startswith("list[") and label.endswith("]"):  # a repeatable option: one value per use
        label = label[5:-1]
    if "|" in label:
        return f"[{label}]"
    return " ".join(_TYPE_NAMES.get(part.strip().lower(), part.strip().upper()) for part in label.split(","))


def _tidy(params: list[Any], ctx: Any) -> None:
    """Give every option that takes a value a clean placeholder (flags show none)."""
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None and not (param.is_flag or param.count):
            param.metavar = _metavar(param.display_type(ctx))


class _OneLineUsageErrors(TyperGroup):
    """The command group: a usage error (of ``edgeser`` or of a command) is one line on stderr, exit code 2.

    Its help lists the commands in :data:`COMMAND_ORDER` with their whole first paragraph, and every option
    with a clean placeholder.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in COMMAND_ORDER if n in names] + [n for n in names if n not in COMMAND_ORDER]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _tidy(cmd.params, ctx)
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy(self.params, ctx)
        super().format_help(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each command with its docstring's first paragraph, wrapped (click would cut it with '...')."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, " ".join((cmd.help or "").strip().split("\n\n")[0].split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: option names never cut, flags without a type placeholder
    context_settings={"max_content_width": HELP_MAX_WIDTH},
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
