"""The `fpkit` command: a Typer app with one thin module per subcommand."""

from __future__ import annotations

from typing import Annotated

import typer

from fpkit import __version__
from fpkit.cli.common import Command, Group, interruptible, one_line_errors, setup_logging
from fpkit.cli.eval import eval_command
from fpkit.cli.export import export
from fpkit.cli.generate import generate
from fpkit.cli.index import index
from fpkit.cli.info import info
from fpkit.cli.monitor import monitor
from fpkit.cli.search import search
from fpkit.cli.train import train

app = typer.Typer(
    name="fpkit",
    cls=Group,
    help="Neural audio fingerprinting: train, generate, index, search, monitor and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info", cls=Command)(one_line_errors(info))
app.command("eval", cls=Command)(one_line_errors(interruptible(eval_command)))
app.command("export", cls=Command)(one_line_errors(export))
app.command("generate", cls=Command)(one_line_errors(interruptible(generate)))
app.command("index", cls=Command)(one_line_errors(interruptible(index)))
app.command("search", cls=Command)(one_line_errors(interruptible(search)))
app.command("monitor", cls=Command)(one_line_errors(interruptible(monitor)))
app.command("train", cls=Command)(one_line_errors(interruptible(train)))


def _version(value: bool) -> None:
    if value:
        print(f"fpkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr: no progress or log lines.")
    ] = False,
) -> None:
    """Neural audio fingerprinting: train, generate, index, search, monitor and evaluate."""
    setup_logging(quiet)


def main() -> None:
    app()
