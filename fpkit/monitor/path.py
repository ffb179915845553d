"""Labels per segment: the best path through "no song" and the candidate alignments, and its edges."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from fpkit.monitor.alignments import Alignments

SWITCH_PENALTY = 2.0  # cost of a change between no song and an alignment, or between two alignments
JUMP_PENALTY = 4.0  # cost of a jump between two alignments of one song (`switch_costs`)


def label_runs(labels: np.ndarray) -> Iterator[tuple[int, int]]:
    """The runs of equal labels in `labels` (n,): (start, stop) of each, in order."""
    cuts = np.flatnonzero(np.diff(labels)) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(labels)], strict=True):
        yield int(a), int(b)


def switch_costs(alignments: Alignments) -> np.ndarray:
    """Cost (K + 1, K + 1) of changing from label i to label j; label 0 is no song, 1 + a alignment a.

    A jump within one song (a diagonal further than one hop away) costs `JUMP_PENALTY`: songs
    repeat themselves, and a repeat that happens to lie closer to the recording's hop grid would
    otherwise win the middle of an excerpt from the alignment that plays through it.
    """
    song = np.r_[-1, alignments.song]
    diag = np.r_[0, alignments.diag]
    costs = np.full((len(song), len(song)), SWITCH_PENALTY)
    jump = (song[:, None] == song[None, :]) & (np.abs(diag[:, None] - diag[None, :]) > 1)
    costs[jump & (song[:, None] >= 0)] = JUMP_PENALTY
    np.fill_diagonal(costs, 0.0)
    return costs


def best_path(gains: np.ndarray, costs: np.ndarray, initial: int = -1) -> np.ndarray:
    """The labels (n,) in -1 (no song) .. K-1 that maximise the summed gains less the switch costs.

    `gains` (K, n) is what each segment earns on each alignment; no song earns 0. `costs`
    (K + 1, K + 1) is what a change from label i - 1 to label j - 1 costs (`switch_costs`). The
    path starts from label `initial`.
    """
    k, n = gains.shape
    earned = np.vstack([np.zeros((1, n)), gains])  # (K + 1, n): row 0 is no song
    score = -costs[initial + 1].copy()
    came_from = np.empty((n, k + 1), dtype=np.int64)
    for t in range(n):
        arrive = score[:, None] - costs  # (from, to)
        came_from[t] = np.argmax(arrive, axis=0)
        score = arrive[came_from[t], np.arange(k + 1)] + earned[:, t]
    path = np.empty(n, dtype=np.int64)
    state = int(np.argmax(score))
    for t in range(n - 1, -1, -1):
        path[t] = state
        state = int(came_from[t, state])
    return path - 1


def bridge_to_song_ends(
    labels: np.ndarray,
    alignments: Alignments,
    sims: np.ndarray,
    first_segment: int,
    heard_rows: np.ndarray,
    max_segments: int,
    level: float,
) -> np.ndarray:
    """`labels` (n,) with each run of an alignment carried on to its song's last heard row.

    A run is extended over the segments between it and the segment its alignment gives the song's
    last heard row (`heard_rows` (K,): the rows of each alignment's song up to its last one that
    is not stored silence) when they all have label -1 (no song), number at most `max_segments`
    and have a mean similarity at the run's alignment (`sims` (K, n)) of at least `level`. Stored
    silence after that row is not carried on to: nothing of the song is heard there. Labels are
    those of recording segments `first_segment` onwards, as `best_path` returns them.
    """
    out = labels.copy()
    for a, b in label_runs(labels):
        label = int(labels[a])
        if label < 0:
            continue
        heard = int(heard_rows[label] - alignments.diag[label] - first_segment)  # just past its last heard row
        if not b < heard <= min(len(labels), b + max_segments) or np.any(labels[b:heard] != -1):
            continue
        if float(np.mean(sims[label, b:heard])) >= level:
            out[b:heard] = label
    return out


def extend_runs(
    labels: np.ndarray,
    edge_gains: Callable[[int, np.ndarray], np.ndarray],
    max_segments: int,
    min_segments: int,
) -> np.ndarray:
    """`labels` (n,) with each run of an alignment extended over no-song segments beside it.

    On each side of a run, over at most `max_segments` segments of label -1 (and not taken by an
    earlier run's extension), in order away from the run, `edge_gains(label, segments)` gives what
    each segment earns on the run's label; the run takes the stretch with the largest positive
    sum, when it is at least `min_segments` long.
    """
    out = labels.copy()
    for a, b in label_runs(labels):
        label = int(labels[a])
        if label < 0:
            continue
        for step, edge in ((1, b), (-1, a - 1)):
            free: list[int] = []
            t = edge
            while 0 <= t < len(labels) and len(free) < max_segments and labels[t] == -1 and out[t] == -1:
                free.append(t)
                t += step
            if len(free) < min_segments:
                continue
            segments = np.array(free)
            gained = np.cumsum(edge_gains(label, segments))
            best = min_segments - 1 + int(np.argmax(gained[min_segments - 1 :]))
            if gained[best] > 0:
                out[segments[: best + 1]] = label
    return out
