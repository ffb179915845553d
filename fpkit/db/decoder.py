"""Decode audio files in a separate process, streamed block by block, while the model works.

A process, not a thread: decoding and resampling hold the interpreter for part of their time,
and a process lets them run truly beside the network on another core. Blocks travel through a
bounded queue, so memory stays flat however long a file is and however far decoding runs ahead.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fpkit.audio import AudioError, iter_audio_blocks

QUEUE_BLOCKS = 16  # blocks in flight: about 8 minutes of audio at the model rate, 15 MB
BLOCK_S = 20.0  # seconds of source audio per block
POLL_S = 1.0  # how often a waiting reader checks that the decoder is still alive


class BackgroundDecoder:
    """Decodes `paths` in order in a child process; `files()` yields each file's block iterator.

    Each file's iterator must be consumed (or `skip`ped) before the next file's is used. A failed
    file's iterator raises `AudioError` after the blocks decoded before the failure.
    """

    def __init__(self, paths: list[Path], sample_rate: int) -> None:
        # Fork starts at once (as DataLoader workers do); spawn, where there is no fork, imports anew.
        context: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.queue: Any = context.Queue(QUEUE_BLOCKS)
        self.process = context.Process(
            target=_decode_all, args=([str(p) for p in paths], sample_rate, self.queue), daemon=True
        )
        self.process.start()
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

    def _get(self) -> tuple[str, int, Any]:
        while True:
            try:
                return self.queue.get(timeout=POLL_S)
            except queue.Empty:
                if not self.process.is_alive():
                    raise RuntimeError(f"the audio decoder process died (exit code {self.process.exitcode})") from None

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.queue.close()
        self.queue.cancel_join_thread()

    def __enter__(self) -> BackgroundDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_all(paths: list[str], sample_rate: int, out: Any) -> None:
    """Child process: put ("block", i, samples), then ("end", i, None) or ("error", i, reason) per file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    import torch

    torch.set_num_threads(1)  # the resampler's convolution; the parent's network has the other threads
    for index, path in enumerate(paths):
        try:
            for block in iter_audio_blocks(path, sample_rate, BLOCK_S):
                out.put(("block", index, block))
        except AudioError as err:
            out.put(("error", index, str(err)))
        else:
            out.put(("end", index, None))
