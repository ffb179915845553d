"""What every command shares: the stderr console, failing with one line, config options."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from typer._click import Context, Parameter  # the click that typer carries
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from fpkit.errors import FpkitError
from fpkit.interrupt import stop_on_signals

if TYPE_CHECKING:
    from fpkit.config import Config

INTERRUPTED = 130  # exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)

P = ParamSpec("P")

# Results go to stdout; everything meant for people (progress, logs, errors) goes here. Lines are
# never wrapped by rich: a terminal wraps them at its own width, and a log file keeps them whole.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (defaults: the paper's settings).", dir_okay=False),
]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Dotted override, e.g. --set model.emb_dim=64 (repeatable).", metavar="KEY=VALUE"),
]


class Command(TyperCommand):
    """A command whose --help speaks to people: `--out DIR`, `--top-k N`, a bare `--resume`.

    Typer would show Python types (`<bool>` after every flag, `<list[Path]>`, `<int range>`).
    """

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _readable(super().get_params(ctx), ctx)


class Group(TyperGroup):
    """The `fpkit` command itself, whose options (`--quiet`, `--version`) read like a `Command`'s."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _readable(super().get_params(ctx), ctx)


def _readable(params: list[Parameter], ctx: Context) -> list[Parameter]:
    for param in params:
        if isinstance(param, TyperArgument):
            param.metavar = param.metavar or (param.name or "").upper()
            param.display_type_rich = _no_type  # type: ignore[method-assign]  # the name says it
        elif isinstance(param, TyperOption) and param.metavar is None:
            label = re.sub(r"^list\[(.*)\]$", r"\1", param.display_type(ctx).strip("<>"))
            param.metavar = "" if param.is_flag else _METAVARS.get(label.lower(), label)
    return params


_METAVARS = {
    "file": "FILE",
    "dir": "DIR",
    "path": "PATH",
    "int": "N",
    "int range": "N",
    "float": "NUMBER",
    "str": "TEXT",
}


def _no_type(ctx: Context) -> None:
    return None


def setup_logging(quiet: bool) -> None:
    """Library log lines (fpkit.*) go to stderr: INFO and up, or WARNING with --quiet (and no progress).

    On a terminal through rich; elsewhere as plain `LEVEL message` lines, whole, for log files.
    """
    RichBars.shown = not quiet
    logger = logging.getLogger("fpkit")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(h.get_name() == "fpkit-cli" for h in logger.handlers):
        handler: logging.Handler
        if err_console.is_terminal:
            handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.set_name("fpkit-cli")  # a second call (another command in the same process) adds none
        logger.addHandler(handler)
        logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to the stderr of the moment (a test runner swaps it), through the console's file."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = err_console.file
        super().emit(record)


def interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """A long command: SIGINT and SIGTERM stop it alike (`fpkit.interrupt`), with exit status 130.

    The command says what it kept (`fail(..., code=INTERRUPTED)`); anywhere it does not, the
    interruption is still one line.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with stop_on_signals():
            try:
                command(*args, **kwargs)
            except KeyboardInterrupt:
                fail("interrupted", code=INTERRUPTED)

    return run


def one_line_errors(command: Callable[P, None]) -> Callable[P, None]:
    """The CLI's one handler: any `FpkitError` a command does not deal with itself is one `error:` line, exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except FpkitError as err:
            fail(str(err))

    return run


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=code)


def resolve_config(path: Path | None, overrides: list[str] | None) -> Config:
    from fpkit.config import ConfigError, load_config

    try:
        return load_config(path, overrides)
    except ConfigError as err:
        fail(str(err))


class RichBars:
    """The one progress renderer (`fpkit.progress.Progress`) on stderr: a bar per phase on a
    terminal, else a line per tenth of each phase whose total is known.

    The bars start with the first phase, so an error found before any work stays one line. What
    a command prints to stdout while they run goes to stdout's file, above the bars when that is
    the terminal too. With `--quiet` (`shown` False) it draws nothing.
    """

    shown = True

    def __init__(self) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(),
        )
        # Rich would send stdout through its console, which is stderr: only where both are the terminal.
        self.progress = RichProgress(*columns, console=err_console, transient=True, redirect_stdout=sys.stdout.isatty())
        self.live = err_console.is_terminal
        self.task: TaskID | None = None
        self.phase, self.done, self.next_line = "", 0.0, 0.0
        self.total: float | None = None

    def start(self, phase: str, total: float | None) -> None:
        if not self.shown:
            return
        if self.live:
            if self.task is None:
                self.progress.start()
            self.task = self.progress.add_task(phase, total=total, note="")
        self.phase, self.total, self.done = phase, total, 0.0
        self.next_line = total / 10 if total else 0.0

    def advance(self, steps: float = 1, note: str = "") -> None:
        if not self.shown:
            return
        self.done += steps
        if self.live and self.task is not None:
            self.progress.update(self.task, advance=steps, note=note)
        elif not self.live and self.total and self.done >= self.next_line:
            err_console.print(f"{self.phase}: {self.done:.0f}/{self.total:.0f}" + (f" {note}" if note else ""))
            self.next_line = self.done + self.total / 10

    def __enter__(self) -> RichBars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()
