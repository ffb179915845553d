"""`fpkit generate`: fingerprint audio files into a store folder, without an index."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fpkit.cli.common import fail
from fpkit.cli.dbopts import (
    AddFiles,
    DeviceOption,
    OutModelOption,
    SetOption,
    add_with_progress,
    audio_files_or_fail,
    device_or_fail,
    expand_paths,
    report_and_exit,
)


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def generate(
    paths: Annotated[list[str], typer.Argument(help="Audio files or folders; - reads paths from stdin.")],
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Output folder (created or resumed).")],
    model: OutModelOption = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="local, or ray: fingerprint on the Ray cluster at $RAY_ADDRESS, else on a local Ray (docs/scale.md).",
        ),
    ] = Engine.local,
) -> None:
    """Fingerprint every 1 s segment (0.5 s hop) of every audio file under PATHS into OUT.

    OUT holds float16 fingerprints, a table of files and a copy of the model; running again
    resumes, skipping files already there. `fpkit index --merge OUT` adds it to a database.
    """
    import torch

    from fpkit.db import Database

    files = audio_files_or_fail(expand_paths(paths))
    add: AddFiles | None = None
    if engine is Engine.ray:
        add = _ray_engine(device)
        dev = torch.device("cpu")  # the driver only stores: the actors fingerprint
    else:
        dev = device_or_fail(device)
    # Errors (another model than OUT's, a refused --set, a failed engine): one line, by the app's handler.
    with Database.open_for(out, model, dev, writable=True, overrides=overrides) as opened:
        report = add_with_progress(opened.db, files, opened.model, opened.config.inference, add)
        report_and_exit(report, opened.db)


def _ray_engine(device: str) -> AddFiles:
    from fpkit.device import DeviceError

    try:
        from fpkit.ray_engine import RayEngine  # imported here: Ray is an optional extra
    except ImportError as err:
        fail(escape(f"--engine ray needs Ray Data ({err}); install it with: pip install 'fpkit[ray]'"))
    try:
        return RayEngine(device).add_files
    except DeviceError as err:
        fail(str(err))
