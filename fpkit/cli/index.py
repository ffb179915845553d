"""`fpkit index`: fingerprint audio files (or merge fingerprint folders) into a searchable database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fpkit.cli.common import err_console, fail
from fpkit.cli.dbopts import (
    DbOption,
    DeviceOption,
    ModelOption,
    SetOption,
    add_with_progress,
    device_or_fail,
    expand_paths,
    index_with_progress,
    model_or_fail,
    report_and_exit,
    run_config,
)
from fpkit.db import AddReport, Database, DatabaseError


def index(
    paths: Annotated[list[str] | None, typer.Argument(help="Audio files or folders; - reads paths from stdin.")] = None,
    db: DbOption = Path("fpkit-db"),
    model: ModelOption = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Start the database over.")] = False,
    merge: Annotated[
        list[Path] | None,
        typer.Option(
            "--merge", file_okay=False, help="Add the songs of an `fpkit generate` folder or database (repeatable)."
        ),
    ] = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """Add audio files to a fingerprint database and index them; songs already stored are skipped.

    Big collections: run `fpkit generate PART --out parts/N` in many processes, then
    `fpkit index --db DB --merge parts/1 --merge parts/2 ... --set index.on_disk=true`.
    """
    sources = expand_paths(paths or [])
    if not sources and not merge and not rebuild:
        fail("nothing to index: give audio paths, - for stdin, or --merge FOLDER")
    existing = (db / "manifest.json").exists()
    dev = device_or_fail(device)
    if model is not None or not existing:
        loaded = model_or_fail(model if model is not None or not merge else _part_model(merge[0]), dev)
    else:
        try:
            with Database.open(db) as current:
                loaded = current.load_model(dev)
        except DatabaseError as err:
            fail(str(err))
    config = run_config(loaded, overrides, dev)
    try:
        database = Database.open_or_create(db, loaded, rebuild=rebuild)
    except DatabaseError as err:
        fail(str(err))
    with database:
        report = AddReport()
        if merge:
            report = _merge(database, merge)
        if sources:
            added = add_with_progress(database, sources, loaded, config.index.batch_size)
            report.stored += added.stored
            report.skipped += added.skipped
            report.failed += added.failed
        index_with_progress(database, config.index)
        report_and_exit(report, database)


def _part_model(part: Path) -> Path:
    try:
        with Database.open(part) as source:
            return source.store.model_path
    except DatabaseError as err:
        fail(str(err))


def _merge(database: Database, parts: list[Path]) -> AddReport:
    try:
        sources = [Database.open(part) for part in parts]
    except DatabaseError as err:
        fail(str(err))
    try:
        report = database.add_databases(sources)
    except DatabaseError as err:
        fail(str(err))
    finally:
        for source in sources:
            source.close()
    err_console.print(f"merged {len(parts)} folders: {len(report.stored)} songs added", soft_wrap=True)
    return report
