"""Query sampling and hit-rate metrics as small pure functions on result arrays.

Two synthetic protocols share the metric code and differ in where queries start and what
counts as the right offset:

* ``random``: starts drawn uniformly over all valid (song, start) pairs, continuous in time;
  *exact* means the returned offset is within `EXACT_TOLERANCE_S` of the true start, *near*
  within `NEAR_TOLERANCE_S`.
* ``aligned`` (the paper's table): starts on the segment grid (multiples of the hop);
  *exact* means the returned offset rounds to the true segment index, *near* to an index at
  most one away.

Every search result enters as `Outcomes` arrays. A tie in score between a right and a wrong
candidate counts against the query: the searcher cannot tell them apart, and counting it as a
hit would reward whichever order the tie happened to be broken in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Protocol = Literal["random", "aligned"]

UNKNOWN = -1  # `true_song` of a query from a song that is not in the database
NO_SONG = -1  # `cand_song` padding when the searcher returned fewer than K candidates
EXACT_TOLERANCE_S = 0.25
NEAR_TOLERANCE_S = 0.5
RANKS = (1, 3, 10)  # the k of every top-k figure

# Independent random streams under one seed: adding queries to one stream never moves another.
# The aligned protocol reuses the random stream (its positions snapped to the grid).
STREAM_RANDOM = 0
STREAM_UNKNOWN = 2


@dataclass(frozen=True)
class QueryPositions:
    """Where each query starts: `song` (N,) indexes the caller's song list, `start_s` (N,) seconds."""

    song: np.ndarray
    start_s: np.ndarray

    def __len__(self) -> int:
        return len(self.song)


@dataclass(frozen=True)
class Outcomes:
    """Search results for Q queries of one length, best candidate first.

    `cand_*` are (Q, K); a query with fewer than K candidates is padded with `NO_SONG` and a
    score of -inf. `true_start_s` is ignored for unknown queries.
    """

    true_song: np.ndarray  # (Q,) int64 database song id, or UNKNOWN
    true_start_s: np.ndarray  # (Q,) float64 where the query starts in its song, seconds
    cand_song: np.ndarray  # (Q, K) int64 database song ids
    cand_offset_s: np.ndarray  # (Q, K) float64 where each candidate places the query start, seconds
    cand_score: np.ndarray  # (Q, K) float64, higher is better
    matched: np.ndarray  # (Q,) bool: the searcher reported a match (best score above its threshold)
    search_s: np.ndarray  # (Q,) float64 wall-clock search time, seconds

    def __len__(self) -> int:
        return len(self.true_song)

    def select(self, mask: np.ndarray) -> Outcomes:
        """The queries where `mask` (Q,) is true."""
        return Outcomes(
            self.true_song[mask],
            self.true_start_s[mask],
            self.cand_song[mask],
            self.cand_offset_s[mask],
            self.cand_score[mask],
            self.matched[mask],
            self.search_s[mask],
        )


@dataclass(frozen=True)
class LengthMetrics:
    """Every deterministic figure for one query length; rates are fractions in [0, 1].

    `top*_exact`, `top1_near` and `song_top*` are over the known queries; a rate is None when
    there are no queries to take it over. `false_positive_rate` is over the unknown queries,
    `top1_accepted` over the known ones: right song first and reported as a match.
    """

    length_s: float | None  # None: whole recordings
    queries: int  # known queries
    unknown_queries: int
    top1_exact: float | None
    top1_near: float | None
    top3_exact: float | None
    top10_exact: float | None
    song_top1: float | None
    song_top3: float | None
    song_top10: float | None
    top1_accepted: float | None
    false_positive_rate: float | None


@dataclass(frozen=True)
class Timing:
    """Search time per query for one length, milliseconds; not reproducible between runs."""

    length_s: float | None
    mean_ms: float | None  # None when there were no queries
    p95_ms: float | None


def derive_rng(seed: int, stream: int, index: int | None = None) -> np.random.Generator:
    """The generator for one stream (positions) or one query of it (degradation)."""
    key = (stream,) if index is None else (stream, index)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def sample_positions(
    durations_s: Sequence[float], count: int, length_s: float, seed: int, stream: int
) -> QueryPositions:
    """`count` starts drawn uniformly over every (song, start) with the query inside the song.

    Songs shorter than `length_s` are never chosen; a song's chance is its usable length.
    """
    room = np.maximum(np.asarray(durations_s, dtype=np.float64) - length_s, 0.0)
    if room.sum() <= 0:
        raise ValueError(f"no song is longer than the longest query ({length_s:g} s)")
    rng = derive_rng(seed, stream)
    song = rng.choice(len(room), size=count, p=room / room.sum())
    start = rng.uniform(0.0, room[song])
    return QueryPositions(song.astype(np.int64), start)


def sample_aligned_positions(
    durations_s: Sequence[float], count: int, length_s: float, hop_s: float, seed: int, stream: int
) -> QueryPositions:
    """The positions `sample_positions` draws for the same seed and stream, moved back onto the segment grid.

    Drawing both protocols from the same positions makes them a paired comparison: the same
    songs and places, only the alignment differs.
    """
    positions = sample_positions(durations_s, count, length_s, seed, stream)
    return QueryPositions(positions.song, np.floor(positions.start_s / hop_s + 1e-9) * hop_s)


def correct_candidates(outcomes: Outcomes, protocol: Protocol, near: bool, hop_s: float) -> np.ndarray:
    """(Q, K) bool: the candidate names the right song at the right offset for `protocol`."""
    right_song = (outcomes.cand_song == outcomes.true_song[:, None]) & (outcomes.true_song[:, None] != UNKNOWN)
    if protocol == "aligned":
        found = np.round(outcomes.cand_offset_s / hop_s)
        truth = np.round(outcomes.true_start_s / hop_s)[:, None]
        return right_song & (np.abs(found - truth) <= (1 if near else 0))
    tolerance = NEAR_TOLERANCE_S if near else EXACT_TOLERANCE_S
    return right_song & (np.abs(outcomes.cand_offset_s - outcomes.true_start_s[:, None]) <= tolerance + 1e-9)


def first_correct_rank(correct: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(Q,) 1-based rank of the best correct candidate; inf where none is correct.

    Rank = 1 + the number of wrong candidates scoring at least as high (ties count against).
    """
    best = np.max(np.where(correct, score, -np.inf), axis=1, initial=-np.inf)
    valid = np.isfinite(score)
    ahead = np.sum(~correct & valid & (score >= best[:, None]), axis=1)
    return np.where(np.isfinite(best), 1.0 + ahead, np.inf)


def song_ranks(outcomes: Outcomes) -> np.ndarray:
    """(Q,) 1-based rank of the right song among the distinct candidate songs; inf where absent.

    A song's score is its best candidate's; rank = 1 + the number of other songs scoring at
    least as high. Unknown queries get inf.
    """
    song, score = outcomes.cand_song, outcomes.cand_score
    right = (song == outcomes.true_song[:, None]) & (outcomes.true_song[:, None] != UNKNOWN)
    best = np.max(np.where(right, score, -np.inf), axis=1, initial=-np.inf)
    rivals = np.where(~right & (song != NO_SONG) & (score >= best[:, None]), song, NO_SONG)
    rivals = np.sort(rivals, axis=1)
    first = np.ones_like(rivals, dtype=bool)
    first[:, 1:] = rivals[:, 1:] != rivals[:, :-1]
    ahead = np.sum(first & (rivals != NO_SONG), axis=1)
    return np.where(np.isfinite(best), 1.0 + ahead, np.inf)


def rate(hits: np.ndarray) -> float | None:
    """Fraction of true entries in a bool array; None for an empty one."""
    return float(np.mean(hits)) if len(hits) else None


def length_metrics(outcomes: Outcomes, length_s: float | None, protocol: Protocol, hop_s: float) -> LengthMetrics:
    """All deterministic figures for the queries of one length (known and unknown together)."""
    known = outcomes.select(outcomes.true_song != UNKNOWN)
    unknown = outcomes.select(outcomes.true_song == UNKNOWN)
    exact = first_correct_rank(correct_candidates(known, protocol, False, hop_s), known.cand_score)
    near = first_correct_rank(correct_candidates(known, protocol, True, hop_s), known.cand_score)
    songs = song_ranks(known)
    return LengthMetrics(
        length_s=length_s,
        queries=len(known),
        unknown_queries=len(unknown),
        top1_exact=rate(exact <= 1),
        top1_near=rate(near <= 1),
        top3_exact=rate(exact <= 3),
        top10_exact=rate(exact <= 10),
        song_top1=rate(songs <= 1),
        song_top3=rate(songs <= 3),
        song_top10=rate(songs <= 10),
        top1_accepted=rate((songs <= 1) & known.matched),
        false_positive_rate=rate(unknown.matched),
    )


def timing(outcomes: Outcomes, length_s: float | None) -> Timing:
    """Mean and 95th percentile of the per-query search time, milliseconds."""
    ms = outcomes.search_s * 1000.0
    if len(ms) == 0:
        return Timing(length_s, None, None)
    return Timing(length_s, float(np.mean(ms)), float(np.percentile(ms, 95)))
