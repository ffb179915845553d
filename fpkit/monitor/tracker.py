"""The span logic: segments' fingerprints and index hits in, spans out, as the segments arrive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fpkit.config import AudioConfig, SearchConfig
from fpkit.db.rescore import Fingerprints
from fpkit.db.search import SongTable, lead_scores
from fpkit.monitor.alignments import Alignments, alignment_similarities, candidate_alignments, typical_similarity
from fpkit.monitor.path import best_path, bridge_to_song_ends, extend_runs, label_runs, switch_costs

LAG_S = 20.0  # audio seen past a segment before its label is final
MAX_CANDIDATES = 64  # alignments followed at once, those whose hits add up to the most similarity
MIN_HITS = 2  # hits an alignment needs within the window of followed segments to be a candidate
# A span is carried on to its song's last heard row over at most BRIDGE_S of segments that the path gave
# to no song, when their mean similarity at the span's alignment reaches BRIDGE_LEVEL: fade-outs and
# quiet tails drown in background noise (segments at 0.4-0.7 where a song ends), and a song played
# to its end rarely stops a few seconds short of it. Set on training-side recordings
# (docs/monitor.md): unknown music at a fixed alignment has a median similarity of 0.08 and a 90th
# percentile of 0.41 per segment (shipped model); 3-6 s and 0.4-0.5 gave the same spans, 0.3 let a
# span take 4 s of unknown music. Only ends: bridging starts to the song's first row changed no span
# on those recordings, and on the test recordings it once took 3 s of unknown music as a quiet opening.
# Stored silence at a song's end (blank rows) is not carried on to: under noise it sounds like
# anything else that is not a stored song, so a span ends where the song was last heard.
BRIDGE_S = 4.0
BRIDGE_LEVEL = 0.5
# A span's edge moves out over the no-song segments beside it when the best stretch of them, at least
# EDGE_MIN_S and at most EDGE_MAX_S long, still resembles the song at the span's alignment: each of
# its segments earns its similarity less the larger of EDGE_LEVEL and EDGE_MARGIN above the segment's
# typical similarity to the rest of the song (`typical_similarity`). Quiet openings and tails score
# 0.4-0.7 under noise, often under the path's level (`search.monitor_level`); so do the partly heard
# segments at any edge, which the minimum length leaves out (one or two of them, then unknown audio at
# 0.08). The margin leaves out songs that resemble everything (drones, noise-like textures: unknown
# music scores 0.4-0.7 at any alignment of theirs). Set on training-side recordings (docs/monitor.md):
# levels 0.45-0.5, margins 0.15-0.2, 1.5 s and 4-16 s gave the same spans; without the margin, a level
# of 0.5 took three times the unknown time.
EDGE_LEVEL = 0.5
EDGE_MARGIN = 0.2
EDGE_MIN_S = 1.5
EDGE_MAX_S = 8.0
# A jump within the song while a span is open re-places the whole span at the new alignment when that
# explains the span's segments so far nearly as well (mean similarity at most REALIGN_MARGIN lower):
# an excerpt that starts in a passage the song repeats matches both places until the music parts, and
# the place it goes on from is the one it was at all along.
REALIGN_MARGIN = 0.05
TYPICAL_FAR_S = 5.0  # a segment's typical similarity to its song: to the rows this far or further from its own
REFINE_ROUNDS = 3  # times a window is decided again with the segments fetched next to its label changes


@dataclass(frozen=True)
class Span:
    """A stretch of the recording: one song at one alignment, or (song None) no known song."""

    start_s: float  # seconds into the recording
    end_s: float
    song: int | None  # position in the database's song table
    offset_s: float | None  # seconds into the song where the span starts
    score: float | None  # `span_decision`'s score


@dataclass(frozen=True)
class Decision:
    score: float
    accepted: bool


def span_decision(similarities: np.ndarray, other_best: float, audio: AudioConfig, search: SearchConfig) -> Decision:
    """Whether a span is a match, from its segments' similarities (n,) to the alignment's stored rows.

    The search's rule with the span as one query: the mean cosine similarity plus
    `search.lead_weight` times its lead over `other_best`, the mean similarity of the span at the
    best alignment in any other song (0 when its segments hit none), against the threshold for a
    query of the span's length. Every span the monitor reports passes here, so a change to how
    search scores a query belongs here as well.
    """
    duration_s = (len(similarities) - 1) * audio.hop_s + audio.segment_s
    score = float(lead_scores(np.array([np.mean(similarities), other_best]), search.lead_weight)[0])
    return Decision(score, score >= search.threshold_for(duration_s))


@dataclass
class _OpenSpan:
    """A span still growing: per segment its diagonal, similarities at diagonal, -1 and +1, and whether they count."""

    song: int
    first: int  # first segment
    last_diag: int
    diags: list[np.ndarray] = field(default_factory=list)
    sims: list[np.ndarray] = field(default_factory=list)  # (3, m) blocks: diag - 1, diag, diag + 1
    counted: list[np.ndarray] = field(default_factory=list)  # (m,) blocks: fingerprinted, stored row not silence
    scanned: list[np.ndarray] = field(default_factory=list)  # (m,) blocks: fingerprinted
    prints: list[np.ndarray] = field(default_factory=list)  # (m, d) blocks, zero where not fingerprinted
    segments: int = 0
    # With a lead weight: the segments' index hits (m, k), to score other songs.
    hit_rows: list[np.ndarray] = field(default_factory=list)
    hit_sims: list[np.ndarray] = field(default_factory=list)


class SpanTracker:
    """Turns per-segment fingerprints and index hits into spans, as the segments arrive.

    `push` the fingerprints (n, d) of consecutive segments with their hits (n, k); a span comes
    back once `lag` to 2 `lag` segments after its end have been seen. `finish` closes the rest.

    Not every segment needs to be fingerprinted and searched: the ones pushed as not `scanned`
    take the mean of their neighbours' similarities while the labels are decided, and those next
    to a change of label are fingerprinted on request (`fetch`: recording segments (m,) -> their
    fingerprints (m, d)) and the labels decided again, so that the edges keep the hop's precision.
    """

    def __init__(
        self,
        vectors: Fingerprints,
        songs: SongTable,
        song_durations_s: np.ndarray,
        audio: AudioConfig,
        search: SearchConfig,
        gaps: bool = False,
        lag: int | None = None,
        fetch: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.vectors = vectors
        self.songs = songs
        self.song_durations_s = song_durations_s
        self.audio = audio
        self.search = search
        self.gaps = gaps
        self.lag = max(1, lag if lag is not None else round(LAG_S / audio.hop_s))
        self.fetch = fetch
        dim = vectors.shape[1]
        self._prints = np.zeros((0, dim), dtype=np.float32)
        self._rows = np.zeros((0, search.segment_k), dtype=np.int64)
        self._sims = np.zeros((0, search.segment_k), dtype=np.float32)
        self._scanned = np.zeros(0, dtype=bool)  # which buffered segments have fingerprints and hits
        self._origin = 0  # recording segment of the first buffered row
        self._open: _OpenSpan | None = None
        self._covered_s = 0.0  # the recording is reported up to here
        self._duration_s: float | None = None
        self._heard: dict[int, int] = {}  # song -> `_heard_rows`

    @property
    def decided(self) -> int:
        """Segments whose labels are final: the first one still buffered."""
        return self._origin

    def push(
        self, prints: np.ndarray, hit_rows: np.ndarray, hit_sims: np.ndarray, scanned: np.ndarray | None = None
    ) -> list[Span]:
        """Segments that follow the ones pushed before; `scanned` (n,) says which have fingerprints and hits (all)."""
        scanned = np.ones(len(prints), dtype=bool) if scanned is None else scanned
        if not scanned.all() and self.fetch is None:
            raise ValueError("segments that were not scanned need a fetch to fingerprint them")
        self._prints = np.concatenate([self._prints, np.where(scanned[:, None], prints, 0.0).astype(np.float32)])
        self._rows = np.concatenate([self._rows, np.where(scanned[:, None], hit_rows, -1)])
        self._sims = np.concatenate([self._sims, hit_sims])
        self._scanned = np.concatenate([self._scanned, scanned])
        spans: list[Span] = []
        # A lag's worth at a time, each decided on the lag after it: the same labels however the
        # segments arrive, and few candidates to follow at once.
        while len(self._prints) >= 2 * self.lag:
            spans += self._decide(self.lag, 2 * self.lag)
        return spans

    def finish(self, duration_s: float) -> list[Span]:
        """Decide every remaining segment and close the last span; the recording lasted `duration_s`."""
        self._duration_s = duration_s
        spans = self._decide(len(self._prints), len(self._prints))
        if self._open is not None:
            spans += self._close(self._open)
            self._open = None
        if self.gaps and duration_s > self._covered_s:
            spans.append(Span(self._covered_s, duration_s, None, None, None))
        self._covered_s = duration_s
        return spans

    def _decide(self, commit: int, seen: int) -> list[Span]:
        """Label the first `seen` buffered segments, make the first `commit` of them final and drop those."""
        if commit <= 0:
            return []
        found = candidate_alignments(
            self._rows[:seen], self._sims[:seen], self._origin, self.songs, MAX_CANDIDATES, MIN_HITS
        )
        initial = -1
        if self._open is not None:
            initial = found.find(self._open.song, self._open.last_diag)
            if initial < 0:  # the open span's alignment stays a candidate while it lasts
                found = Alignments(np.append(found.song, self._open.song), np.append(found.diag, self._open.last_diag))
                initial = len(found) - 1
        segments = self._origin + np.arange(seen)
        sims = alignment_similarities(self._prints[:seen], segments, found, self.vectors, self.songs)  # (K, seen)
        for refined in range(REFINE_ROUNDS + 1):
            path, labels = self._labels(found, sims, initial, seen)
            # Fingerprinted as well: the segments next to a change of label, and those the bridge or an
            # edge gave a run on weaker evidence than the path's.
            changes = np.flatnonzero(np.diff(labels))  # between segment t and t + 1
            weak = labels != path
            weak[changes] = weak[changes + 1] = True
            wanted = np.flatnonzero(weak & ~self._scanned[:seen])
            if len(wanted) == 0 or refined == REFINE_ROUNDS or self.fetch is None:
                break
            self._prints[wanted] = self.fetch(self._origin + wanted)
            self._scanned[wanted] = True
            sims[:, wanted] = alignment_similarities(
                self._prints[wanted], segments[wanted], found, self.vectors, self.songs
            )
        spans = self._commit(labels[:commit], found, sims)
        self._prints, self._rows, self._sims = self._prints[commit:], self._rows[commit:], self._sims[commit:]
        self._scanned = self._scanned[commit:]
        self._origin += commit
        return spans

    def _labels(self, found: Alignments, sims: np.ndarray, initial: int, seen: int) -> tuple[np.ndarray, np.ndarray]:
        """The best path's labels (seen,) of the first `seen` buffered segments, and with the bridge and edges."""
        scanned = self._scanned[:seen]
        filled = _between_scanned(sims, scanned)
        path = best_path(filled - self.search.monitor_level, switch_costs(found), initial)
        bridge = round(BRIDGE_S / self.audio.hop_s)
        heard = np.array([self._heard_rows(int(song)) for song in found.song])
        labels = bridge_to_song_ends(path, found, filled, self._origin, heard, bridge, BRIDGE_LEVEL)
        edge_min, edge_max = round(EDGE_MIN_S / self.audio.hop_s), round(EDGE_MAX_S / self.audio.hop_s)

        def edge_gains(label: int, segments: np.ndarray) -> np.ndarray:
            gains = np.zeros(len(segments))
            known = scanned[segments]
            gains[known] = self._edge_gains(found, sims, label, segments[known])
            return _between_scanned(gains[None, :], known)[0]

        return path, extend_runs(labels, edge_gains, edge_max, edge_min)

    def _edge_gains(self, found: Alignments, sims: np.ndarray, label: int, segments: np.ndarray) -> np.ndarray:
        """What scanned buffered `segments` (m,) earn on alignment `label` beside its run (`extend_runs`)."""
        song, diag = int(found.song[label]), int(found.diag[label])
        first, count = int(self.songs.first_rows[song]), int(self.songs.counts[song])
        aligned = self._origin + segments + diag  # rows within the song
        song_vectors = np.asarray(self.vectors[first : first + count], dtype=np.float32)
        far = round(TYPICAL_FAR_S / self.audio.hop_s)
        typical = typical_similarity(self._prints[segments], song_vectors, aligned, far)
        gains = sims[label, segments] - np.maximum(EDGE_LEVEL, typical + EDGE_MARGIN)
        return np.where((aligned >= 0) & (aligned < count), gains, -np.inf)  # never past the song's ends

    def _heard_segments(self, song: int, diag: int, segments: np.ndarray) -> np.ndarray:
        """(m,) bool: which recording `segments` (m,) the alignment gives a stored row that is not silence."""
        local = segments + diag
        inside = (local >= 0) & (local < self.songs.counts[song])
        rows = np.asarray(self.vectors[self.songs.first_rows[song] + np.where(inside, local, 0)])
        return inside & rows.any(axis=1)

    def _heard_rows(self, song: int) -> int:
        """The rows of `song` up to its last one that is not stored silence (a zero fingerprint)."""
        if song not in self._heard:
            first = int(self.songs.first_rows[song])
            rows = np.asarray(self.vectors[first : first + int(self.songs.counts[song])])
            heard = np.flatnonzero(rows.any(axis=1))
            self._heard[song] = int(heard[-1]) + 1 if len(heard) else 0
        return self._heard[song]

    def _commit(self, labels: np.ndarray, found: Alignments, sims: np.ndarray) -> list[Span]:
        spans: list[Span] = []
        for a, b in label_runs(labels):
            label = int(labels[a])
            run = self._open
            if label < 0:
                if run is not None:
                    spans += self._close(run)
                    self._open = None
                continue
            song, diag = int(found.song[label]), int(found.diag[label])
            if run is not None and run.song == song and abs(diag - run.last_diag) > 1:
                self._realign(run, diag)
            if run is None or run.song != song or abs(diag - run.last_diag) > 1:
                if run is not None:
                    spans += self._close(run)
                run = self._open = _OpenSpan(song, self._origin + a, diag)
            segments = self._origin + np.arange(a, b)
            run.last_diag = diag
            run.diags.append(np.full(b - a, diag, dtype=np.int64))
            run.sims.append(self._neighbour_sims(song, diag, self._prints[a:b], segments, sims[label, a:b]))
            run.counted.append(self._scanned[a:b] & self._heard_segments(song, diag, segments))
            run.scanned.append(self._scanned[a:b])
            run.prints.append(self._prints[a:b])
            run.segments += int(b - a)
            if self.search.lead_weight > 0:
                run.hit_rows.append(self._rows[a:b])
                run.hit_sims.append(self._sims[a:b])
        return spans

    def _neighbour_sims(
        self, song: int, diag: int, prints: np.ndarray, segments: np.ndarray, at_diag: np.ndarray | None = None
    ) -> np.ndarray:
        """(3, m): how `prints` (m, d) (recording `segments` (m,)) match diagonals diag - 1, diag, diag + 1.

        `at_diag` (m,), when given, are those at `diag`, already known.
        """
        near = [diag - 1, diag + 1] if at_diag is not None else [diag - 1, diag, diag + 1]
        found = alignment_similarities(
            prints, segments, Alignments(np.full(len(near), song), np.array(near)), self.vectors, self.songs
        )
        return found if at_diag is None else np.stack([found[0], at_diag, found[1]])

    def _realign(self, run: _OpenSpan, diag: int) -> None:
        """Re-place the open `run` at `diag` of its song when that explains it nearly as well (`REALIGN_MARGIN`)."""
        segments = run.first + np.arange(run.segments)
        prints, scanned = np.concatenate(run.prints), np.concatenate(run.scanned)
        sims = self._neighbour_sims(run.song, diag, prints, segments)
        counted = scanned & self._heard_segments(run.song, diag, segments)
        local = segments + diag
        judged = counted | (scanned & ((local < 0) | (local >= self.songs.counts[run.song])))  # past the song: 0
        old_sims, old_counted = np.concatenate(run.sims, axis=1)[1], np.concatenate(run.counted)
        if not counted.any() or not old_counted.any():
            return
        if np.mean(sims[1][judged]) < np.mean(old_sims[old_counted]) - REALIGN_MARGIN:
            return
        run.diags, run.sims, run.counted = [np.full(run.segments, diag, dtype=np.int64)], [sims], [counted]
        run.last_diag = diag

    def _close(self, run: _OpenSpan) -> list[Span]:
        """The span (with the gap before it when gaps are listed), or nothing when the decision rejects it."""
        diags, sims = np.concatenate(run.diags), np.concatenate(run.sims, axis=1)
        # Stored silence carried over by the bridge is no evidence, nor is a segment never fingerprinted:
        # the span is scored as the query it heard.
        counted = np.concatenate(run.counted)
        decision = span_decision(sims[1][counted], self._other_best(run, counted), self.audio, self.search)
        if not decision.accepted:
            return []
        hop, seg = self.audio.hop_s, self.audio.segment_s
        last = run.first + run.segments - 1
        # Each segment stands for the hop of time around its centre.
        start_s = 0.0 if run.first == 0 else run.first * hop + (seg - hop) / 2
        end_s = last * hop + (seg + hop) / 2
        if self._duration_s is not None and last == self._origin - 1:  # the recording's last segment
            end_s = self._duration_s
        values, counts = np.unique(diags, return_counts=True)
        diag = int(values[np.argmax(counts)])
        offset_s = start_s + (diag + _subhop(sims[:, (diags == diag) & counted].sum(axis=1))) * hop
        # Nothing plays before the song starts, and a span holding the song's first (last) segment
        # starts (ends) with the song, not a quarter of a segment inside it; spans never overlap.
        if offset_s < 0 or run.first + diag <= 0:
            start_s, offset_s = start_s - offset_s, 0.0
        if start_s < self._covered_s:
            start_s, offset_s = self._covered_s, offset_s + self._covered_s - start_s
        song_end_s = start_s + float(self.song_durations_s[run.song]) - offset_s
        end_s = song_end_s if last + diag >= self.songs.counts[run.song] - 1 else min(end_s, song_end_s)
        if self._duration_s is not None:
            end_s = min(end_s, self._duration_s)
        spans = []
        if self.gaps and start_s > self._covered_s:
            spans.append(Span(self._covered_s, start_s, None, None, None))
        spans.append(Span(start_s, end_s, run.song, offset_s, decision.score))
        self._covered_s = end_s
        return spans

    def _other_best(self, run: _OpenSpan, counted: np.ndarray) -> float:
        """The mean similarity of the span's `counted` segments at the best alignment in another song.

        The candidates are the alignments the span's own segments hit (at most `search.max_candidates`,
        most summed similarity first); 0 when they hit no other song. Only needed with a lead weight.
        """
        if self.search.lead_weight == 0 or not run.prints:
            return 0.0
        rows, hit_sims = np.concatenate(run.hit_rows), np.concatenate(run.hit_sims)
        found = candidate_alignments(rows, hit_sims, run.first, self.songs, len(rows) * rows.shape[1], 1)
        other = np.flatnonzero(found.song != run.song)[: self.search.max_candidates]
        found = Alignments(found.song[other], found.diag[other])
        if len(found) == 0:
            return 0.0
        prints = np.concatenate(run.prints)
        segments = run.first + np.arange(len(prints))
        sims = alignment_similarities(prints, segments, found, self.vectors, self.songs)  # (K, m)
        return float(sims[:, counted].mean(axis=1).max())


def _between_scanned(values: np.ndarray, scanned: np.ndarray) -> np.ndarray:
    """`values` (K, n) with each column not `scanned` (n,) the mean of the nearest scanned columns on either side."""
    if scanned.all() or not scanned.any():
        return values
    positions = np.arange(len(scanned))
    before = np.maximum.accumulate(np.where(scanned, positions, -1))
    after = np.minimum.accumulate(np.where(scanned, positions, len(scanned))[::-1])[::-1]
    before = np.where(before < 0, after, before)  # at the ends, the one neighbour there is
    after = np.where(after >= len(scanned), before, after)
    return (values[:, before] + values[:, after]) / 2


def _subhop(summed: np.ndarray) -> float:
    """Where between diagonals -1 and +1 the similarity peaks, in hops, from its sums (3,) there.

    The vertex of the parabola through the three sums, kept within half a hop of the middle.
    """
    before, middle, after = (float(x) for x in summed)
    curvature = before - 2 * middle + after
    if curvature >= 0:  # no peak in the middle: the diagonal itself is the best guess
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))
