"""How library code reports a long job: one shape for every phase, drawn only by the command line.

Indexing, training, evaluation and monitoring call `start` once per phase and `advance` as work
gets done; `fpkit.cli.common.RichBars` draws bars on a terminal and lines elsewhere.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, phase: str, total: float | None) -> None:
        """A new phase of `total` units (files, rows, steps, seconds of audio); None when unknown."""

    def advance(self, steps: float = 1, note: str = "") -> None:
        """`steps` more units done; `note` is shown beside the count (e.g. the latest training loss)."""


class _Silent:
    def start(self, phase: str, total: float | None) -> None:
        pass

    def advance(self, steps: float = 1, note: str = "") -> None:
        pass


SILENT: Progress = _Silent()  # for callers that want no progress
