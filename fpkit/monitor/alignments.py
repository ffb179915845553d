"""Alignments of a recording with stored songs, and the evidence for each: similarities per segment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpkit.db.rescore import Fingerprints
from fpkit.db.search import SongTable

TYPICAL_QUANTILE = 0.9  # a segment's typical similarity to a song: this quantile of its similarities to the rows


@dataclass(frozen=True)
class Alignments:
    """Candidate alignments: song (K,) and diagonal (K,), stored row = recording segment + diagonal."""

    song: np.ndarray
    diag: np.ndarray

    def __len__(self) -> int:
        return len(self.song)

    def find(self, song: int, diag: int) -> int:
        """Position of (song, diag), or -1."""
        where = np.flatnonzero((self.song == song) & (self.diag == diag))
        return int(where[0]) if len(where) else -1


def candidate_alignments(
    hit_rows: np.ndarray, hit_sims: np.ndarray, first_segment: int, songs: SongTable, keep: int, min_hits: int
) -> Alignments:
    """The alignments proposed by at least `min_hits` hits, at most `keep`, most summed similarity first.

    `hit_rows` (n, k) are the stored rows found for recording segments `first_segment` onwards
    (-1 for none) and `hit_sims` (n, k) their similarities; hits of similarity <= 0 are ignored.
    """
    n = hit_rows.shape[0]
    found = (hit_rows >= 0) & (hit_sims > 0)
    segment = first_segment + np.broadcast_to(np.arange(n)[:, None], hit_rows.shape)[found]
    rows = hit_rows[found]
    song = songs.song_of(rows)
    diag = rows - songs.first_rows[song] - segment
    if len(rows) == 0:
        return Alignments(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    # One int64 key per (song, diagonal), in that order: np.unique of rows (axis=0) is far slower.
    low = int(diag.min())
    width = int(diag.max()) - low + 1
    keys, which, counts = np.unique(
        song.astype(np.int64) * width + (diag - low), return_inverse=True, return_counts=True
    )
    support = np.bincount(which.ravel(), weights=hit_sims[found], minlength=len(keys))
    chosen = np.flatnonzero(counts >= min_hits)
    chosen = chosen[np.argsort(-support[chosen], kind="stable")][:keep]
    return Alignments(keys[chosen] // width, keys[chosen] % width + low)


def alignment_similarities(
    prints: np.ndarray, segments: np.ndarray, alignments: Alignments, vectors: Fingerprints, songs: SongTable
) -> np.ndarray:
    """Similarity (K, n) of each segment of `prints` (n, d) to the stored row each alignment gives it.

    `segments` (n,) are the recording segments the prints belong to; 0 where the row lies outside
    the song. `vectors` (rows, d) are the stored fingerprints.
    """
    local = alignments.diag[:, None] + segments[None, :]  # (K, n) row within the song
    inside = (local >= 0) & (local < songs.counts[alignments.song][:, None])
    rows = np.where(inside, songs.first_rows[alignments.song][:, None] + local, 0)
    stored = np.asarray(vectors[rows.ravel()], dtype=np.float32).reshape(*rows.shape, vectors.shape[1])  # (K, n, d)
    return np.where(inside, np.einsum("knd,nd->kn", stored, prints), 0.0)


def typical_similarity(prints: np.ndarray, song_vectors: np.ndarray, aligned: np.ndarray, far: int) -> np.ndarray:
    """How much each segment resembles its song away from its alignment: (m,).

    The `TYPICAL_QUANTILE` of the similarities of each segment of `prints` (m, d) to the song's
    rows `song_vectors` (L, d) that lie at least `far` rows from the row `aligned` (m,) gives it;
    infinite when the song has no such row.
    """
    sims = prints @ song_vectors.T  # (m, L)
    far_away = np.abs(np.arange(len(song_vectors))[None, :] - aligned[:, None]) >= far
    count = far_away.sum(axis=1)
    # np.quantile's linear interpolation for all rows at once (a call per row took 10x as long):
    # the rows left out sort last, and each segment reads its quantile among its first `count`.
    ordered = np.sort(np.where(far_away, sims, np.inf), axis=1)
    last = np.maximum(count - 1, 0)
    position = TYPICAL_QUANTILE * last
    below = np.floor(position).astype(np.int64)
    segment = np.arange(len(prints))
    low = np.where(count > 0, ordered[segment, below], 0.0)
    high = np.where(count > 0, ordered[segment, np.minimum(below + 1, last)], 0.0)
    return np.where(count > 0, low + (high - low) * (position - below), np.inf)
