"""A recording's fingerprints as its audio arrives: a few segments at once, any other on request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpkit.audio import segment_starts
from fpkit.config import AudioConfig
from fpkit.fingerprint import blank_segments, embed_at
from fpkit.model import Fingerprinter


@dataclass(frozen=True)
class Scan:
    """Segments of a recording whose windows are complete, with the audio that holds them.

    `prints` fingerprints them; it reads only this snapshot of the audio, so another thread may
    do it while the recording goes on.
    """

    segments: np.ndarray  # (m,) recording segments, ascending
    wave: np.ndarray  # the audio held when they were complete, from recording sample `first_sample`
    first_sample: int
    model: Fingerprinter
    audio: AudioConfig
    batch_size: int

    def prints(self) -> np.ndarray:
        """Fingerprints (m, d), zero for a blank segment (silence matches nothing)."""
        if len(self.segments) == 0:
            return np.zeros((0, self.model.dims.emb_dim), dtype=np.float32)
        framing = self.model.frontend.framing
        starts = self.segments * self.audio.hop_samples - self.first_sample
        first = max(0, int(starts[0]) - framing.left)  # only the windows' audio: blank_segments reads all it gets
        wave = self.wave[first : int(starts[-1]) + framing.window - framing.left]
        prints = embed_at(self.model, wave, starts - first, self.batch_size)
        prints[blank_segments(wave, starts - first, self.audio, self.first_sample + first)] = 0.0
        return prints


class RecordingPrints:
    """The fingerprints of a recording fed block by block, at the model's hop.

    `feed` gives every `stride`-th segment (segments 0, stride, 2 stride, ...) to fingerprint as
    soon as its window is complete; `prints_of` fingerprints any other whole segment from the
    audio still held, which is everything from the window of the segment given to `forget_before`
    on. Either way a segment gets what fingerprinting the whole recording at once would give it
    (`embed_at`, zero for a blank segment), whatever blocks the audio arrives in.
    """

    def __init__(self, model: Fingerprinter, audio: AudioConfig, batch_size: int, stride: int) -> None:
        self.model = model
        self.audio = audio
        self.batch_size = batch_size
        self.stride = stride
        self.framing = model.frontend.framing
        self.buffer = np.zeros(0, dtype=np.float32)  # never changed in place: a `Scan` may hold it
        self.buffer_start = 0  # recording sample of buffer[0]
        self.keep_from = 0  # the first segment `prints_of` may be asked for
        self.scanned = 0  # scan segments given out so far: segments 0, stride, ..., (scanned - 1) * stride
        self.samples = 0
        self.low, self.high = np.inf, -np.inf

    @property
    def peak(self) -> float:
        """Half the peak-to-peak amplitude: what a signal swings, whatever its DC offset."""
        return (self.high - self.low) / 2 if self.samples else 0.0

    @property
    def segments(self) -> int:
        """Whole segments in the recording so far (its length, once it has ended)."""
        return len(segment_starts(self.samples, self.audio.segment_samples, self.audio.hop_samples))

    def feed(self, block: np.ndarray) -> Scan:
        """Append mono float32 samples (n,) at the model rate; the scan segments now complete."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.size:
            self.samples += len(block)
            self.low, self.high = min(self.low, float(block.min())), max(self.high, float(block.max()))
            self.buffer = np.concatenate([self.buffer, block])
        step = self.stride * self.audio.hop_samples
        complete = self.samples - self.framing.segment - self.framing.right  # latest start of a complete window
        return self._scan(0 if complete < 0 else complete // step + 1)

    def flush(self) -> Scan:
        """The scan segments left once the recording has ended: whole segments only, as a query's."""
        return self._scan((self.segments + self.stride - 1) // self.stride)

    def prints_of(self, segments: np.ndarray) -> np.ndarray:
        """Fingerprints (m, d) of whole segments (m,), ascending, from `keep_from` on, with complete windows."""
        return self._held(np.asarray(segments, dtype=np.int64)).prints()

    def forget_before(self, segment: int) -> None:
        """No segment before `segment` will be asked for: its audio can go."""
        self.keep_from = max(self.keep_from, segment)
        first = min(self.keep_from, self.scanned * self.stride) * self.audio.hop_samples - self.framing.left
        drop = max(0, first - self.buffer_start)
        self.buffer = self.buffer[drop:]
        self.buffer_start += drop

    def _scan(self, upto: int) -> Scan:
        """The scan segments from the last one given out up to the `upto`-th."""
        scan = self._held(np.arange(self.scanned, max(self.scanned, upto), dtype=np.int64) * self.stride)
        self.scanned = max(self.scanned, upto)
        self.forget_before(self.keep_from)
        return scan

    def _held(self, segments: np.ndarray) -> Scan:
        return Scan(segments, self.buffer, self.buffer_start, self.model, self.audio, self.batch_size)
