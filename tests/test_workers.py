from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from synth import make_song, write_audio

from fpkit.audio import AudioError, load_audio
from fpkit.db.workers import fingerprint_files


def songs(tmp_path: Path, count: int) -> list[Path]:
    return [write_audio(tmp_path / f"{i}.wav", make_song(2.0 + i % 3, 8000, seed=i), 8000) for i in range(count)]


def whole(path: Path, blocks: Iterator[np.ndarray]) -> np.ndarray:
    # Uneven work per song, so that workers finish out of order.
    time.sleep(0.02 * (hash(path.name) % 3))
    return np.concatenate(list(blocks))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_input_order(tmp_path: Path, workers: int) -> None:
    paths = songs(tmp_path, 7)
    results = list(fingerprint_files(paths, 8000, whole, workers))
    assert [path for path, _ in results] == paths
    for path, samples in results:
        assert isinstance(samples, np.ndarray)
        np.testing.assert_array_equal(samples, load_audio(path, 8000))


def test_a_bad_file_fails_in_its_place(tmp_path: Path) -> None:
    paths = songs(tmp_path, 4)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00not audio" * 100)
    paths.insert(1, bad)
    results = dict(fingerprint_files(paths, 8000, whole, 2))
    assert isinstance(results[bad], AudioError)
    assert str(bad) in str(results[bad])
    assert all(isinstance(results[p], np.ndarray) for p in paths if p != bad)


def test_an_unexpected_error_reaches_the_caller(tmp_path: Path) -> None:
    def broken(path: Path, blocks: Iterator[np.ndarray]) -> int:
        list(blocks)
        if path.name == "2.wav":
            raise ZeroDivisionError("a bug")
        return 0

    with pytest.raises(ZeroDivisionError, match="a bug"):
        list(fingerprint_files(songs(tmp_path, 5), 8000, broken, 2))


def test_workers_use_one_thread_each_and_stop_with_the_caller(tmp_path: Path) -> None:
    threads_before = torch.get_num_threads()
    seen: list[int] = []

    def threads(path: Path, blocks: Iterator[np.ndarray]) -> int:
        list(blocks)
        seen.append(torch.get_num_threads())
        return 0

    running_before = threading.active_count()
    results = fingerprint_files(songs(tmp_path, 6), 8000, threads, 2)
    next(results)
    results.close()  # the caller stops early, as an interrupted index does
    assert set(seen) == {1}
    assert torch.get_num_threads() == threads_before
    assert threading.active_count() == running_before
