"""Monitoring recordings and streams: audio blocks in, spans out, as they close."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic

import numpy as np

from fpkit.audio import AudioError
from fpkit.db.search import Searcher
from fpkit.fingerprint import check_level
from fpkit.monitor.scan import RecordingPrints, Scan
from fpkit.monitor.tracker import Span, SpanTracker

STEP_S = 10.0  # a live stream is fingerprinted and searched this often, seconds
FILE_BLOCK_S = 120.0  # audio fingerprinted and searched at once when it comes faster than live, seconds
# Segments are fingerprinted and searched this far apart, those in between only next to a change of
# label (`SpanTracker`): half the network's and the index's work at the 0.5 s hop. On the training-side
# recordings (docs/monitor.md) it fetched 1.7 % of the segments and gave the same spans within tolerance
# but for 3 of 369 excerpts (2 lost, 1 gained), all at the margin.
SCAN_S = 1.0


class Monitor:
    """Monitors recordings against one database, through a loaded `Searcher` (its index, model, config)."""

    def __init__(self, searcher: Searcher, gaps: bool = False) -> None:
        self.searcher = searcher
        self.gaps = gaps
        self.paths = searcher.paths
        self.song_durations_s = np.array([record.duration_s for record in searcher.db.songs], dtype=np.float64)

    def session(self, name: str) -> MonitorSession:
        return MonitorSession(self, name)

    def run(self, blocks: Iterable[np.ndarray], name: str) -> Iterator[Span]:
        """Spans of a recording given as mono float32 blocks at the model rate, in time order, as they close.

        Raises `AudioError` naming `name` when the blocks do (after the spans found before the
        failure) and for a recording shorter than one segment or silent.
        """
        session = self.session(name)
        try:
            for block in blocks:
                yield from session.feed(block)
        except AudioError:
            yield from session.close()
            raise
        yield from session.finish()


class MonitorSession:
    """One recording being monitored: `feed` it blocks, then `finish` (or `close` after a failure)."""

    def __init__(self, monitor: Monitor, name: str) -> None:
        searcher = monitor.searcher
        self.name = name
        self.audio = searcher.model.config.audio
        self.index = searcher.index
        self.segment_k = searcher.config.segment_k
        # Fingerprints as soon as their windows are complete, and the audio kept no longer than the tracker needs it.
        batch_size = searcher.inference.batch_size
        self.stride = max(1, round(SCAN_S / self.audio.hop_s))
        self.prints = RecordingPrints(searcher.model.model, self.audio, batch_size, self.stride)
        self.tracker = SpanTracker(
            searcher.vectors,
            searcher.songs,
            monitor.song_durations_s,
            self.audio,
            searcher.config,
            monitor.gaps,
            fetch=self.prints.prints_of,
        )
        self._pushed = 0  # segments handed to the tracker
        # The network fingerprints the next batch on this thread while the index and the tracker work on the last.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="fpkit-monitor")
        self._scans: deque[tuple[Future[np.ndarray], int]] = deque()  # in flight: prints, segments complete then
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._last_run = monotonic()
        self._closed = False

    @property
    def seconds(self) -> float:
        """Audio received so far, seconds."""
        return (self.prints.samples + self._pending_samples) / self.audio.sample_rate

    def feed(self, block: np.ndarray) -> list[Span]:
        """Mono float32 samples (n,) at the model rate; returns the spans that closed."""
        self._pending.append(block)
        self._pending_samples += len(block)
        pending_s = self._pending_samples / self.audio.sample_rate
        # A live stream is worked on every STEP_S; audio that comes faster (a file piped in)
        # waits for batches of FILE_BLOCK_S, which the model and the index handle far faster, and
        # is fingerprinted a batch ahead of the tracking.
        waited_s = monotonic() - self._last_run  # since the last batch was done
        if pending_s < STEP_S or (pending_s < FILE_BLOCK_S and waited_s < STEP_S):
            return []
        self._submit(self.prints.feed(self._take()))
        spans = self._drain(in_flight=0 if pending_s < FILE_BLOCK_S else 1)
        self._last_run = monotonic()
        return spans

    def finish(self) -> list[Span]:
        """The last spans; raises `AudioError` for a recording shorter than one segment or silent."""
        seconds = self.seconds
        if self.prints.samples + self._pending_samples < self.audio.segment_samples:
            self._closed = True
            self._worker.shutdown()
            raise AudioError(f"{self.name}: too short ({seconds:.2f} s, needs {self.audio.segment_s:g} s)")
        spans = self.close()
        check_level(self.prints.samples, self.prints.peak, self.name, self.audio)  # silent: peak to peak, as index
        return spans

    def close(self) -> list[Span]:
        """The spans of the audio received so far, without checking it (after a failure or an interrupt)."""
        if self._closed:
            return []
        self._closed = True
        self._submit(self.prints.feed(self._take()))
        self._submit(self.prints.flush(), self.prints.segments)
        spans = self._drain(in_flight=0)
        self._worker.shutdown()
        return spans + self.tracker.finish(self.prints.samples / self.audio.sample_rate)

    def _take(self) -> np.ndarray:
        wave = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
        self._pending, self._pending_samples = [], 0
        return wave

    def _submit(self, scan: Scan, upto: int | None = None) -> None:
        """Fingerprint `scan` on the worker; the tracker gets the segments up to its last one (or `upto`) after it."""
        upto = (self.prints.scanned - 1) * self.stride + 1 if upto is None else upto
        self._scans.append((self._worker.submit(scan.prints), upto))

    def _drain(self, in_flight: int) -> list[Span]:
        """Track the scans fingerprinted, in order, until `in_flight` are left."""
        spans: list[Span] = []
        while len(self._scans) > in_flight:
            prints, upto = self._scans.popleft()
            spans += self._track(prints.result(), upto)
        return spans

    def _track(self, prints: np.ndarray, upto: int) -> list[Span]:
        """Hand the tracker the segments up to `upto`, with `prints` (m, d) of the scan segments among the new ones."""
        if upto <= self._pushed:
            return []
        segments = np.arange(self._pushed, upto)
        scanned = segments % self.stride == 0
        hit_sims, hit_rows = self.index.search(prints, self.segment_k)  # (m, k) each
        every = np.zeros((len(segments), prints.shape[1]), dtype=np.float32)
        rows = np.full((len(segments), self.segment_k), -1, dtype=np.int64)
        sims = np.zeros((len(segments), self.segment_k), dtype=np.float32)
        every[scanned], rows[scanned], sims[scanned] = prints, hit_rows, hit_sims
        spans = self.tracker.push(every, rows, sims, scanned)
        self._pushed = upto
        self.prints.forget_before(self.tracker.decided)
        return spans
