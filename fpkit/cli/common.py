"""What every command shares: the stderr console, failing with one line, config options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from fpkit.config import Config, ConfigError, load_config

# Results go to stdout; everything meant for people (progress, logs, errors) goes here.
err_console = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (defaults: the paper's settings).", dir_okay=False),
]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Dotted override, e.g. --set model.emb_dim=64 (repeatable).", metavar="KEY=VALUE"),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=code)


def resolve_config(path: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(path, overrides)
    except ConfigError as err:
        fail(str(err))
