"""`fpkit generate`: fingerprint audio files into a store folder, without an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fpkit.cli.common import fail
from fpkit.cli.dbopts import (
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
)


def generate(
    paths: Annotated[list[str], typer.Argument(help="Audio files or folders; - reads paths from stdin.")],
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Output folder (created or resumed).")],
    model: OutModelOption = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """Fingerprint every 1 s segment (0.5 s hop) of every audio file under PATHS into OUT.

    OUT holds float16 fingerprints, a table of files and a copy of the model; running again
    resumes, skipping files already there. `fpkit index --merge OUT` adds it to a database.
    """
    from fpkit.db import Database, DatabaseError

    files = audio_files_or_fail(expand_paths(paths))
    if model is None and (out / "manifest.json").exists():  # resuming: the folder's own model
        try:
            model = Database.built_with(out).path
        except DatabaseError as err:
            fail(str(err))
    dev = device_or_fail(device)
    loaded = model_or_fail(model, dev)
    config = run_config(loaded, overrides, dev)
    try:
        db = Database.open_or_create(out, loaded)
    except DatabaseError as err:
        fail(str(err))
    with db:
        report = add_with_progress(db, files, loaded, config.index.batch_size)
        report_and_exit(report, db)
