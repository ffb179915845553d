"""`fpkit index`: fingerprint audio files (or merge fingerprint folders) into a searchable database."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fpkit.cli.common import RichBars, err_console, fail
from fpkit.cli.dbopts import (
    DbOption,
    DeviceOption,
    ModelOption,
    SetOption,
    add_with_progress,
    audio_files_or_fail,
    device_or_fail,
    expand_paths,
    index_with_progress,
    interrupted_adding,
    report_and_exit,
)

if TYPE_CHECKING:
    from fpkit.db import AddReport, Database, RepairReport


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
    from fpkit.db import AddReport, Database

    sources = expand_paths(paths or [])
    existing = Database.exists(db)
    if not sources and not merge and not rebuild and not existing:
        fail(f"nothing to index: {db} holds no database yet; give audio paths, - for stdin, or --merge FOLDER")
    if rebuild and repair:
        fail("--rebuild starts over, --repair keeps what is intact: give one of them")
    files = audio_files_or_fail(sources) if sources else []
    dev = device_or_fail(device)
    if model is None and merge and not existing:
        model = _part_model(merge[0])  # a database made of parts holds their model
    # Errors (a damaged database, another model, a refused --set): one line, by the app's handler.
    opening = Database.open_for(db, model, dev, writable=True, overrides=overrides, rebuild=rebuild, repair=repair)
    with opening as opened:
        if opened.repaired is not None:
            _show_repair(db, opened.repaired, opened.model.path)
        database = opened.db
        report = AddReport()
        if merge:
            report = _merge(database, merge)
        if files:
            added = add_with_progress(database, files, opened.model, opened.config.inference)
            report.stored += added.stored
            report.skipped += added.skipped
            report.failed += added.failed
        index_with_progress(database, opened.config.index)
        report_and_exit(report, database)


def _show_repair(db: Path, report: RepairReport, model_path: str) -> None:
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
        done.append(f"restored its model from {model_path}")
    if report.index_dropped:
        done.append("the index is rebuilt from the stored fingerprints")
    err_console.print(f"repaired {db}: " + ("; ".join(done) or "nothing was lost"), soft_wrap=True)


def _part_model(part: Path) -> Path:
    from fpkit.db import Database

    with Database.open(part) as source:
        return source.model_path


def _merge(database: Database, parts: list[Path]) -> AddReport:
    from fpkit.db import Database

    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(Database.open(part)) for part in parts]
        try:
            with RichBars() as bars:
                report = database.add_databases(sources, bars)
        except KeyboardInterrupt:
            interrupted_adding(database)
    err_console.print(f"merged {len(parts)} folders: {len(report.stored)} songs added", soft_wrap=True)
    return report
