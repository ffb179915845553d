"""A fingerprint database: a `Store` of songs, its FAISS index, and the model that made both.

The model is part of the database: its checkpoint is copied in at creation and its weights id
recorded, and every later add or search must use a model with the same id (`ModelMismatch`).
Songs are identified by a hash of their decoded audio, so the same song under another path
or in another container is stored once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from fpkit.audio import AudioError, find_audio_files
from fpkit.config import IndexConfig
from fpkit.db.decoder import BackgroundDecoder
from fpkit.db.index import Progress, read_index, update_index
from fpkit.db.store import FileRecord, Store, StoreError
from fpkit.fingerprint import REFERENCE_MIN_FILL, SongPrints, check_level
from fpkit.model import LoadedModel, load_model

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


@dataclass
class AddReport:
    stored: list[FileRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.count for r in self.stored)


class Database:
    """Open with `Database.open`, `Database.create` or `Database.open_or_create`; close when done."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def create(cls, root: str | Path, model: LoadedModel) -> Database:
        """A new empty database in `root` (writable), holding a copy of `model`'s checkpoint."""
        store = Store.create(root, model.path, model.model_id, model.config.audio, model.model.dims.emb_dim)
        return cls(store)

    @classmethod
    def open(cls, root: str | Path, writable: bool = False) -> Database:
        try:
            return cls(Store.open(root, writable))
        except StoreError as err:
            raise DatabaseError(str(err)) from None

    @classmethod
    def open_or_create(cls, root: str | Path, model: LoadedModel, rebuild: bool = False) -> Database:
        """Open `root` for writing, checking `model`, or create it; `rebuild` forgets its songs.

        A rebuild takes effect at the next commit, so the old contents survive an interruption.
        """
        if not (Path(root) / "manifest.json").exists():
            return cls.create(root, model)
        db = cls.open(root, writable=True)
        try:
            db.check_model(model)
        except ModelMismatch:
            db.close()
            raise
        if rebuild:
            db.store.start_over()
        return db

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def model_id(self) -> str:
        return self.store.model_id

    @property
    def songs(self) -> list[FileRecord]:
        return self.store.files

    @property
    def rows(self) -> int:
        return self.store.rows

    @property
    def indexed_rows(self) -> int:
        meta = self.store.index_meta
        return int(meta["rows"]) if meta else 0

    def check_model(self, model: LoadedModel) -> None:
        if model.model_id != self.model_id:
            raise ModelMismatch(
                f"{self.root}: built with model {self.model_id}, but {model.path} is model {model.model_id}"
            )

    def load_model(self, device: str | torch.device = "cpu") -> LoadedModel:
        """The database's own copy of its model."""
        loaded = load_model(self.store.model_path, device)
        self.check_model(loaded)
        return loaded

    def load_index(self) -> faiss.Index:
        meta = self.store.index_meta
        if meta is None:
            raise DatabaseError(f"{self.root}: has no index yet (run fpkit index)")
        if meta["rows"] < self.rows:
            log.warning("%s: %d stored rows are not indexed yet; run fpkit index", self.root, self.rows - meta["rows"])
        return read_index(self.root, meta)

    def add_files(
        self,
        paths: Iterable[str | Path],
        model: LoadedModel,
        batch_size: int = 256,
        on_file: Callable[[str], None] | None = None,
    ) -> AddReport:
        """Fingerprint and store every audio file under `paths` (files or folders), then commit.

        Unchanged paths and already-stored content are skipped; unreadable files are reported
        in `AddReport.failed` and do not stop the run. Commits every `COMMIT_EVERY_S` seconds.
        `on_file` is called with each file's path once it is dealt with (for progress bars).
        """
        self.check_model(model)
        audio = model.config.audio
        report = AddReport()
        last_commit = time.monotonic()
        todo: list[tuple[Path, os.stat_result]] = []
        for path in find_audio_files(list(paths)):
            absolute = Path(os.path.abspath(path))
            try:
                stat = absolute.stat()
            except OSError as err:
                report.failed.append(Failed(str(absolute), f"{path}: cannot read ({err.strerror})"))
                continue
            known = self.store.find_unchanged(str(absolute), stat.st_size, stat.st_mtime_ns)
            if known is not None:
                report.skipped.append(Skipped(str(absolute), known.path))
                if on_file is not None:
                    on_file(str(absolute))
            else:
                todo.append((absolute, stat))
        if todo:
            with BackgroundDecoder([path for path, _ in todo], audio.sample_rate) as decoder:
                for (path, stat), (_, blocks) in zip(todo, decoder.files(), strict=True):
                    self._store_song(path, stat, blocks, model, batch_size, report)
                    if on_file is not None:
                        on_file(str(path))
                    if time.monotonic() - last_commit > COMMIT_EVERY_S:
                        self.store.commit()
                        last_commit = time.monotonic()
        self.store.commit()
        return report

    def _store_song(
        self,
        path: Path,
        stat: os.stat_result,
        blocks: Iterator[np.ndarray],
        model: LoadedModel,
        batch_size: int,
        report: AddReport,
    ) -> None:
        """Fingerprint one decoding file as its blocks arrive, then store it unless its content is known."""
        audio = model.config.audio
        song = SongPrints(model.model, audio, batch_size)
        try:
            for block in blocks:
                song.feed(block)
            prints = song.finish()
            check_level(
                song.samples, song.peak, str(path), audio, math.ceil(REFERENCE_MIN_FILL * audio.segment_samples)
            )
        except AudioError as err:
            report.failed.append(Failed(str(path), str(err)))
            return
        same = self.store.find_content(song.sha)
        if same is not None:
            report.skipped.append(Skipped(str(path), same.path))
            return
        duration = song.samples / audio.sample_rate
        report.stored.append(self.store.append(str(path), duration, song.sha, stat.st_size, stat.st_mtime_ns, prints))

    def add_databases(self, others: Iterable[Database], on_song: Callable[[str], None] | None = None) -> AddReport:
        """Copy the songs of other databases or `fpkit generate` outputs made with the same model."""
        report = AddReport()
        for other in others:
            if other.model_id != self.model_id:
                raise ModelMismatch(
                    f"{other.root}: made with model {other.model_id}, this database uses {self.model_id}"
                )
            for record in other.songs:
                same = self.store.find_content(record.sha)
                if same is not None:
                    report.skipped.append(Skipped(record.path, same.path))
                else:
                    prints = other.store.read_rows(record.first_row, record.first_row + record.count)
                    report.stored.append(
                        self.store.append(
                            record.path, record.duration_s, record.sha, record.size, record.mtime_ns, prints
                        )
                    )
                if on_song is not None:
                    on_song(record.path)
        self.store.commit()
        return report

    def update_index(self, config: IndexConfig, progress: Progress | None = None) -> None:
        """Index every stored row (see `fpkit.db.index.update_index`) and commit."""
        self.store.set_index(update_index(self.store, config, progress))
        self.store.commit()
