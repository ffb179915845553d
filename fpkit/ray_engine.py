"""Fingerprinting on a Ray cluster: `fpkit generate --engine ray`.

The files still to fingerprint become a Ray Data dataset, one row per file; `map_batches`
over a pool of actors, each holding the model once, decodes and fingerprints them with the
local path's own functions (`BackgroundDecoder`, `fingerprint_song`). The driver receives each
song's float16 fingerprints in file order and stores them exactly as `Database.add_files`
does, committing every `COMMIT_EVERY_S`, so the folder is the same and an interrupted run
resumes from its last commit. Workers read the files by the driver's absolute paths: on a
cluster they must see the same filesystem.

Without `RAY_ADDRESS` a local Ray is started for the run and stopped after it; with it, the
run joins that cluster; in a process where Ray is already initialised (a test, a notebook),
that Ray is used and left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
import torch

from fpkit.audio import AudioError
from fpkit.config import AudioConfig
from fpkit.db.database import COMMIT_EVERY_S, AddReport, Database, DatabaseError, Failed
from fpkit.db.decoder import BackgroundDecoder
from fpkit.db.rescore import FLOAT16_DTYPE
from fpkit.device import DeviceError, autocast_dtype
from fpkit.fingerprint import Song, fingerprint_song
from fpkit.model import Fingerprinter, LoadedModel

log = logging.getLogger(__name__)

FILES_PER_CALL = 1  # files per actor call: a result reaches the driver (and can be stored) as soon as its song is done
DEVICES = ("auto", "cpu", "cuda")


class RayRunError(DatabaseError):
    """Ray failed (a lost cluster, an actor that cannot start); the songs stored before it are committed."""


@dataclass(frozen=True)
class RayEngine:
    """Where and how the actors fingerprint; `add_files` is a drop-in for `Database.add_files`."""

    device: str = "auto"  # cpu, cuda (one GPU per actor), or auto: cuda when the cluster has GPUs
    precision: str = "auto"  # `index.precision`, resolved on each actor's own device

    def __post_init__(self) -> None:
        if self.device.split(":")[0] not in DEVICES:
            raise DeviceError(f"unknown device {self.device!r} for --engine ray (use auto, cpu or cuda)")

    def add_files(
        self,
        db: Database,
        paths: Iterable[str | Path],
        model: LoadedModel,
        batch_size: int = 256,
        on_file: Callable[[str], None] | None = None,
    ) -> AddReport:
        """Fingerprint on Ray the audio files under `paths` not stored yet, store them in `db`, commit.

        Same skipping, failures and reports as `Database.add_files`; `model` is the driver's
        copy, sent once to every actor.
        """
        db.check_model(model)
        report = AddReport()
        todo = db.pending(paths, report, on_file)
        if todo:
            try:
                with ray_session():
                    self._store(db, todo, model, batch_size, report, on_file)
            except ray.exceptions.RayError as err:
                db.commit()
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise RayRunError(
                    f"{db.root}: Ray failed ({type(err).__name__}: {reason}); "
                    f"the {len(db.songs)} songs stored so far are kept (run again to go on)"
                ) from None
        db.commit()
        return report

    def _store(
        self,
        db: Database,
        todo: list[tuple[Path, os.stat_result]],
        model: LoadedModel,
        batch_size: int,
        report: AddReport,
        on_file: Callable[[str], None] | None,
    ) -> None:
        stats = dict(todo)
        last_commit = time.monotonic()
        for path, outcome in self._fingerprint([path for path, _ in todo], model, batch_size):
            if isinstance(outcome, Song):
                db.store_song(path, stats[path], outcome, report)
            else:
                report.failed.append(Failed(str(path), outcome))
            if on_file is not None:
                on_file(str(path))
            if time.monotonic() - last_commit > COMMIT_EVERY_S:
                db.commit()
                last_commit = time.monotonic()

    def _fingerprint(self, paths: list[Path], model: LoadedModel, batch_size: int) -> Iterator[tuple[Path, Song | str]]:
        """Each of `paths`, in order, with its song or the one-line reason it failed."""
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if self.device.startswith("cuda") and not gpus:  # GPU actors would wait for ever
            raise RayRunError(f"--device {self.device}: the Ray cluster has no GPUs (use --device cpu)")
        gpu = gpus > 0 and self.device != "cpu"
        slots = gpus if gpu else int(ray.cluster_resources().get("CPU", 1))
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # songs are stored in the order the local path stores them
        context.enable_progress_bars = False  # the command shows its own
        songs = ray.data.from_items([{"path": str(p)} for p in paths]).map_batches(
            SongFingerprinter,
            fn_constructor_args=(model.model.cpu(), model.config.audio, batch_size, self.precision, gpu),
            batch_size=FILES_PER_CALL,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(slots, len(paths)))),
            num_gpus=1 if gpu else None,
        )
        for row in songs.iter_rows():
            path = Path(row["path"])
            if row["error"]:
                yield path, str(row["error"])
            else:
                prints = np.frombuffer(row["prints"], dtype=FLOAT16_DTYPE).reshape(-1, model.model.dims.emb_dim)
                yield path, Song(prints, str(row["sha"]), float(row["duration_s"]))


class SongFingerprinter:
    """A Ray actor: the model, loaded once, fingerprints one batch of file paths per call."""

    def __init__(self, model: Fingerprinter, audio: AudioConfig, batch_size: int, precision: str, gpu: bool) -> None:
        device = torch.device("cuda" if gpu else "cpu")  # Ray shows each GPU actor only its own GPU
        self.model = model.to(device).eval()
        self.model.autocast = autocast_dtype(device, precision)
        self.audio = audio
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """{"path": (n,)} -> the paths with `sha`, `duration_s`, float16 `prints` as bytes, `error` ("" if none)."""
        paths = [Path(p) for p in batch["path"]]
        out: dict[str, list[Any]] = {"path": [], "sha": [], "duration_s": [], "prints": [], "error": []}
        with BackgroundDecoder(paths, self.audio.sample_rate) as decoder:
            for path, blocks in decoder.files():
                try:
                    song = fingerprint_song(blocks, str(path), self.model, self.audio, self.batch_size)
                except AudioError as err:
                    song, error = Song(np.zeros(0, dtype=np.float32), "", 0.0), str(err)
                else:
                    error = ""
                out["path"].append(str(path))
                out["sha"].append(song.sha)
                out["duration_s"].append(song.duration_s)
                # Bytes, not a tensor column: songs have different lengths. float16 loses nothing re-scoring needs.
                out["prints"].append(np.ascontiguousarray(song.prints, dtype=FLOAT16_DTYPE).tobytes())
                out["error"].append(error)
        return {key: np.array(values, dtype=object) for key, values in out.items()}


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """The Ray this process uses: one already initialised, else `RAY_ADDRESS`'s cluster, else a new local one.

    A Ray connected or started here is shut down afterwards (a local one stops with it). Ray
    replaces the SIGTERM handler of the process that calls `ray.init`; the command's own is put back.
    """
    if ray.is_initialized():
        yield
        return
    address = os.environ.get("RAY_ADDRESS")
    handler = signal.getsignal(signal.SIGTERM)
    options: dict[str, Any] = {} if address else {"include_dashboard": False}
    try:
        ray.init(address=address or "local", logging_level=logging.WARNING, **options)
    except Exception as err:  # Ray raises bare `Exception` when its node does not come up in time
        raise RayRunError(f"Ray did not start ({address or 'local'}): {err}") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and progress notes: the command has its own
    signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
    log.info("fingerprinting on Ray: %s", "cluster " + address if address else "a local instance")
    try:
        yield
    finally:
        ray.shutdown()
