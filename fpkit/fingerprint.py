"""Waveforms to fingerprints: every segment of a stored song, and a query at sub-hop shifts.

References keep a final half-filled segment (`segment(..., min_fill=0.5)`) so the last second
of a song can be found. Queries use whole segments only, fingerprinted several times with
start shifts that divide one hop, so the search can place a query finer than the hop.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from fpkit.audio import AudioError, segment
from fpkit.config import AudioConfig
from fpkit.model import Fingerprinter

REFERENCE_MIN_FILL = 0.5  # a stored song's last segment may be half real audio
SILENCE_PEAK = 1e-4  # -80 dBFS: quieter input holds nothing to fingerprint


@dataclass(frozen=True)
class QueryPrints:
    """A query fingerprinted at several start shifts within one hop."""

    shifts_s: np.ndarray  # (S,) seconds cut from the query start for each copy, ascending
    prints: list[np.ndarray]  # per shift: (n_s, d) float32, segment i starts at shift + i * hop


def embed_segments(model: Fingerprinter, segments: torch.Tensor, batch_size: int) -> np.ndarray:
    """Segments (n, samples) -> unit-norm fingerprints (n, d) float32, batched on the model's device."""
    device = next(model.parameters()).device
    out = [np.zeros((0, model.dims.emb_dim), dtype=np.float32)]
    with torch.inference_mode():
        for start in range(0, segments.shape[0], batch_size):
            batch = segments[start : start + batch_size].to(device, non_blocking=True)
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out)


def reference_prints(model: Fingerprinter, wave: np.ndarray, audio: AudioConfig, batch_size: int) -> np.ndarray:
    """A song (samples,) at the model rate -> one fingerprint per hop (n, d) float32."""
    segments = segment(torch.from_numpy(wave), audio.segment_samples, audio.hop_samples, REFERENCE_MIN_FILL)
    return embed_segments(model, segments, batch_size)


def query_prints(
    model: Fingerprinter, wave: np.ndarray, audio: AudioConfig, shifts: int, batch_size: int
) -> QueryPrints:
    """A query (samples,) of at least one segment, fingerprinted at `shifts` starts within one hop.

    All copies go through the model in the same batches.
    """
    seg, hop = audio.segment_samples, audio.hop_samples
    offsets = sorted({round(k * hop / shifts) for k in range(shifts)})
    tensor = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    # A copy too short for one whole segment gets one zero-padded segment (as a stored song's
    # last one is): without it a query under 1.5 s could only be placed on the hop grid.
    parts = [segment(tensor[o:], seg, hop, 1.0 if len(wave) - o >= seg else REFERENCE_MIN_FILL) for o in offsets]
    prints = embed_segments(model, torch.cat(parts), batch_size)
    bounds = np.cumsum([0] + [p.shape[0] for p in parts])
    return QueryPrints(
        shifts_s=np.array(offsets, dtype=np.float64) / audio.sample_rate,
        prints=[prints[a:b] for a, b in itertools.pairwise(bounds)],
    )


def check_usable(wave: np.ndarray, name: str, audio: AudioConfig, min_samples: int | None = None) -> None:
    """Raise `AudioError` naming `name` when `wave` is shorter than `min_samples` or silent."""
    need = audio.segment_samples if min_samples is None else min_samples
    if len(wave) < need:
        raise AudioError(
            f"{name}: too short ({len(wave) / audio.sample_rate:.2f} s, needs {need / audio.sample_rate:g} s)"
        )
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: silent (peak below -80 dBFS)")


def content_hash(wave: np.ndarray) -> str:
    """Identity of a song: a hash of its decoded samples at the model rate.

    Hashing decoded audio rather than file bytes makes a re-tagged file, or the same audio
    saved as WAV and as FLAC, one song.
    """
    return hashlib.sha256(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()[:32]
