"""Fingerprint several songs at once, one per CPU core, and hand the results back in input order.

One song's network calls leave the second core of a 2-core machine mostly idle: small batches
gain little from a second intra-op thread, and the decoder thread only needs a third of a core.
So each worker thread takes every k-th file with its own background decoder and runs the
network on one intra-op thread; the convolutions release the interpreter, so k workers keep k
cores busy. The caller receives the songs in the order of `paths` (the store's rows stay
deterministic); a worker runs at most `AHEAD` songs ahead of the caller.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from fpkit.audio import AudioError
from fpkit.db.decoder import BackgroundDecoder

T = TypeVar("T")
AHEAD = 2  # finished songs a worker may hold before the caller takes them
POLL_S = 0.5  # how often a worker waiting on a full queue checks whether it should stop


class _Crash:
    """An unexpected exception in a worker, re-raised in the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def fingerprint_files(
    paths: list[Path],
    sample_rate: int,
    fingerprint: Callable[[Path, Iterator[np.ndarray]], T],
    workers: int,
) -> Iterator[tuple[Path, T | AudioError]]:
    """`(path, fingerprint(path, blocks))` for each path in order, or the file's `AudioError`.

    `fingerprint` runs on `workers` threads at once (one intra-op thread each for the time
    this generator runs); with one worker it runs on the calling thread's intra-op threads.
    """
    workers = max(1, min(workers, len(paths)))
    if workers == 1:
        with BackgroundDecoder(paths, sample_rate) as decoder:
            for path, blocks in decoder.files():
                yield path, _attempt(fingerprint, path, blocks)
        return
    stop = threading.Event()
    queues: list[queue.Queue[T | AudioError | _Crash]] = [queue.Queue(AHEAD) for _ in range(workers)]
    threads = [
        threading.Thread(target=_work, args=(paths[w::workers], sample_rate, fingerprint, queues[w], stop), daemon=True)
        for w in range(workers)
    ]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for thread in threads:
            thread.start()
        for index, path in enumerate(paths):
            result = queues[index % workers].get()
            if isinstance(result, _Crash):
                raise result.error
            yield path, result
    finally:
        stop.set()
        for q in queues:  # unblock workers waiting to put
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for thread in threads:
            thread.join()
        torch.set_num_threads(threads_before)


def _attempt(
    fingerprint: Callable[[Path, Iterator[np.ndarray]], T], path: Path, blocks: Iterator[np.ndarray]
) -> T | AudioError:
    try:
        return fingerprint(path, blocks)
    except AudioError as err:
        return err


def _work(
    paths: list[Path],
    sample_rate: int,
    fingerprint: Callable[[Path, Iterator[np.ndarray]], T],
    out: queue.Queue[T | AudioError | _Crash],
    stop: threading.Event,
) -> None:
    try:
        with BackgroundDecoder(paths, sample_rate) as decoder:
            for path, blocks in decoder.files():
                if stop.is_set():
                    return
                _put(out, _attempt(fingerprint, path, _until(stop, blocks)), stop)
    except BaseException as err:  # handed to the caller, which re-raises it
        _put(out, _Crash(err), stop)


def _until(stop: threading.Event, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`blocks` until the caller stops: an interrupted index does not wait for a long file to finish."""
    for block in blocks:
        if stop.is_set():
            return
        yield block


def _put(out: queue.Queue[T | AudioError | _Crash], item: T | AudioError | _Crash, stop: threading.Event) -> None:
    """Wait for room in `out` unless the caller has stopped taking results."""
    while not stop.is_set():
        with contextlib.suppress(queue.Full):
            out.put(item, timeout=POLL_S)
            return
