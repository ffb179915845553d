"""The paper's sequence search, with sub-hop offsets.

For every query segment FAISS returns its nearest stored rows. A hit on row r by segment i
proposes that the query starts at row r - i of r's song. The query is fingerprinted at S start
shifts within one hop (`fpkit.fingerprint.query_prints`): a start row c proposed by the copy
shifted by s seconds places the query at c * hop - s, so the placements form a grid of hop / S
seconds.

With `search.subhop_pooling: max` each copy scores the placements it proposed: the mean
similarity of its segments against the stored fingerprints at that alignment (rows outside the
song count as 0), and the best copy's placement wins. With `mean` every placement is scored by
every copy, a shifted copy's score interpolated linearly between the two stored rows it falls
between, and averaged over the copies, so that one copy's chance match does not win: for the
shipped model, trained to tolerate small misalignments, it placed 1-2 s queries within 0.25 s
more often, at slightly lower acceptance for 3-5 s (docs/database.md). The best placement per
song is reported.

With `search.refine_offsets` the reported candidates keep the song and score `max` gave them,
and only their placement moves to where the mean over the copies peaks, among the placements
proposed in that song and those within one hop: `mean`'s finer offsets without its lower scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from fpkit.audio import load_audio
from fpkit.config import InferenceConfig, SearchConfig, SubhopPooling
from fpkit.db.database import Database
from fpkit.db.index import set_nprobe
from fpkit.db.rescore import Fingerprints
from fpkit.fingerprint import QueryPrints, SilentAudio, check_usable, query_prints
from fpkit.model import LoadedModel


@dataclass(frozen=True)
class Alignment:
    """A query placed in a stored song."""

    song: int  # position in the files table
    offset_s: float  # where the query starts in the song, seconds
    score: float  # mean cosine similarity of the query sequence at this alignment, pooled over the query's copies


@dataclass(frozen=True)
class Match:
    ref: str  # stored path of the song
    offset_s: float  # seconds into the song where the query starts
    score: float  # mean cosine similarity, plus `search.lead_weight` times the lead over the best other song


@dataclass(frozen=True)
class SearchResult:
    query: str  # the query's name or path as given
    match: Match | None  # the best candidate when its score reaches the threshold
    candidates: list[Match]  # best alignment per song, best first, reported even below the threshold
    duration_s: float  # length of the query


@dataclass(frozen=True)
class SongTable:
    """Where each stored song's rows are: first row (S,) ascending and row count (S,)."""

    first_rows: np.ndarray
    counts: np.ndarray

    def song_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.first_rows, rows, side="right") - 1


def sequence_search(
    index: faiss.Index,
    vectors: Fingerprints,
    songs: SongTable,
    query: QueryPrints,
    hop_s: float,
    segment_k: int,
    max_candidates: int,
    pooling: SubhopPooling = "max",
    refine_top: int = 0,
) -> list[Alignment]:
    """The best alignment in each song that any query segment hit, best first.

    `vectors` (rows, d) are the stored fingerprints the index's ids point at (any float dtype, or a
    store's rows, which decode as they are read).
    Each query copy proposes at most `max_candidates` starts, those whose hits add up to the
    highest similarity: a start proposed by many segments comes first, one stray hit last.
    `pooling` is `search.subhop_pooling` (module docstring); the first `refine_top` alignments are
    re-placed by `refine_offsets`.
    """
    everything = np.concatenate(query.prints)  # (sum n_s, d)
    similarity, hits = index.search(everything, segment_k)  # (sum n_s, k), -1 where fewer rows exist
    proposed = []  # (c, 2) song and start row per copy
    first = 0
    for prints in query.prints:
        n = prints.shape[0]
        rows, votes = hits[first : first + n], similarity[first : first + n]
        first += n
        position = np.broadcast_to(np.arange(n)[:, None], rows.shape)
        found = rows >= 0
        song = songs.song_of(rows[found])
        start = rows[found] - position[found] - songs.first_rows[song]  # start row within the song
        pairs, which = np.unique(np.stack([song, start], axis=1), axis=0, return_inverse=True)  # (c, 2)
        if len(pairs) > max_candidates:
            support = np.bincount(which.ravel(), weights=votes[found], minlength=len(pairs))
            pairs = pairs[np.argpartition(-support, max_candidates)[:max_candidates]]
        proposed.append(pairs)
    # The copies' shifts differ by less than a hop, so no two copies propose the same placement.
    song_id = np.concatenate([pairs[:, 0] for pairs in proposed])
    offset = np.concatenate([pairs[:, 1] * hop_s - s for pairs, s in zip(proposed, query.shifts_s, strict=True)])
    if pooling == "max":
        own = zip(query.prints, proposed, strict=True)
        score = np.concatenate([_alignment_scores(p, vectors, songs, pairs[:, 0], pairs[:, 1]) for p, pairs in own])
    else:
        score = _placement_scores(query, vectors, songs, song_id, offset, hop_s)
    order = np.argsort(-score, kind="stable")
    _, best_per_song = np.unique(song_id[order], return_index=True)  # first (best) row of each song
    best = order[np.sort(best_per_song)]
    aligned = [Alignment(int(song_id[i]), float(offset[i]), float(score[i])) for i in best]
    return refine_offsets(query, vectors, songs, aligned, hop_s, refine_top, song_id, offset)


def refine_offsets(
    query: QueryPrints,
    vectors: Fingerprints,
    songs: SongTable,
    found: list[Alignment],
    hop_s: float,
    count: int,
    proposed_song: np.ndarray,
    proposed_offset: np.ndarray,
) -> list[Alignment]:
    """The first `count` alignments moved to where the copies' mean similarity (`_placement_scores`)
    is highest; songs, scores and order stay.

    Tried for an alignment: every placement any copy proposed in its song (`proposed_*`, (c,)),
    and the placements the copies can make within one hop of its own (row * hop - shift), so
    offsets stay on the sub-hop grid; its own placement wins ties.
    """
    head = found[:count]
    if not head:
        return found
    shifts = query.shifts_s
    tried_song, tried_offset, owner = [], [], []
    for n, a in enumerate(head):
        rows = np.round((a.offset_s + shifts) / hop_s)[:, None] + np.arange(-1, 2)[None, :]  # (S, 3)
        nearby = (rows * hop_s - shifts[:, None]).ravel()
        nearby = nearby[np.abs(nearby - a.offset_s) <= hop_s + 1e-9]
        offsets = np.concatenate([[a.offset_s], nearby, proposed_offset[proposed_song == a.song]])
        tried_song.append(np.full(len(offsets), a.song))
        tried_offset.append(offsets)
        owner.append(np.full(len(offsets), n))
    song, offset, which = (np.concatenate(x) for x in (tried_song, tried_offset, owner))
    score = _placement_scores(query, vectors, songs, song, offset, hop_s)
    moved = []
    for n, a in enumerate(head):
        mine = np.flatnonzero(which == n)
        moved.append(Alignment(a.song, float(offset[mine[np.argmax(score[mine])]]), a.score))
    return moved + found[count:]


def _placement_scores(
    query: QueryPrints, vectors: Fingerprints, songs: SongTable, song: np.ndarray, offset_s: np.ndarray, hop_s: float
) -> np.ndarray:
    """Mean over the query's copies of each copy's similarity (c,) with the query placed at `offset_s` in `song`.

    The copy cut `shift` seconds into the query starts at row (offset + shift) / hop, in general
    between two rows: its score there is interpolated between its scores at the two.
    """
    total = np.zeros(len(song))
    for shift_s, prints in zip(query.shifts_s, query.prints, strict=True):
        row = (offset_s + shift_s) / hop_s
        below = np.floor(row + 1e-6)  # a placement on a row (up to float error) is scored there
        frac = np.clip(row - below, 0.0, 1.0)
        below = below.astype(np.int64)
        between = frac > 0
        wanted = np.concatenate([np.stack([song, below], axis=1), np.stack([song, below + 1], axis=1)[between]])
        pairs, which = np.unique(wanted, axis=0, return_inverse=True)
        at = _alignment_scores(prints, vectors, songs, pairs[:, 0], pairs[:, 1])[which.ravel()]
        score = at[: len(song)] * (1.0 - frac)
        score[between] += at[len(song) :] * frac[between]
        total += score
    return total / len(query.prints)


def _alignment_scores(
    prints: np.ndarray, vectors: Fingerprints, songs: SongTable, song: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Mean similarity (c,) of the query `prints` (n, d) placed at row `start` (c,) of `song` (c,)."""
    n = prints.shape[0]
    local = start[:, None] + np.arange(n)[None, :]  # (c, n)
    inside = (local >= 0) & (local < songs.counts[song][:, None])
    rows = np.where(inside, songs.first_rows[song][:, None] + local, 0)
    stored = np.asarray(vectors[rows.ravel()], dtype=np.float32).reshape(*rows.shape, prints.shape[1])  # (c, n, d)
    similarity = np.einsum("cnd,nd->cn", stored, prints)
    return np.where(inside, similarity, 0.0).sum(axis=1) / n


def lead_scores(similarity: np.ndarray, lead_weight: float) -> np.ndarray:
    """Best-first mean cosines (n,) of n songs -> each plus `lead_weight` times its lead over the best other.

    A song no query segment hit counts as similarity 0, so a lone candidate leads by its own score.
    Lead-weighted scores keep the order, and separate known from unknown queries better: unknown
    audio tends to resemble several songs about equally.
    """
    if len(similarity) == 0:
        return similarity
    runner_up = similarity[1] if len(similarity) > 1 else 0.0
    best_other = np.where(np.arange(len(similarity)) == 0, runner_up, similarity[0])
    return similarity + lead_weight * (similarity - best_other)


class Searcher:
    """Searches one database with its model; load once, query many times."""

    def __init__(
        self,
        db: Database,
        model: LoadedModel,
        config: SearchConfig | None = None,
        inference: InferenceConfig | None = None,
    ) -> None:
        """`config` and `inference` (segments per model call, precision) default to the model's own."""
        db.check_model(model)
        self.db = db
        self.model = model
        self.config = config if config is not None else model.config.search
        self.inference = inference if inference is not None else model.config.inference
        model.model.set_precision(self.inference.precision)
        self.index = db.load_index()
        set_nprobe(self.index, self.config.nprobe)
        first, counts = db.song_bounds()
        self.songs = SongTable(first, counts)
        self.vectors = db.vectors
        self.paths = [record.path for record in db.songs]

    def search_file(self, path: str | Path) -> SearchResult:
        """Decode any audio file and search it; raises `AudioError` naming the file."""
        wave = load_audio(path, self.model.config.audio.sample_rate)
        return self.search_wave(wave, str(path))

    def search_wave(self, wave: np.ndarray, query_name: str = "<wave>") -> SearchResult:
        """Search a mono float32 query (samples,) at the model rate, at least one segment long."""
        found = self.align(wave, query_name)
        cfg = self.config
        scores = lead_scores(np.array([a.score for a in found]), cfg.lead_weight)[: cfg.top_k]
        candidates = [
            Match(self.paths[a.song], a.offset_s + cfg.reverb_delay_s, float(s))
            for a, s in zip(found[: cfg.top_k], scores, strict=True)
        ]
        duration_s = len(wave) / self.model.config.audio.sample_rate
        best = candidates[0] if candidates and candidates[0].score >= cfg.threshold_for(duration_s) else None
        return SearchResult(query_name, best, candidates, duration_s)

    def align(self, wave: np.ndarray, query_name: str = "<wave>") -> list[Alignment]:
        """The best alignment of the query in every song it hit, best first; none for a silent query."""
        audio = self.model.config.audio
        try:
            check_usable(wave, query_name, audio)
        except SilentAudio:
            return []  # valid audio in which no song plays
        cfg = self.config
        prints = query_prints(self.model.model, wave, audio, cfg.subhop_shifts, self.inference.batch_size)
        return sequence_search(
            self.index,
            self.vectors,
            self.songs,
            prints,
            audio.hop_s,
            cfg.segment_k,
            cfg.max_candidates,
            cfg.subhop_pooling,
            cfg.top_k if cfg.refine_offsets else 0,
        )
