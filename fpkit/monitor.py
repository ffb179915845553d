"""Monitoring: which stored songs play in a long recording or a live stream, from when to when.

The recording is fingerprinted once, at the database's hop, as its audio arrives (`SongPrints`),
and every segment is searched in the index. A hit on row r of song s by segment t proposes an
*alignment*: song s at diagonal k = r - t (segment t of the recording plays row t + k of the
song). `SpanTracker` turns the alignments into spans:

1. The alignments that collect hits are the candidates (`candidate_alignments`); for each, the
   similarity of every segment to the stored row it aligns the segment with
   (`alignment_similarities`).
2. A best path through "no song" and the candidates (`best_path`): a segment on an alignment
   earns its similarity minus `SEGMENT_LEVEL`, "no song" earns 0, every change costs
   `SWITCH_PENALTY` (`JUMP_PENALTY` within one song: `switch_costs`). Boundaries land where the
   evidence turns, to a segment or two; a short dip inside a song or a short lucky stretch of
   unknown audio does not pay for two changes.
3. A run that stops a few seconds short of its song's last row is carried on to it when the
   segments in between still resemble the song at that alignment (`bridge_to_song_ends`):
   fade-outs and quiet tails drown in background noise.
4. Consecutive segments of one song whose diagonal moves by at most one hop (sub-hop jitter,
   clock drift) form one span; a larger jump within the song (a loop, a repeat) starts another.
5. A span is kept when `span_decision` accepts it: the search's score (with its lead over the
   best other song) and threshold, with the span taken as one query.

A segment's label is final once `LAG_S` seconds of audio after it have been seen: spans are
reported as they close, and memory holds that lag, not the recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from time import monotonic

import numpy as np

from fpkit.audio import AudioError
from fpkit.config import AudioConfig, SearchConfig
from fpkit.db.rescore import Fingerprints
from fpkit.db.search import Searcher, SongTable, lead_scores
from fpkit.fingerprint import SongPrints, check_level

LAG_S = 20.0  # audio seen past a segment before its label is final
STEP_S = 10.0  # a live stream is fingerprinted and searched this often, seconds
FILE_BLOCK_S = 120.0  # audio fingerprinted and searched at once when it comes faster than live, seconds
# A segment on an alignment earns (similarity - SEGMENT_LEVEL). At 0.65 a segment clears the level
# once about half of it is in the song, so span edges fall where the song starts and stops: on songs
# held out from the shipped model's training, at 10 dB SNR, the edges came out 0.06 s late and 0.00 s
# late on average (sd 0.3 and 0.2 s); 0.5 put them 0.2 s outside, 0.7 split spans at quiet passages.
SEGMENT_LEVEL = 0.65
SWITCH_PENALTY = 2.0  # cost of a change between no song and an alignment, or between two alignments
JUMP_PENALTY = 4.0  # cost of a jump between two alignments of one song (`switch_costs`)
MAX_CANDIDATES = 64  # alignments followed at once, those whose hits add up to the most similarity
MIN_HITS = 2  # hits an alignment needs within the window of followed segments to be a candidate
# A span is carried on to its song's last row over at most BRIDGE_S of segments that the path gave
# to no song, when their mean similarity at the span's alignment reaches BRIDGE_LEVEL: fade-outs and
# quiet tails drown in background noise (segments at 0.4-0.7 where a song ends), and a song played
# to its end rarely stops a few seconds short of it. Set on training-side recordings
# (docs/monitor.md): unknown music at a fixed alignment has a median similarity of 0.08 and a 90th
# percentile of 0.41 per segment (shipped model); 3-6 s and 0.4-0.5 gave the same spans, 0.3 let a
# span take 4 s of unknown music. Only ends: bridging starts to the song's first row changed no span
# on those recordings, and on the test recordings it once took 3 s of unknown music as a quiet opening.
BRIDGE_S = 4.0
BRIDGE_LEVEL = 0.5


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
    prints: np.ndarray, first_segment: int, alignments: Alignments, vectors: Fingerprints, songs: SongTable
) -> np.ndarray:
    """Similarity (K, n) of each segment of `prints` (n, d) to the stored row each alignment gives it.

    0 where that row lies outside the song. `vectors` (rows, d) are the stored fingerprints.
    """
    n = prints.shape[0]
    local = alignments.diag[:, None] + first_segment + np.arange(n)[None, :]  # (K, n) row within the song
    inside = (local >= 0) & (local < songs.counts[alignments.song][:, None])
    rows = np.where(inside, songs.first_rows[alignments.song][:, None] + local, 0)
    stored = np.asarray(vectors[rows.ravel()], dtype=np.float32).reshape(*rows.shape, vectors.shape[1])  # (K, n, d)
    return np.where(inside, np.einsum("knd,nd->kn", stored, prints), 0.0)


def bridge_to_song_ends(
    labels: np.ndarray,
    alignments: Alignments,
    sims: np.ndarray,
    first_segment: int,
    songs: SongTable,
    max_segments: int,
    level: float,
) -> np.ndarray:
    """`labels` (n,) with each run of an alignment carried on to its song's last row.

    A run is extended over the segments between it and the segment its alignment gives the song's
    last row when they number at most `max_segments`, all have label -1 (no song) and their mean
    similarity at the run's alignment (`sims` (K, n)) reaches `level`. Labels are those of
    recording segments `first_segment` onwards, as `best_path` returns them.
    """
    out = labels.copy()
    cuts = np.flatnonzero(np.diff(labels)) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(labels)], strict=True):
        label = int(labels[a])
        if label < 0:
            continue
        song, diag = alignments.song[label], alignments.diag[label]
        tail = int(songs.counts[song] - diag - first_segment)  # just past the position of its last row
        if not 0 < tail - b <= max_segments or tail > len(labels):
            continue
        if np.all(labels[b:tail] == -1) and float(np.mean(sims[label, b:tail])) >= level:
            out[b:tail] = label
    return out


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


@dataclass
class _OpenSpan:
    """A span still growing: per segment its diagonal and the similarities at diagonal, -1 and +1."""

    song: int
    first: int  # first segment
    last_diag: int
    diags: list[np.ndarray] = field(default_factory=list)
    sims: list[np.ndarray] = field(default_factory=list)  # (3, m) blocks: diag - 1, diag, diag + 1
    segments: int = 0
    # With a lead weight: the segments' fingerprints (m, d) and index hits (m, k), to score other songs.
    prints: list[np.ndarray] = field(default_factory=list)
    hit_rows: list[np.ndarray] = field(default_factory=list)
    hit_sims: list[np.ndarray] = field(default_factory=list)


class SpanTracker:
    """Turns per-segment fingerprints and index hits into spans, as the segments arrive.

    `push` the fingerprints (n, d) of consecutive segments with their hits (n, k); a span comes
    back once `lag` to 2 `lag` segments after its end have been seen. `finish` closes the rest.
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
    ) -> None:
        self.vectors = vectors
        self.songs = songs
        self.song_durations_s = song_durations_s
        self.audio = audio
        self.search = search
        self.gaps = gaps
        self.lag = max(1, lag if lag is not None else round(LAG_S / audio.hop_s))
        dim = vectors.shape[1]
        self._prints = np.zeros((0, dim), dtype=np.float32)
        self._rows = np.zeros((0, search.segment_k), dtype=np.int64)
        self._sims = np.zeros((0, search.segment_k), dtype=np.float32)
        self._origin = 0  # recording segment of the first buffered row
        self._open: _OpenSpan | None = None
        self._covered_s = 0.0  # the recording is reported up to here
        self._duration_s: float | None = None

    def push(self, prints: np.ndarray, hit_rows: np.ndarray, hit_sims: np.ndarray) -> list[Span]:
        self._prints = np.concatenate([self._prints, prints])
        self._rows = np.concatenate([self._rows, hit_rows])
        self._sims = np.concatenate([self._sims, hit_sims])
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
        songs = self.songs
        rows, hit_sims, prints = self._rows[:seen], self._sims[:seen], self._prints[:seen]
        found = candidate_alignments(rows, hit_sims, self._origin, songs, MAX_CANDIDATES, MIN_HITS)
        initial = -1
        if self._open is not None:
            initial = found.find(self._open.song, self._open.last_diag)
            if initial < 0:  # the open span's alignment stays a candidate while it lasts
                found = Alignments(np.append(found.song, self._open.song), np.append(found.diag, self._open.last_diag))
                initial = len(found) - 1
        sims = alignment_similarities(prints, self._origin, found, self.vectors, songs)  # (K, seen)
        labels = best_path(sims - SEGMENT_LEVEL, switch_costs(found), initial)
        bridge = round(BRIDGE_S / self.audio.hop_s)
        labels = bridge_to_song_ends(labels, found, sims, self._origin, songs, bridge, BRIDGE_LEVEL)[:commit]
        spans = self._commit(labels, found, sims)
        self._prints, self._rows, self._sims = self._prints[commit:], self._rows[commit:], self._sims[commit:]
        self._origin += commit
        return spans

    def _commit(self, labels: np.ndarray, found: Alignments, sims: np.ndarray) -> list[Span]:
        spans: list[Span] = []
        cuts = np.flatnonzero(np.diff(labels)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(labels)], strict=True):
            label = int(labels[a])
            run = self._open
            if label < 0:
                if run is not None:
                    spans += self._close(run)
                    self._open = None
                continue
            song, diag = int(found.song[label]), int(found.diag[label])
            if run is None or run.song != song or abs(diag - run.last_diag) > 1:
                if run is not None:
                    spans += self._close(run)
                run = self._open = _OpenSpan(song, self._origin + int(a), diag)
            run.last_diag = diag
            run.diags.append(np.full(b - a, diag, dtype=np.int64))
            run.sims.append(self._neighbour_sims(song, diag, int(a), int(b), sims[label, a:b]))
            run.segments += int(b - a)
            if self.search.lead_weight > 0:
                run.prints.append(self._prints[a:b])
                run.hit_rows.append(self._rows[a:b])
                run.hit_sims.append(self._sims[a:b])
        return spans

    def _neighbour_sims(self, song: int, diag: int, a: int, b: int, at_diag: np.ndarray) -> np.ndarray:
        """(3, b - a): the similarities of buffered segments a..b-1 at diagonals diag - 1, diag, diag + 1."""
        side = Alignments(np.array([song, song]), np.array([diag - 1, diag + 1]))
        minus, plus = alignment_similarities(self._prints[a:b], self._origin + a, side, self.vectors, self.songs)
        return np.stack([minus, at_diag, plus])

    def _close(self, run: _OpenSpan) -> list[Span]:
        """The span (with the gap before it when gaps are listed), or nothing when the decision rejects it."""
        diags, sims = np.concatenate(run.diags), np.concatenate(run.sims, axis=1)
        decision = span_decision(sims[1], self._other_best(run), self.audio, self.search)
        if not decision.accepted:
            return []
        hop, seg = self.audio.hop_s, self.audio.segment_s
        last = run.first + run.segments - 1
        # Each segment stands for the hop of time around its centre (see SEGMENT_LEVEL).
        start_s = 0.0 if run.first == 0 else run.first * hop + (seg - hop) / 2
        end_s = last * hop + (seg + hop) / 2
        if self._duration_s is not None and last == self._origin - 1:  # the recording's last segment
            end_s = self._duration_s
        values, counts = np.unique(diags, return_counts=True)
        diag = int(values[np.argmax(counts)])
        offset_s = start_s + (diag + _subhop(sims[:, diags == diag].sum(axis=1))) * hop
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

    def _other_best(self, run: _OpenSpan) -> float:
        """The span's mean similarity at the best alignment in another song, as search scores its candidates.

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
        return float(alignment_similarities(prints, run.first, found, self.vectors, self.songs).mean(axis=1).max())


def _subhop(summed: np.ndarray) -> float:
    """Where between diagonals -1 and +1 the similarity peaks, in hops, from its sums (3,) there.

    The vertex of the parabola through the three sums, kept within half a hop of the middle.
    """
    before, middle, after = (float(x) for x in summed)
    curvature = before - 2 * middle + after
    if curvature >= 0:  # no peak in the middle: the diagonal itself is the best guess
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))


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
        # Fingerprints as soon as their windows are complete, kept no longer than the tracker needs them.
        batch_size = searcher.model.config.index.batch_size
        self.prints = SongPrints(searcher.model.model, self.audio, batch_size, chunk=1, keep=False)
        self.tracker = SpanTracker(
            searcher.vectors, searcher.songs, monitor.song_durations_s, self.audio, searcher.config, monitor.gaps
        )
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
        # waits for batches of FILE_BLOCK_S, which the model and the index handle far faster.
        waited_s = monotonic() - self._last_run  # since the last batch was done
        if pending_s < STEP_S or (pending_s < FILE_BLOCK_S and waited_s < STEP_S):
            return []
        spans = self._track(self.prints.feed(self._take()))
        self._last_run = monotonic()
        return spans

    def finish(self) -> list[Span]:
        """The last spans; raises `AudioError` for a recording shorter than one segment or silent."""
        seconds = self.seconds
        if self.prints.samples + self._pending_samples < self.audio.segment_samples:
            self._closed = True
            raise AudioError(f"{self.name}: too short ({seconds:.2f} s, needs {self.audio.segment_s:g} s)")
        spans = self.close()
        check_level(self.prints.samples, self.prints.peak, self.name, self.audio)  # silent: peak to peak, as index
        return spans

    def close(self) -> list[Span]:
        """The spans of the audio received so far, without checking it (after a failure or an interrupt)."""
        if self._closed:
            return []
        self._closed = True
        spans = self._track(self.prints.feed(self._take()))
        spans += self._track(self.prints.flush(1.0))  # whole segments only, as a query's
        return spans + self.tracker.finish(self.prints.samples / self.audio.sample_rate)

    def _take(self) -> np.ndarray:
        wave = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
        self._pending, self._pending_samples = [], 0
        return wave

    def _track(self, prints: np.ndarray) -> list[Span]:
        if len(prints) == 0:
            return []
        hit_sims, hit_rows = self.index.search(prints, self.segment_k)  # (n, k) each
        return self.tracker.push(prints, hit_rows, hit_sims)
