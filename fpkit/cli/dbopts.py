"""What the database commands (generate, index, search, monitor) share: options, path lists, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from fpkit.cli.common import INTERRUPTED, RichBars, err_console, fail

if TYPE_CHECKING:  # the library is imported by the functions that use it: `fpkit --help` stays instant
    import torch

    from fpkit.config import Config, IndexConfig, InferenceConfig, SearchConfig
    from fpkit.db import AddReport, Database
    from fpkit.model import LoadedModel
    from fpkit.progress import Progress

# An engine: fingerprints `files` into the database as `Database.add_files` does.
AddFiles = Callable[["Database", list[Path], "LoadedModel", "InferenceConfig", "Progress"], "AddReport"]
SOME_FAILED = 3  # exit code: the run finished, but some inputs could not be read

DbOption = Annotated[
    Path,
    typer.Option(
        "--db", envvar="FPKIT_DB", metavar="DIR", help="Database folder (default: $FPKIT_DB, else ./fpkit-db)."
    ),
]
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model", "-m", dir_okay=False, help="Model checkpoint (default: the database's, else the shipped one)."
    ),
]
OutModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model", "-m", dir_okay=False, help="Model checkpoint (default: OUT's own when resuming, else the shipped)."
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a setting of the model's config, e.g. --set inference.batch_size=64 (repeatable).",
        metavar="KEY=VALUE",
    ),
]
SearchSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a setting of the model's config, e.g. --set search.nprobe=64 (repeatable).",
        metavar="KEY=VALUE",
    ),
]


def expand_paths(args: list[str]) -> list[str]:
    """The arguments, with `-` replaced by the non-empty lines of stdin."""
    paths: list[str] = []
    for arg in args:
        if arg == "-":
            paths.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            paths.append(arg)
    return paths


def device_or_fail(name: str) -> torch.device:
    from fpkit.device import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as err:
        fail(str(err))


def audio_files_or_fail(sources: list[str]) -> list[Path]:
    """The audio files under `sources`; one line and exit 1 when there are none at all."""
    from fpkit.audio import find_audio_files

    if not sources:
        fail("no audio paths given (- read no lines from stdin)")
    files: list[Path] = []
    empty: list[str] = []
    for source in sources:
        found = find_audio_files([source])
        files.extend(found)
        if not found:
            empty.append(source)
    if not files:
        fail(f"{', '.join(empty)}: no audio files found")
    for source in empty:
        err_console.print(f"[yellow]warning:[/] {source}: no audio files found", soft_wrap=True)
    return files


def search_config(config: Config, top_k: int | None, threshold: float | None) -> SearchConfig:
    """The model's search settings with --top-k and --threshold, checked like --set search.…."""
    from fpkit.config import ConfigError, config_from_dict

    for option, value, changes in (
        ("--top-k", top_k, {"top_k": top_k}),
        ("--threshold", threshold, {"threshold": threshold, "threshold_by_length": []}),  # one constant, as asked
    ):
        if value is not None:
            data = config.to_dict()
            data["search"].update(changes)
            try:
                config = config_from_dict(data, f"{option} {value:g}")
            except ConfigError as err:
                fail(str(err))
    return config.search


def add_with_progress(
    db: Database, files: list[Path], model: LoadedModel, inference: InferenceConfig, add: AddFiles | None = None
) -> AddReport:
    """`add(db, files, ...)`, `Database.add_files` or another engine's, with progress on stderr.

    Ctrl-C commits the songs stored so far.
    """
    from fpkit.db import Database

    add = add or Database.add_files
    try:
        with RichBars() as bars:
            return add(db, files, model, inference, bars)
    except KeyboardInterrupt:
        interrupted_adding(db)


def interrupted_adding(db: Database) -> NoReturn:
    """After Ctrl-C or SIGTERM while adding songs: commit those stored so far (each is whole), then exit 130."""
    db.commit()
    songs = f"{len(db.songs)} song{'' if len(db.songs) == 1 else 's'}"
    fail(f"interrupted; {db.root} keeps the {songs} stored so far (run again to go on)", INTERRUPTED)


def index_with_progress(db: Database, config: IndexConfig) -> None:
    from fpkit.db.index import IndexConfigError

    try:
        with RichBars() as bars:
            db.update_index(config, bars)
    except IndexConfigError as err:  # an index setting that does not suit this database, e.g. index.pq_m
        fail(f"{db.root}: cannot build the index: {err}; its songs are stored, and indexed by the next fpkit index")
    except KeyboardInterrupt:
        fail(f"interrupted; {db.root} keeps its previous index (run again to finish)", INTERRUPTED)


def report_and_exit(report: AddReport, db: Database) -> None:
    """Summary and failures on stderr; exit `SOME_FAILED` when a file could not be stored."""
    for failed in report.failed:
        err_console.print(f"[bold red]failed:[/] {failed.reason}", soft_wrap=True)
    err_console.print(
        f"{db.root}: stored {len(report.stored)} new songs ({report.rows} segments), "
        f"skipped {len(report.skipped)} already stored, {len(report.failed)} failed; "
        f"now {len(db.songs)} songs, {db.rows} segments kept as {_kept_as(db)}",
        soft_wrap=True,
    )
    if report.failed:
        raise typer.Exit(code=SOME_FAILED)


def _kept_as(db: Database) -> str:
    """What the stored fingerprints are: "float16", "opq32 codes", or float16 until a codebook can be trained."""
    from fpkit.db.rescore import FLOAT16, TRAIN_ROWS

    if db.kept_as != FLOAT16:
        return f"{db.kept_as} codes"
    if db.rescore != FLOAT16:
        return f"float16 ({db.rescore} codes from {TRAIN_ROWS} segments on)"
    return FLOAT16
