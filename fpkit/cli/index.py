"""`fpkit index`: fingerprint audio files (or merge fingerprint folders) into a searchable database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fpkit.cli.common import err_console, fail
from fpkit.cli.dbopts import (
    DbOption,
    DeviceOption,
    ModelOption,
    SetOption,
    add_with_progress,
    audio_files_or_fail,
    device_or_fail,
    expand_paths,
    index_config_or_fail,
    index_with_progress,
    interrupted_adding,
    model_or_fail,
    report_and_exit,
    run_config,
)

if TYPE_CHECKING:
    import torch

    from fpkit.db import AddReport, Database
    from fpkit.model import LoadedModel


def index(
    paths: Annotated[list[str] | None, typer.Argument(help="Audio files or folders; - reads paths from stdin.")] = None,
    db: DbOption = Path("fpkit-db"),
    model: ModelOption = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Start the database over.")] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Keep what is intact of a damaged database: cut off damaged songs, rebuild the index "
            "from the stored fingerprints (no audio is decoded).",
        ),
    ] = False,
    merge: Annotated[
        list[Path] | None,
        typer.Option(
            "--merge",
            file_okay=False,
            metavar="DIR",
            help="Add the songs of an `fpkit generate` folder or database (repeatable).",
        ),
    ] = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """Add audio files to a fingerprint database and index them; songs already stored are skipped.

    Without paths, brings the index of an existing database up to date.

    Big collections: run `fpkit generate PART --out parts/N` in many processes, then
    `fpkit index --db DB --merge parts/1 --merge parts/2 ... --set index.on_disk=true`.
    """
    from fpkit.db import AddReport, Database, DatabaseError

    sources = expand_paths(paths or [])
    existing = (db / "manifest.json").exists()
    if not sources and not merge and not rebuild and not existing:
        fail(f"nothing to index: {db} holds no database yet; give audio paths, - for stdin, or --merge FOLDER")
    if rebuild and repair:
        fail("--rebuild starts over, --repair keeps what is intact: give one of them")
    files = audio_files_or_fail(sources) if sources else []
    dev = device_or_fail(device)
    if (repair or rebuild) and existing:
        loaded = _model_to_repair(db, model, dev)  # the database may be damaged: its files are not read
    elif model is not None or not existing:
        loaded = model_or_fail(model if model is not None or not merge else _part_model(merge[0]), dev)
    else:
        try:
            with Database.open(db) as current:
                loaded = current.load_model(dev)
        except DatabaseError as err:
            fail(str(err))
    config = run_config(loaded, overrides, dev)
    index_config_or_fail(config.index, loaded)
    if repair:
        _repair(db, loaded)
    try:
        database = Database.open_or_create(db, loaded, rebuild=rebuild)
    except DatabaseError as err:
        fail(str(err))
    with database:
        report = AddReport()
        if merge:
            report = _merge(database, merge)
        if files:
            added = add_with_progress(database, files, loaded, config.index.batch_size)
            report.stored += added.stored
            report.skipped += added.skipped
            report.failed += added.failed
        index_with_progress(database, config.index)
        report_and_exit(report, database)


def _model_to_repair(db: Path, model: Path | None, device: torch.device) -> LoadedModel:
    """`--model`, else the database's own copy, found from its manifest alone; naming what to pass when it is lost."""
    from fpkit.db import Database, DatabaseError
    from fpkit.model import CheckpointError, load_model

    if model is not None:
        return model_or_fail(model, device)
    try:
        built_with = Database.built_with(db)
    except DatabaseError as err:
        fail(str(err))
    try:
        return load_model(built_with.path, device)
    except CheckpointError as err:
        fail(f"{err}; pass --model CHECKPOINT, the model {db} was built with (id {built_with.model_id})")


def _repair(db: Path, model: LoadedModel) -> None:
    from fpkit.db import Database, DatabaseError

    try:
        report = Database.repair(db, model)
    except DatabaseError as err:
        fail(str(err))
    if not report.problems:
        err_console.print(f"{db}: no damage found", soft_wrap=True)
        return
    for problem in report.problems:
        err_console.print(f"[yellow]found:[/] {problem}", soft_wrap=True)
    for song in report.lost:
        err_console.print(f"[yellow]dropped:[/] {song} (index it again)", soft_wrap=True)
    if report.unreadable:
        err_console.print(
            f"[yellow]dropped:[/] the songs of {report.unreadable} unreadable lines of the files table "
            "(index their folders again: stored songs are skipped unread)",
            soft_wrap=True,
        )
    dropped = len(report.lost) + report.unreadable
    done = [f"dropped {dropped} damaged songs ({report.rows_cut} fingerprint rows)"] if dropped else []
    if report.model_restored:
        done.append(f"restored its model from {model.path}")
    if report.index_dropped:
        done.append("the index is rebuilt from the stored fingerprints")
    err_console.print(f"repaired {db}: " + ("; ".join(done) or "nothing was lost"), soft_wrap=True)


def _part_model(part: Path) -> Path:
    from fpkit.db import Database, DatabaseError

    try:
        with Database.open(part) as source:
            return source.store.model_path
    except DatabaseError as err:
        fail(str(err))


def _merge(database: Database, parts: list[Path]) -> AddReport:
    from fpkit.db import Database, DatabaseError

    try:
        sources = [Database.open(part) for part in parts]
    except DatabaseError as err:
        fail(str(err))
    try:
        report = database.add_databases(sources)
    except DatabaseError as err:
        fail(str(err))
    except KeyboardInterrupt:
        interrupted_adding(database)
    finally:
        for source in sources:
            source.close()
    err_console.print(f"merged {len(parts)} folders: {len(report.stored)} songs added", soft_wrap=True)
    return report
