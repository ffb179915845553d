"""A fingerprint database: a `Store` of songs, its FAISS index, and the model that made both.

The model is part of the database: its checkpoint is copied in at creation and its weights id
recorded, and every later add or search must use a model with the same id (`ModelMismatch`).
Songs are identified by a hash of their decoded audio, so the same song under another path
or in another container is stored once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from fpkit.audio import AudioError, find_audio_files
from fpkit.config import Config, IndexConfig, InferenceConfig, run_overrides
from fpkit.db.index import check_index_config, read_index, update_index
from fpkit.db.rescore import Fingerprints, keep_rows_as
from fpkit.db.store import MANIFEST, FileRecord, Salvage, Store, StoreError, read_manifest
from fpkit.db.workers import fingerprint_files
from fpkit.fingerprint import Song, fingerprint_song
from fpkit.heap import release_free_memory
from fpkit.model import CheckpointError, LoadedModel, load_model
from fpkit.progress import SILENT, Progress

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 60.0  # an interrupted add keeps the songs stored up to its last commit


class DatabaseError(StoreError):
    """A database that cannot be used as asked; the message names the folder."""


class ModelMismatch(DatabaseError):
    """A model other than the one the database was built with."""


@dataclass(frozen=True)
class Skipped:
    path: str
    stored_as: str  # the stored song with the same content


@dataclass(frozen=True)
class Failed:
    path: str
    reason: str  # one line, naming the file


@dataclass(frozen=True)
class BuiltWith:
    """The model a database names in its manifest."""

    path: Path  # its copy of the checkpoint
    model_id: str


@dataclass(frozen=True)
class RepairReport:
    problems: list[str]  # what the check found, one line each naming the file; empty when nothing was wrong
    lost: list[str]  # paths of the songs no longer stored (index them again)
    unreadable: int  # songs dropped whose record could not be read, so whose paths are unknown
    rows_cut: int  # fingerprint rows dropped with all of them
    index_dropped: bool  # the index was damaged or out of date: the next index update rebuilds it from the store
    model_restored: bool  # the database's copy of its model was missing or unreadable and is copied in again


@dataclass(frozen=True)
class OpenedDatabase:
    """A database, its model and the run's settings (`Database.open_for`); closes the database on exit."""

    db: Database
    model: LoadedModel
    config: Config  # the model's config with the run's overrides
    repaired: RepairReport | None = None  # what `repair=True` found and did

    def __enter__(self) -> OpenedDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()


@dataclass
class AddReport:
    stored: list[FileRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.count for r in self.stored)


class Database:
    """Open with `Database.open_for` (as the commands do), `Database.open`, `Database.create` or
    `Database.open_or_create`; close when done.
    """

    def __init__(self, store: Store) -> None:
        self._store = store  # private: everything outside fpkit.db goes through the methods below

    @classmethod
    def create(cls, root: str | Path, model: LoadedModel) -> Database:
        """A new empty database in `root` (writable), holding a copy of `model`'s checkpoint."""
        store = Store.create(root, model.path, model.model_id, model.config.audio, model.model.dims.emb_dim)
        return cls(store)

    @classmethod
    def open(cls, root: str | Path, writable: bool = False) -> Database:
        """Open an existing database; raises `DatabaseError` in one line when its check fails.

        Opening for writing also reads the index, so nothing is added to a database whose
        index could not be extended afterwards.
        """
        try:
            db = cls(Store.open(root, writable))
        except StoreError as err:
            raise DatabaseError(str(err)) from None
        meta = db._store.index_meta
        if writable and meta is not None:
            try:
                read_index(db.root, meta)
            except StoreError as err:
                db.close()
                raise DatabaseError(str(err)) from None
        return db

    @classmethod
    def open_for(
        cls,
        root: str | Path,
        model: str | Path | None,
        device: str | torch.device = "cpu",
        writable: bool = False,
        overrides: list[str] | None = None,
        rebuild: bool = False,
        repair: bool = False,
    ) -> OpenedDatabase:
        """The database in `root`, the model to use with it and the run's settings: the one place that decides.

        The model is `model` (a checkpoint file) when given, which must be the model the database
        was built with (`ModelMismatch`), else the database's own copy. The settings are the
        model's config with the run's `overrides` (`fpkit.config.run_overrides`).

        Writable, a missing database is created with `model` (default: the shipped one) and the
        index settings are checked against the model as well; nothing is created or committed
        before every check has passed. `rebuild` starts the database over; `repair` first keeps
        what is intact of a damaged one (`Database.repair`, reported in `repaired`). Both imply
        writable and find the model of a damaged database from its manifest alone. Raises
        `DatabaseError`, `CheckpointError` or `ConfigError` in one line.
        """
        root = Path(root)
        writable = writable or rebuild or repair
        if repair or (rebuild and cls.exists(root)):
            loaded = load_model(model, device) if model is not None else cls._model_named_in(root, device)
            config = _run_config(loaded, overrides, writable)
            if repair:
                report = cls.repair(root, loaded)
                return OpenedDatabase(cls.open(root, writable=True), loaded, config, report)
            return OpenedDatabase(cls.open_or_create(root, loaded, rebuild=True), loaded, config)
        if writable and not cls.exists(root):
            loaded = load_model(model, device)
            config = _run_config(loaded, overrides, writable)
            return OpenedDatabase(cls.create(root, loaded), loaded, config)
        db = cls.open(root, writable)
        try:
            if model is None:
                loaded = db.load_model(device)
            else:
                loaded = load_model(model, device)
                db.check_model(loaded)
            config = _run_config(loaded, overrides, writable)
        except BaseException:
            db.close()
            raise
        return OpenedDatabase(db, loaded, config)

    @classmethod
    def _model_named_in(cls, root: Path, device: str | torch.device) -> LoadedModel:
        """The database's copy of its model, found from its manifest alone (its other files may be damaged)."""
        built_with = cls.built_with(root)
        try:
            return load_model(built_with.path, device)
        except CheckpointError as err:
            raise DatabaseError(
                f"{err}; pass --model CHECKPOINT, the model {root} was built with (id {built_with.model_id})"
            ) from None

    @classmethod
    def open_or_create(cls, root: str | Path, model: LoadedModel, rebuild: bool = False) -> Database:
        """Open `root` for writing, checking `model`, or create it; `rebuild` forgets its songs.

        A rebuild takes effect at the next commit, so the old contents survive an interruption;
        it works on a damaged database too (its model copy is restored from `model`).
        """
        if not cls.exists(root):
            return cls.create(root, model)
        if rebuild:
            salvage, _ = cls._salvage(root, model, keep_songs=False)
            return cls(salvage.store)
        db = cls.open(root, writable=True)
        try:
            db.check_model(model)
        except ModelMismatch:
            db.close()
            raise
        return db

    @classmethod
    def repair(cls, root: str | Path, model: LoadedModel) -> RepairReport:
        """Check `root` and keep what is intact, without decoding any audio; commits the result.

        Songs whose table line or fingerprint rows are damaged are dropped (the report names
        them); a damaged or out-of-date index is dropped for the next `update_index` to rebuild
        from the stored fingerprints; a missing or unreadable model copy is replaced by `model`,
        which must be the model the database was built with.
        """
        salvage, model_restored = cls._salvage(root, model, keep_songs=True)
        problems, dropped = list(salvage.problems), salvage.index_dropped
        if model_restored and not salvage.model_missing:
            problems.append(f"{salvage.store.model_path}: unreadable, or not model {model.model_id}")
        with cls(salvage.store) as db:
            meta = db._store.index_meta
            if meta is not None:
                try:
                    read_index(db.root, meta)
                except StoreError as err:
                    problems.append(str(err).split("; run ")[0])
                    db._store.set_index(None)
                    dropped = True
            db._store.commit()
        return RepairReport(problems, salvage.lost, salvage.unreadable, salvage.rows_cut, dropped, model_restored)

    @classmethod
    def _salvage(cls, root: str | Path, model: LoadedModel, keep_songs: bool) -> tuple[Salvage, bool]:
        """`Store.salvage` of `root` for `model`, whose id must match; and whether its model copy was restored."""
        try:
            salvage = Store.salvage(root, keep_songs)
        except StoreError as err:
            raise DatabaseError(str(err)) from None
        db = cls(salvage.store)
        try:
            db.check_model(model)
            restore = salvage.model_missing or not _holds_model(db._store.model_path, model)
            if restore:
                db._store.restore_model(model.path)
        except BaseException:
            db.close()
            raise
        return salvage, restore

    @staticmethod
    def exists(root: str | Path) -> bool:
        """Whether `root` holds a database (its manifest), sound or damaged."""
        return (Path(root) / MANIFEST).exists()

    @staticmethod
    def built_with(root: str | Path) -> BuiltWith:
        """The model a database names, read from its manifest alone (also when its files are damaged)."""
        try:
            manifest = read_manifest(Path(root))
        except StoreError as err:
            raise DatabaseError(str(err)) from None
        return BuiltWith(Path(root) / manifest["model_file"], manifest["model_id"])

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self._store.root

    @property
    def model_id(self) -> str:
        return self._store.model_id

    @property
    def songs(self) -> list[FileRecord]:
        return self._store.files

    @property
    def rows(self) -> int:
        return self._store.rows

    @property
    def indexed_rows(self) -> int:
        meta = self._store.index_meta
        return int(meta["rows"]) if meta else 0

    @property
    def kept_as(self) -> str:
        """How the fingerprints are kept for re-scoring (`index.rescore`): "float16" or codes such as "opq32"."""
        return self._store.kept_as

    @property
    def index_factory(self) -> str:
        """The FAISS factory string of the index; "" before there is one."""
        meta = self._store.index_meta
        return str(meta["factory"]) if meta else ""

    @property
    def model_path(self) -> Path:
        """The database's copy of its model's checkpoint."""
        return self._store.model_path

    @property
    def vectors(self) -> Fingerprints:
        """Every stored fingerprint (rows, d), read (and decoded) as indexed; row ids are the index's ids."""
        return self._store.vectors

    @property
    def rescore(self) -> str:
        """The `index.rescore` this database keeps its rows as once it can (codes from `TRAIN_ROWS` rows on)."""
        return self._store.rescore

    def song_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """First row (S,) and row count (S,) of every song, in the order of `songs` (first rows ascend)."""
        return self._store.song_bounds()

    def check_model(self, model: LoadedModel) -> None:
        if model.model_id != self.model_id:
            raise ModelMismatch(
                f"{self.root}: built with model {self.model_id}, but {model.path} is model {model.model_id}"
            )

    def load_model(self, device: str | torch.device = "cpu") -> LoadedModel:
        """The database's own copy of its model."""
        try:
            loaded = load_model(self._store.model_path, device)
        except CheckpointError as err:
            raise DatabaseError(
                f"{err}; run fpkit index --db {self.root} --repair --model CHECKPOINT "
                f"(the model it was built with, id {self.model_id})"
            ) from None
        self.check_model(loaded)
        return loaded

    def load_index(self) -> faiss.Index:
        meta = self._store.index_meta
        if self.rows == 0:
            raise DatabaseError(f"{self.root}: holds no songs yet (add some with fpkit index SONGS --db {self.root})")
        if meta is None:
            raise DatabaseError(f"{self.root}: has no index yet (run fpkit index --db {self.root})")
        if meta["rows"] < self.rows:
            log.warning("%s: %d stored rows are not indexed yet; run fpkit index", self.root, self.rows - meta["rows"])
        try:
            return read_index(self.root, meta)
        except StoreError as err:
            raise DatabaseError(str(err)) from None

    def commit(self) -> None:
        """Make every song added so far durable (adds commit on their own every minute and at the end).

        After an interruption: every song appended before it is whole, so committing keeps them.
        """
        self._store.commit()

    def add_files(
        self,
        paths: Iterable[str | Path],
        model: LoadedModel,
        inference: InferenceConfig | None = None,
        progress: Progress | None = None,
    ) -> AddReport:
        """Fingerprint and store every audio file under `paths` (files or folders), then commit.

        `inference` (segments per model call, precision) defaults to the model's own. Unchanged
        paths and already-stored content are skipped; unreadable files are reported in
        `AddReport.failed` and do not stop the run. Commits every `COMMIT_EVERY_S` seconds.
        `progress` counts the files, in one phase ("fingerprinting").
        """
        self.check_model(model)
        if inference is None:
            inference = model.config.inference
        model.model.set_precision(inference.precision)
        progress = progress or SILENT
        audio = model.config.audio
        report = AddReport()
        last_commit = time.monotonic()
        todo = self.pending(paths, report, progress)

        def fingerprint(path: Path, blocks: Iterator[np.ndarray]) -> Song:
            return fingerprint_song(blocks, str(path), model.model, audio, inference.batch_size)

        songs = fingerprint_files([path for path, _ in todo], audio.sample_rate, fingerprint, torch.get_num_threads())
        for (path, stat), (_, song) in zip(todo, songs, strict=True):
            if isinstance(song, AudioError):
                report.failed.append(Failed(str(path), str(song)))
            else:
                self.store_song(path, stat, song, report)
            release_free_memory()  # a long run's memory stays flat instead of creeping up song by song
            progress.advance()
            if time.monotonic() - last_commit > COMMIT_EVERY_S:
                self._store.commit()
                last_commit = time.monotonic()
        self._store.commit()
        return report

    def pending(
        self, paths: Iterable[str | Path], report: AddReport, progress: Progress
    ) -> list[tuple[Path, os.stat_result]]:
        """The audio files under `paths` still to fingerprint, as absolute paths with their `stat`.

        Starts the "fingerprinting" phase of `progress` over all the files, and counts at once
        those stored with the same size and modification time (in `report.skipped`) and those
        that cannot be read (in `report.failed`).
        """
        files = find_audio_files(list(paths))
        progress.start("fingerprinting", len(files))
        todo: list[tuple[Path, os.stat_result]] = []
        for path in files:
            absolute = Path(os.path.abspath(path))
            try:
                stat = absolute.stat()
            except OSError as err:
                report.failed.append(Failed(str(absolute), f"{path}: cannot read ({err.strerror})"))
                progress.advance()
                continue
            known = self._store.find_unchanged(str(absolute), stat.st_size, stat.st_mtime_ns)
            if known is not None:
                report.skipped.append(Skipped(str(absolute), known.path))
                progress.advance()
            else:
                todo.append((absolute, stat))
        return todo

    def store_song(self, path: Path, stat: os.stat_result, song: Song, report: AddReport) -> None:
        """Store a fingerprinted file (not committed) unless a stored song has the same content."""
        same = self._store.find_content(song.sha)
        if same is not None:
            report.skipped.append(Skipped(str(path), same.path))
            return
        report.stored.append(
            self._store.append(str(path), song.duration_s, song.sha, stat.st_size, stat.st_mtime_ns, song.prints)
        )

    def add_databases(self, others: Iterable[Database], progress: Progress | None = None) -> AddReport:
        """Copy the songs of other databases or `fpkit generate` outputs made with the same model.

        `progress` counts their songs, in one phase ("merging").
        """
        others = list(others)
        progress = progress or SILENT
        progress.start("merging", sum(len(other.songs) for other in others))
        report = AddReport()
        for other in others:
            if other.model_id != self.model_id:
                raise ModelMismatch(
                    f"{other.root}: made with model {other.model_id}, this database uses {self.model_id}"
                )
            for record in other.songs:
                same = self._store.find_content(record.sha)
                if same is not None:
                    report.skipped.append(Skipped(record.path, same.path))
                else:
                    prints = other._store.read_rows(record.first_row, record.first_row + record.count)
                    report.stored.append(
                        self._store.append(
                            record.path, record.duration_s, record.sha, record.size, record.mtime_ns, prints
                        )
                    )
                progress.advance()
        self._store.commit()
        return report

    def update_index(self, config: IndexConfig, progress: Progress | None = None) -> None:
        """Index every stored row (see `fpkit.db.index.update_index`), keep rows as `config.rescore` asks, and commit.

        `progress` counts the rows indexed, in one phase ("indexing"), when there are any to index.
        """
        self._store.set_index(update_index(self._store, config, progress or SILENT))
        keep_rows_as(self._store, config.rescore)  # after indexing: a new index is built from float16 rows
        self._store.commit()


def _run_config(model: LoadedModel, overrides: list[str] | None, writable: bool) -> Config:
    """The model's config with the run's overrides; for a writable database, its index settings are checked too."""
    config = run_overrides(model.config, overrides)
    if writable:
        check_index_config(config.index, model.model.dims.emb_dim)
    return config


def _holds_model(path: Path, model: LoadedModel) -> bool:
    """Whether the checkpoint at `path` loads as `model` (same weights id)."""
    if Path(model.path).resolve() == path.resolve():
        return True  # `model` was just loaded from it
    try:
        return load_model(path).model_id == model.model_id
    except CheckpointError:
        return False
