"""What every command shares: the stderr console, failing with one line, config options."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

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


def setup_logging(quiet: bool) -> None:
    """Library log lines (fpkit.*) go to the stderr console: INFO and up, or WARNING with --quiet."""
    logger = logging.getLogger("fpkit")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=code)


def resolve_config(path: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(path, overrides)
    except ConfigError as err:
        fail(str(err))
