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
    model_or_fail,
    report_and_exit,
    run_config,
    with_overrides,
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

    from fpkit.db import Database, DatabaseError

    files = audio_files_or_fail(expand_paths(paths))
    if model is None and (out / "manifest.json").exists():  # resuming: the folder's own model
        try:
            model = Database.built_with(out).path
        except DatabaseError as err:
            fail(str(err))
    add: AddFiles = Database.add_files
    if engine is Engine.ray:
        loaded = model_or_fail(model, torch.device("cpu"))  # the driver only stores: the actors fingerprint
        config = with_overrides(loaded.config, overrides)
        add = _ray_engine(device, config.index.precision)
    else:
        dev = device_or_fail(device)
        loaded = model_or_fail(model, dev)
        config = run_config(loaded, overrides, dev)
    try:
        db = Database.open_or_create(out, loaded)
    except DatabaseError as err:
        fail(str(err))
    with db:
        try:
            report = add_with_progress(db, files, loaded, config.index.batch_size, add)
        except DatabaseError as err:  # an engine that failed as a whole, having committed what it stored
            fail(str(err))
        report_and_exit(report, db)


def _ray_engine(device: str, precision: str) -> AddFiles:
    from fpkit.device import DeviceError

    try:
        from fpkit.ray_engine import RayEngine  # imported here: Ray is an optional extra
    except ImportError as err:
        fail(escape(f"--engine ray needs Ray Data ({err}); install it with: pip install 'fpkit[ray]'"))
    try:
        return RayEngine(device, precision).add_files
    except DeviceError as err:
        fail(str(err))
