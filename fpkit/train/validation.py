"""Per-epoch validation: loss on held-out songs and the paper's mini search.

The mini search stores the clean fingerprints of consecutive 1 s segments (0.5 s hop) of
validation songs, degrades the same stretches of audio (shifted by up to the augmentation
offset) as queries, and counts how often a query sequence of L segments finds exactly its
own start index, for L in `SEQUENCE_LENGTHS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fpkit.audio import crop
from fpkit.augment import Degrader
from fpkit.config import Config
from fpkit.features import framing
from fpkit.loss import contrastive_loss
from fpkit.model import Fingerprinter
from fpkit.train.data import Song

SEQUENCE_LENGTHS = (1, 3, 5, 10)
CHUNK_SEGMENTS = 20  # consecutive segments cut from one place in a song


@dataclass(frozen=True)
class ValidationSet:
    clean: torch.Tensor  # (M, window) reference segment windows (`fpkit.features.Framing`)
    queries: torch.Tensor  # (M, window) degraded, shifted segment windows
    chunk: np.ndarray  # (M,) which chunk each segment belongs to


@dataclass(frozen=True)
class ValidationResult:
    loss: float
    top1: dict[int, float]  # sequence length in segments -> exact-index hit rate


def make_validation_set(songs: list[Song], config: Config, degrader: Degrader, seed: int) -> ValidationSet:
    """Up to `train.val_segments` segment pairs from `songs` (same seed, same set)."""
    audio, augment = config.audio, config.augment
    rng = np.random.default_rng([seed, 7919])
    seg, hop = audio.segment_samples, audio.hop_samples
    f = framing(audio, config.features)
    margin = round(augment.offset_s * audio.sample_rate)
    context = round(augment.ir_max_s * audio.sample_rate)
    span = seg + (CHUNK_SEGMENTS - 1) * hop
    # Non-overlapping chunk slots over all songs, so no query can also match another chunk.
    slots = [(i, k * span) for i, song in enumerate(songs) for k in range(max(1, song.samples // span))]
    clean, queries, chunk_ids = [], [], []
    total = 0
    for chunk, slot in enumerate(rng.permutation(len(slots))):
        if total >= config.train.val_segments:
            break
        song_index, start = slots[slot]
        song = songs[song_index]
        wave = np.load(song.cache, mmap_mode="r")
        n = min(CHUNK_SEGMENTS, config.train.val_segments - total, max(1, (song.samples - start - seg) // hop + 1))
        length = f.window + (n - 1) * hop
        shift = int(rng.integers(-margin, margin + 1))
        stretch = crop(wave, start - f.left, length)
        noisy = degrader.degrade(crop(wave, start + shift - f.left - context, length + context), rng)[context:]
        for k in range(n):
            clean.append(stretch[k * hop : k * hop + f.window])
            queries.append(noisy[k * hop : k * hop + f.window])
            chunk_ids.append(chunk)
        total += n
    return ValidationSet(
        torch.from_numpy(np.stack(clean)), torch.from_numpy(np.stack(queries)), np.array(chunk_ids, dtype=np.int64)
    )


@torch.inference_mode()
def validate(model: Fingerprinter, data: ValidationSet, config: Config, device: torch.device) -> ValidationResult:
    model.eval()
    batch = config.train.batch_size // 2
    refs, qs, losses = [], [], []
    for start in range(0, len(data.clean), batch):
        r = model(data.clean[start : start + batch].to(device)).float()
        q = model(data.queries[start : start + batch].to(device)).float()
        if len(r) >= 2:
            losses.append(contrastive_loss(r, q, config.loss).item())
        refs.append(r.cpu())
        qs.append(q.cpu())
    top1 = sequence_top1(torch.cat(qs), torch.cat(refs), data.chunk, SEQUENCE_LENGTHS)
    return ValidationResult(float(np.mean(losses)) if losses else float("nan"), top1)


def sequence_top1(
    queries: torch.Tensor, refs: torch.Tensor, chunk: np.ndarray, lengths: tuple[int, ...]
) -> dict[int, float]:
    """Exact-index top-1 rate of query sequences against the reference sequence.

    `queries` and `refs` are (M, d) with row i of each at the same position; a query sequence
    of L rows starting at i (all in one chunk) scores every reference start j by the summed
    similarity of rows i..i+L-1 against j..j+L-1, and hits when j == i wins.
    """
    sim = (queries @ refs.T).numpy()  # (M, M)
    m = len(sim)
    result = {}
    for length in lengths:
        valid = m - length + 1
        if valid <= 0:
            result[length] = float("nan")
            continue
        acc = np.zeros((valid, valid), dtype=np.float64)
        for k in range(length):
            acc += sim[k : k + valid, k : k + valid]
        starts = np.arange(valid)
        same_chunk = chunk[starts] == chunk[starts + length - 1]
        if not same_chunk.any():
            result[length] = float("nan")
            continue
        hits = acc.argmax(axis=1) == starts
        result[length] = float(hits[same_chunk].mean())
    return result
