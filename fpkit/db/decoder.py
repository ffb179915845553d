"""Decode audio files in a background thread, streamed block by block, while the model works.

libsndfile and the resampler's convolution release the interpreter, so a thread decodes beside
the network. (A forked process was measured four times slower end to end on two cores: its busy
core starved the network's OpenMP threads.) Blocks travel through a bounded queue, so memory
stays flat however long a file is and however far decoding runs ahead.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fpkit.audio import AudioError, iter_audio_blocks

QUEUE_BLOCKS = 16  # blocks of `audio.BLOCK_S` in flight: about 5 minutes of audio at the model rate, 10 MB
Message = tuple[str, int, Any]  # ("block" | "end" | "error", file index, samples or reason)
POLL_S = 1.0  # how often a waiting reader checks that the decoder thread is still alive


class BackgroundDecoder:
    """Decodes `paths` in order in a background thread; `files()` yields each file's block iterator.

    Each file's iterator must be consumed (or `skip`ped) before the next file's is used. A failed
    file's iterator raises `AudioError` after the blocks decoded before the failure.
    """

    def __init__(self, paths: list[Path], sample_rate: int) -> None:
        self.queue: queue.Queue[Message] = queue.Queue(QUEUE_BLOCKS)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=_decode_all, args=([str(p) for p in paths], sample_rate, self.queue, self.stop), daemon=True
        )
        self.thread.start()
        self.paths = paths

    def files(self) -> Iterator[tuple[Path, Iterator[np.ndarray]]]:
        for index, path in enumerate(self.paths):
            yield path, self._blocks(index)

    def _blocks(self, index: int) -> Iterator[np.ndarray]:
        while True:
            kind, file_index, payload = self._get()
            assert file_index == index, "blocks arrive in file order"
            if kind == "block":
                yield payload
            elif kind == "error":
                raise AudioError(payload)
            else:
                return

    def _get(self) -> Message:
        while True:
            try:
                return self.queue.get(timeout=POLL_S)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise RuntimeError("the audio decoder stopped") from None

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a put() waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.1)

    def __enter__(self) -> BackgroundDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_all(
    paths: list[str], sample_rate: int, out: queue.Queue[tuple[str, int, Any]], stop: threading.Event
) -> None:
    """Put ("block", i, samples), then ("end", i, None) or ("error", i, reason) per file."""
    for index, path in enumerate(paths):
        if stop.is_set():
            return
        try:
            for block in iter_audio_blocks(path, sample_rate):
                if stop.is_set():
                    return
                out.put(("block", index, block))
        except AudioError as err:
            out.put(("error", index, str(err)))
        else:
            out.put(("end", index, None))
