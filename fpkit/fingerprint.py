"""Waveforms to fingerprints: every segment of a stored song, and a query at sub-hop shifts.

References keep a final half-filled segment (`segment_starts(..., min_fill=0.5)`) so the last
second of a song can be found. Queries use whole segments only, fingerprinted several times with
start shifts that divide one hop, so the search can place a query finer than the hop.

Every segment is fingerprinted from its window (the segment plus the front end's context, zeros
beyond the signal's ends). With stream framing the signal is framed once per stretch of
`STREAM_CHUNK` segments and the segments are cut from those frames (`fpkit.features`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fpkit.audio import AudioError, crop, segment_starts
from fpkit.config import AudioConfig
from fpkit.features import LogMelSpectrogram
from fpkit.model import Fingerprinter

REFERENCE_MIN_FILL = 0.5  # a stored song's last segment may be half real audio
SILENCE_PEAK = 1e-4  # -80 dBFS: a signal swinging less holds nothing to fingerprint
SILENT_BLOCK_S = 0.02  # a segment is blank when about half or more of its 20 ms blocks are silent
DC_SHARE = 0.01  # a query's mean beyond 1 % of its swing (-40 dB) is an offset to remove
# Segments framed at once (16 s of a song at a 0.5 s hop): bounds the STFT's memory, which two
# songs in flight hold at once (128 cost 50 MB more peak memory when indexing, docs/model.md).
STREAM_CHUNK = 32
# A short batch is padded to a multiple of this many segments: the CPU's convolution library
# keeps code and buffers for every batch shape it meets, and with every size from 1 to 31 (each
# song's last batch) that grew `fpkit index` by about 110 MB over a long collection (docs/model.md).
BATCH_GRAIN = 8


class SilentAudio(AudioError):
    """Audio that is silent or blank throughout: readable, but with nothing to fingerprint."""


@dataclass(frozen=True)
class QueryPrints:
    """A query fingerprinted at several start shifts within one hop."""

    shifts_s: np.ndarray  # (S,) seconds cut from the query start for each copy, ascending
    prints: list[np.ndarray]  # per shift: (n_s, d) float32, segment i starts at shift + i * hop


def embed_at(model: Fingerprinter, wave: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
    """Fingerprints (n, d) float32 of the segments of `wave` (samples,) starting at `starts` (n,), ascending.

    Batched on the model's device, `batch_size` segments per network call, the encoder under
    autocast to `model.autocast` when set (the front end always runs in float32).
    """
    device = next(model.parameters()).device
    out = [np.zeros((0, model.dims.emb_dim), dtype=np.float32)]
    dtype = model.autocast
    with torch.inference_mode():
        for specs in _whole_batches(_spectrograms(model.frontend, wave, starts, batch_size), batch_size):
            batch = _padded(specs, batch_size).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                prints = model.embed(batch)[: len(specs)]
            out.append(prints.float().cpu().numpy())
    return np.concatenate(out)


def _padded(specs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`specs` (k, ...) with rows of zeros up to a multiple of `BATCH_GRAIN` (at most `batch_size`)."""
    size = min(batch_size, -(-len(specs) // BATCH_GRAIN) * BATCH_GRAIN)
    if size <= len(specs):
        return specs
    return torch.cat([specs, specs.new_zeros((size - len(specs), *specs.shape[1:]))])


def _whole_batches(pieces: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """`pieces` (k, ...) regrouped into batches of `batch_size` rows, the last one possibly smaller.

    The front end's pieces need not divide into batches: a short batch costs the network
    nearly as much time as a full one.
    """
    held: list[torch.Tensor] = []
    count = 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count < batch_size:
            continue
        joined = torch.cat(held) if len(held) > 1 else held[0]
        whole = count - count % batch_size
        yield from joined[:whole].split(batch_size)
        held, count = [joined[whole:]], count - whole
    if count:
        yield torch.cat(held)


def _spectrograms(
    frontend: LogMelSpectrogram, wave: np.ndarray, starts: np.ndarray, batch_size: int
) -> Iterator[torch.Tensor]:
    """Normalised spectrograms (k, n_mels, frames) of the segments at `starts`, in order, a few at a time."""
    f = frontend.framing
    if f.streams and np.all((starts - starts[:1]) % f.stft_hop == 0):
        for first in range(0, len(starts), STREAM_CHUNK):
            chunk = starts[first : first + STREAM_CHUNK]
            piece = crop(wave, int(chunk[0]) - f.left, int(chunk[-1] - chunk[0]) + f.window)
            db = frontend.log_mel(torch.from_numpy(piece))  # (n_mels, T)
            yield frontend.segment_frames(db, torch.from_numpy((chunk - chunk[0]) // f.stft_hop))
        return
    for first in range(0, len(starts), batch_size):
        windows = np.stack([crop(wave, int(s) - f.left, f.window) for s in starts[first : first + batch_size]])
        yield frontend(torch.from_numpy(windows))


def reference_prints(model: Fingerprinter, wave: np.ndarray, audio: AudioConfig, batch_size: int) -> np.ndarray:
    """A song (samples,) at the model rate -> one fingerprint per hop (n, d) float32."""
    starts = segment_starts(len(wave), audio.segment_samples, audio.hop_samples, REFERENCE_MIN_FILL)
    prints = embed_at(model, wave, starts, batch_size)
    prints[blank_segments(wave, starts, audio)] = 0.0  # silence has no fingerprint: it matches nothing
    return prints


def query_prints(
    model: Fingerprinter, wave: np.ndarray, audio: AudioConfig, shifts: int, batch_size: int
) -> QueryPrints:
    """A query (samples,) of at least one segment, fingerprinted at `shifts` starts within one hop.

    With stream framing the shifts are rounded to whole STFT frames. All copies go through the
    model in the same batches.
    """
    wave = without_dc(wave)
    seg, hop = audio.segment_samples, audio.hop_samples
    step = model.frontend.framing.stft_hop if model.frontend.framing.streams else 1
    offsets = sorted({round(k * hop / shifts / step) * step for k in range(shifts)})
    # A copy too short for one whole segment gets one zero-padded segment (as a stored song's
    # last one is): without it a query under 1.5 s could only be placed on the hop grid.
    parts = [
        o + segment_starts(len(wave) - o, seg, hop, 1.0 if len(wave) - o >= seg else REFERENCE_MIN_FILL)
        for o in offsets
    ]
    every = np.concatenate(parts)
    order = np.argsort(every, kind="stable")
    prints = np.empty((len(every), model.dims.emb_dim), dtype=np.float32)
    prints[order] = embed_at(model, wave, every[order], batch_size)
    prints[blank_segments(wave, every, audio)] = 0.0
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return QueryPrints(
        shifts_s=np.array(offsets, dtype=np.float64) / audio.sample_rate,
        prints=[prints[a:b] for a, b in itertools.pairwise(bounds)],
    )


@dataclass(frozen=True)
class Song:
    """A song to store: its fingerprints and identity (`fingerprint_song`)."""

    prints: np.ndarray  # (n, d) float32, one per hop
    sha: str  # `content_hash` of the decoded samples
    duration_s: float


def fingerprint_song(
    blocks: Iterable[np.ndarray], name: str, model: Fingerprinter, audio: AudioConfig, batch_size: int
) -> Song:
    """A song decoded block by block (mono float32 at the model rate) -> its fingerprints, in bounded memory.

    Raises `AudioError` naming `name` when decoding fails, or when the song is too short or
    too quiet to store (`check_level`); every engine stores the same songs this way.
    """
    song = SongPrints(model, audio, batch_size)
    for block in blocks:
        song.feed(block)
    prints = song.finish()
    check_level(song.samples, song.peak, name, audio, math.ceil(REFERENCE_MIN_FILL * audio.segment_samples))
    return Song(prints, song.sha, song.samples / audio.sample_rate)


class SongPrints:
    """A stored song's fingerprints, content hash and level, from its samples fed block by block.

    Equal to `reference_prints` and `content_hash` of the whole song, while holding only about
    one `STREAM_CHUNK` of audio and one block: a song of any length is fingerprinted in bounded
    memory. Segments are fingerprinted in steps of whole batches at least a `STREAM_CHUNK` long,
    the rest at `finish`.
    """

    def __init__(self, model: Fingerprinter, audio: AudioConfig, batch_size: int) -> None:
        self.model = model
        self.audio = audio
        self.batch_size = batch_size
        self.framing = model.frontend.framing
        self.unit = batch_size * -(-STREAM_CHUNK // batch_size)  # segments per step: whole batches, at least one chunk
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # song sample index of buffer[0]
        self.next_start = 0  # start of the next segment to fingerprint
        self.samples = 0
        self.low, self.high = np.inf, -np.inf
        self.hasher = hashlib.sha256()
        self.prints: list[np.ndarray] = [np.zeros((0, model.dims.emb_dim), dtype=np.float32)]

    def feed(self, block: np.ndarray) -> None:
        """Append mono float32 samples (n,) at the model rate."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.size == 0:
            return
        self.hasher.update(block.tobytes())
        self.samples += len(block)
        self.low, self.high = min(self.low, float(block.min())), max(self.high, float(block.max()))
        self.buffer = np.concatenate([self.buffer, block])
        f, hop = self.framing, self.audio.hop_samples
        ready = (self.samples - f.segment - f.right - self.next_start) // hop + 1  # windows inside the samples so far
        whole = max(0, ready) // self.unit * self.unit
        if whole:
            self._embed(self.next_start + hop * np.arange(whole, dtype=np.int64))

    def finish(self) -> np.ndarray:
        """The fingerprints of every segment (n, d), the last one zero-padded as `reference_prints` does."""
        starts = segment_starts(self.samples, self.audio.segment_samples, self.audio.hop_samples, REFERENCE_MIN_FILL)
        self._embed(starts[starts >= self.next_start])
        return np.concatenate(self.prints)

    @property
    def sha(self) -> str:
        """`content_hash` of the samples fed so far."""
        return self.hasher.hexdigest()[:32]

    @property
    def peak(self) -> float:
        """Half the peak-to-peak amplitude: what a signal swings, whatever its DC offset."""
        return (self.high - self.low) / 2 if self.samples else 0.0

    def _embed(self, starts: np.ndarray) -> None:
        if len(starts) == 0:
            return
        prints = embed_at(self.model, self.buffer, starts - self.buffer_start, self.batch_size)
        prints[blank_segments(self.buffer, starts - self.buffer_start, self.audio, self.buffer_start)] = 0.0
        self.prints.append(prints)
        self.next_start = int(starts[-1]) + self.audio.hop_samples
        keep_from = self.next_start - self.framing.left  # the next window's first sample
        drop = max(0, keep_from - self.buffer_start)
        self.buffer = self.buffer[drop:]
        self.buffer_start += drop


def check_usable(wave: np.ndarray, name: str, audio: AudioConfig, min_samples: int | None = None) -> None:
    """Raise `AudioError` naming `name` when `wave` is shorter than `min_samples`, `SilentAudio` when silent or blank.

    Levels are measured peak to peak, so a constant offset (DC) counts as silence. Blank input
    (every segment mostly silent, such as a few clicks) has nothing to fingerprint either.
    """
    peak = float(wave.max() - wave.min()) / 2 if len(wave) else 0.0
    check_level(len(wave), peak, name, audio, min_samples)
    starts = segment_starts(len(wave), audio.segment_samples, audio.hop_samples, REFERENCE_MIN_FILL)
    if blank_segments(wave, starts, audio).all():
        raise SilentAudio(f"{name}: nearly silent (no second of it is mostly above -80 dBFS)")


def check_level(samples: int, peak: float, name: str, audio: AudioConfig, min_samples: int | None = None) -> None:
    """Raise `AudioError` naming `name` for fewer than `min_samples` samples; `SilentAudio` below -80 dBFS."""
    need = audio.segment_samples if min_samples is None else min_samples
    if samples < need:
        raise AudioError(
            f"{name}: too short ({samples / audio.sample_rate:.2f} s, needs {need / audio.sample_rate:g} s)"
        )
    if peak < SILENCE_PEAK:
        raise SilentAudio(f"{name}: silent (peak below -80 dBFS)")


def without_dc(wave: np.ndarray) -> np.ndarray:
    """`wave` (samples,) less its mean where that offset exceeds `DC_SHARE` of its swing (else unchanged).

    An offset carries no sound, but framing each segment over zero padding turns it into steps
    that fill the spectrogram of a quiet signal. Music's own tiny mean is left alone, so a
    query is fingerprinted exactly as the same samples are stored.
    """
    if not len(wave):
        return wave
    offset = float(np.mean(wave, dtype=np.float64))
    swing = float(wave.max() - wave.min()) / 2
    return (wave - offset).astype(np.float32) if abs(offset) > DC_SHARE * swing else wave


def silent_block_samples(sample_rate: int) -> int:
    """Samples in one block of `SILENT_BLOCK_S`, the unit silence is measured in."""
    return max(1, round(SILENT_BLOCK_S * sample_rate))


def sounding_blocks(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """(blocks,) bool: which whole blocks of `wave`, from its first sample, are not silence (`blank_segments`)."""
    block = silent_block_samples(sample_rate)
    n = len(wave) // block
    return np.ptp(wave[: n * block].reshape(n, block), axis=1) >= 2 * SILENCE_PEAK


def blank_segments(wave: np.ndarray, starts: np.ndarray, audio: AudioConfig, first_sample: int = 0) -> np.ndarray:
    """(n,) bool: which segments starting at `starts` (n,) samples of `wave` are mostly silence.

    A block of `SILENT_BLOCK_S` is silent when it varies by less than `SILENCE_PEAK` about its
    middle (so a DC offset counts as silence). A segment is blank when more than half of its
    blocks are silent, blocks past the signal's ends counting as silent, or when half or more of
    its blocks within the signal are: a segment whose first half is a song's leading silence
    drew 1 s of mains hum to it, while a last segment half filled with audio and half with
    padding is kept. Per-segment normalisation would blow a blank segment (digital silence, a
    lone click) up into the same featureless fingerprint wherever it occurs, so blank segments
    get a zero fingerprint instead, which matches nothing.

    The blocks lie on a grid from the song's first sample; `first_sample` is where `wave`
    starts in the song when it is a piece of one.
    """
    block = silent_block_samples(audio.sample_rate)
    skip = -first_sample % block  # samples of `wave` before its first whole grid block
    flags = sounding_blocks(wave[skip:], audio.sample_rate)
    n = len(flags)
    loud = np.concatenate([[0], np.cumsum(flags)])  # loud blocks before each block
    starts = np.asarray(starts, dtype=np.int64) - skip
    first = np.clip(-(-starts // block), 0, n)  # the blocks wholly inside both the segment and the signal
    stop = np.clip((starts + audio.segment_samples) // block, 0, n)
    loud_blocks = loud[stop] - loud[first]
    return (2 * loud_blocks < audio.segment_samples // block) | (2 * loud_blocks <= stop - first)


def content_hash(wave: np.ndarray) -> str:
    """Identity of a song: a hash of its decoded samples at the model rate.

    Hashing decoded audio rather than file bytes makes a re-tagged file, or the same audio
    saved as WAV and as FLAC, one song.
    """
    return hashlib.sha256(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()[:32]
