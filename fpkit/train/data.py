"""Training data: songs decoded once into a cache, and anchor/replica batches made from them.

Batch `k` is a pure function of (seed, k, rank): any worker can make it, and a resumed run
sees exactly the batches it would have seen without the interruption.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fpkit.atomic import atomic_write
from fpkit.audio import AudioError, crop, find_audio_files, load_audio
from fpkit.augment import Degrader, colour, random_gains_db
from fpkit.config import AudioConfig, AugmentConfig
from fpkit.errors import FpkitError
from fpkit.features import Framing
from fpkit.progress import SILENT, Progress

log = logging.getLogger(__name__)


class DataError(FpkitError):
    """Training data that cannot be used at all (as opposed to single files that are skipped)."""


@dataclass(frozen=True)
class Song:
    path: str  # the source file
    cache: str  # decoded float16 samples at the model rate (.npy)
    samples: int


@dataclass(frozen=True)
class CacheReport:
    songs: list[Song]
    skipped: list[str]  # "path: reason" for every file that could not be used


def cache_songs(
    paths: list[Path],
    cache_dir: Path,
    sample_rate: int,
    min_samples: int,
    workers: int = 0,
    progress: Progress = SILENT,
) -> CacheReport:
    """Decode every file once to the model rate and keep it as float16 .npy in `cache_dir`.

    A cached file is reused while the source's path, size and modification time are unchanged.
    Unreadable files and files shorter than `min_samples` are skipped, each with its reason.
    `progress` advances once per file (the caller starts its phase).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(p), str(cache_dir / _cache_name(p, sample_rate)), sample_rate) for p in paths]
    songs: list[Song] = []
    skipped: list[str] = []
    results: list[tuple[str, str, int | str]]
    if workers > 0 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = []
            for result in pool.map(_decode_to_cache, jobs, chunksize=4):
                results.append(result)
                progress.advance()
    else:
        results = []
        for job in jobs:
            results.append(_decode_to_cache(job))
            progress.advance()
    for path, cache, outcome in results:
        if isinstance(outcome, str):
            skipped.append(f"{path}: {outcome}")
        elif outcome < min_samples:
            skipped.append(f"{path}: too short ({outcome / sample_rate:.2f} s, need {min_samples / sample_rate:.2f} s)")
        else:
            songs.append(Song(path, cache, outcome))
    for line in skipped:
        log.warning("skipped %s", line)
    return CacheReport(songs, skipped)


def _cache_name(path: Path, sample_rate: int) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
    return hashlib.sha1(key.encode()).hexdigest()[:20] + ".npy"


def _decode_to_cache(job: tuple[str, str, int]) -> tuple[str, str, int | str]:
    """Returns (path, cache, samples) or (path, cache, reason) when the file cannot be used."""
    path, cache, sample_rate = job
    if os.path.exists(cache):
        return path, cache, int(np.load(cache, mmap_mode="r").shape[0])
    try:
        wave = load_audio(path, sample_rate)
    except AudioError as err:
        return path, cache, str(err).removeprefix(f"{path}: ")
    with atomic_write(cache, ".npy") as tmp:  # np.save would add .npy to any other name
        np.save(tmp, wave.astype(np.float16))
    return path, cache, len(wave)


def split_songs(paths: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Split files into (train, validation) by song, reproducibly; at least one of each."""
    if len(paths) < 2:
        raise DataError("need at least two songs to split off a validation set (or pass --val)")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_val = min(len(paths) - 1, max(1, round(val_fraction * len(paths))))
    val = sorted(paths[i] for i in order[:n_val])
    train = sorted(paths[i] for i in order[n_val:])
    return train, val


def list_audio(folder: str) -> list[Path]:
    if not Path(folder).is_dir():
        raise DataError(f"{folder}: not a folder")
    files = find_audio_files([folder])
    if not files:
        raise DataError(f"{folder}: no audio files found")
    return files


class PairBatches(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Index k -> (anchors, replicas), each (n, framing.window) float32 segment windows.

    Anchors are clean 1 s excerpts at random positions, with every second of music equally
    likely. A replica starts within +-`offset_s` of its anchor and is degraded (a random
    colouring when `eq_db` > 0, reverb in a bank's or a simulated room, background noise, gain);
    it is cut with `reverb_context` samples before its window so that the room's reverberation
    of the preceding music is heard, as in a real recording.
    """

    def __init__(
        self,
        songs: list[Song],
        audio: AudioConfig,
        framing: Framing,
        augment: AugmentConfig,
        degrader: Degrader,
        anchors_per_batch: int,
        seed: int,
        rank: int = 0,
    ) -> None:
        if not songs:
            raise DataError("no usable songs")
        self.songs = songs
        self.segment = audio.segment_samples
        self.framing = framing
        self.margin = round(augment.offset_s * audio.sample_rate)
        self.reverb_context = round(augment.ir_max_s * audio.sample_rate)
        self.degrader = degrader
        self.speed = augment.speed
        self.eq_db = augment.eq_db
        self.simulated_rooms = augment.simulated_rooms
        self.tail_silence = augment.tail_silence
        self.tail_silence_max = round(augment.tail_silence_max_s * audio.sample_rate)
        self.sample_rate = audio.sample_rate
        self.n = anchors_per_batch
        self.seed = seed
        self.rank = rank
        spans = np.array([s.samples - self.segment - 2 * self.margin for s in songs], dtype=np.float64)
        self.weights = np.maximum(spans, 1) / np.maximum(spans, 1).sum()
        self._waves: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return 2**62  # batches are made on demand; the sampler chooses which

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index, self.rank])
        picks = rng.choice(len(self.songs), size=self.n, p=self.weights)
        window, left = self.framing.window, self.framing.left
        length = window + self.reverb_context
        anchors = np.empty((self.n, window), dtype=np.float32)
        raw = np.zeros((self.n, length), dtype=np.float32)
        for i, song_index in enumerate(picks):
            song = self.songs[song_index]
            wave = self._wave(song)
            high = max(self.margin, song.samples - self.segment - self.margin)
            start = int(rng.integers(self.margin, high + 1))
            shift = int(rng.integers(-self.margin, self.margin + 1))
            first = start - self.margin - left - self.reverb_context  # the earliest sample either window needs
            span = 2 * self.margin + length
            if self.speed == [1.0, 1.0]:  # no draw, so that runs without it keep their batches
                music = crop(wave, first, span)
            else:
                music = played_faster(wave, start, float(rng.uniform(self.speed[0], self.speed[1])), first, span)
            anchors[i] = music[self.margin + self.reverb_context :][:window]
            raw[i] = music[self.margin + shift :][:length]
        played = torch.from_numpy(raw)
        if self.eq_db > 0:  # no draw when off, so that runs without it keep their batches
            played = colour(played, random_gains_db(self.n, self.eq_db, rng), self.sample_rate)
        replicas = self.degrader(played, rng, self.simulated_rooms)[:, self.reverb_context :].contiguous()
        if self.tail_silence > 0:  # no draw when off, so that runs without it keep their batches
            silenced = rng.random(self.n) < self.tail_silence
            zeros = rng.integers(1, self.tail_silence_max + 1, size=self.n)
            end = window - self.framing.right  # the context after the segment is past a padded copy's end too
            for row in np.flatnonzero(silenced):
                replicas[row, end - zeros[row] :] = 0.0
        return torch.from_numpy(anchors), replicas

    def _wave(self, song: Song) -> np.ndarray:
        # Memory-mapped: worker processes share the page cache instead of copying songs.
        if song.cache not in self._waves:
            self._waves[song.cache] = np.load(song.cache, mmap_mode="r")
        return self._waves[song.cache]


def played_faster(wave: np.ndarray, centre: int, speed: float, first: int, length: int) -> np.ndarray:
    """Samples [first, first + length) of `wave` played `speed` times faster around sample `centre`.

    Sample `centre + k` of the result holds the music at `centre + k * speed` (linear
    interpolation; zeros beyond the song's ends), so sample `centre` stays in place.
    """
    where = centre + (np.arange(first, first + length) - centre) * speed  # positions in the music
    base = int(np.floor(where[0])) - 1
    source = crop(wave, base, int(np.ceil(where[-1])) - base + 2)
    return np.interp(where - base, np.arange(len(source)), source).astype(np.float32)


class StepSampler(torch.utils.data.Sampler[int]):
    """Yields batch indices start, start + 1, ..., stop - 1 (global training steps)."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
