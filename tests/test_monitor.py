from __future__ import annotations

import itertools
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, indexed_db, loaded, save_model, unit_rows
from synth import make_song, write_songs

import fpkit.monitor.session
import fpkit.monitor.tracker
from fpkit.audio import AudioError, segment_starts
from fpkit.config import AudioConfig, SearchConfig, config_from_dict
from fpkit.db import Searcher
from fpkit.db.search import SongTable, lead_scores
from fpkit.fingerprint import blank_segments, embed_at
from fpkit.model import build_model
from fpkit.monitor import (
    FILE_BLOCK_S,
    JUMP_PENALTY,
    LAG_S,
    STEP_S,
    SWITCH_PENALTY,
    Alignments,
    Monitor,
    Span,
    SpanTracker,
    best_path,
    bridge_to_song_ends,
    candidate_alignments,
    extend_runs,
    span_decision,
    switch_costs,
    typical_similarity,
)
from fpkit.monitor.alignments import TYPICAL_QUANTILE
from fpkit.monitor.scan import RecordingPrints

AUDIO = AudioConfig()  # 1 s segments every 0.5 s
DIM = 64  # random unit vectors this wide are nearly orthogonal: unknown segments score about 0 +- 0.13


# --- the span logic on synthetic fingerprints --------------------------------------------------


class Songs:
    """Stored fingerprints of songs of the given lengths (rows), random unit vectors, with an exact index."""

    def __init__(self, rows: list[int], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.vectors = unit_rows(self.rng.standard_normal((sum(rows), DIM)))
        self.table = SongTable(np.cumsum([0, *rows[:-1]]), np.array(rows))
        self.durations = np.array(rows, dtype=np.float64) * AUDIO.hop_s + AUDIO.segment_s - AUDIO.hop_s
        self.index = faiss.IndexFlatIP(DIM)
        self.index.add(self.vectors)

    def play(self, song: int, first_row: int, count: int) -> np.ndarray:
        """The recording's prints (count, d) of `song` from row `first_row`: the stored ones, a little noisy."""
        start = self.table.first_rows[song] + first_row
        return unit_rows(self.vectors[start : start + count] + 0.03 * self.rng.standard_normal((count, DIM)))

    def unknown(self, count: int) -> np.ndarray:
        return unit_rows(self.rng.standard_normal((count, DIM)))

    def quiet(self, song: int, first_row: int, count: int, similarity: float = 0.53) -> np.ndarray:
        """Like `play`, drowned in noise: each print at `similarity` to its stored row.

        By default between the quiet edges' level (0.5) and the best path's (0.55).
        """
        start = self.table.first_rows[song] + first_row
        stored = self.vectors[start : start + count]
        noise = self.unknown(count)
        noise = unit_rows(noise - np.sum(noise * stored, axis=1, keepdims=True) * stored)
        return similarity * stored + np.sqrt(1.0 - similarity**2) * noise

    def track(
        self,
        prints: np.ndarray,
        chunk: int,
        gaps: bool = False,
        threshold: float = 0.8,
        lead_weight: float = 0.0,
        stride: int = 1,
        monitor_level: float = SearchConfig.monitor_level,
    ) -> list[Span]:
        """Every span of a recording made of `prints`, pushed `chunk` segments at a time.

        With a `stride`, only every stride-th segment comes scanned; the tracker fetches the others it needs.
        """
        search = SearchConfig(segment_k=5, threshold=threshold, lead_weight=lead_weight, monitor_level=monitor_level)
        self.fetched: list[int] = []

        def fetch(segments: np.ndarray) -> np.ndarray:
            self.fetched += segments.tolist()
            return prints[segments]

        tracker = SpanTracker(self.vectors, self.table, self.durations, AUDIO, search, gaps, fetch=fetch)
        sims, rows = self.index.search(prints, search.segment_k)
        scanned = np.arange(len(prints)) % stride == 0
        spans: list[Span] = []
        for a in range(0, len(prints), chunk):
            part = slice(a, a + chunk)
            spans += tracker.push(
                np.where(scanned[part, None], prints[part], np.nan), rows[part], sims[part], scanned[part]
            )
        seconds = (len(prints) - 1) * AUDIO.hop_s + AUDIO.segment_s
        return spans + tracker.finish(seconds)


def at(segment: int) -> float:
    """Where a span starting at (or ending after) this segment boundary is placed: the hop around a centre."""
    return segment * AUDIO.hop_s + (AUDIO.segment_s - AUDIO.hop_s) / 2


def songs_only(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.song is not None]


@pytest.mark.parametrize(("chunk", "stride"), [(1, 1), (7, 1), (1000, 1), (1, 2), (7, 2), (1000, 3)])
def test_an_excerpt_is_one_span_at_its_offset_however_the_segments_arrive(chunk: int, stride: int) -> None:
    songs = Songs([60, 50])
    prints = np.concatenate([songs.unknown(10), songs.play(0, 8, 30), songs.unknown(12)])
    spans = songs.track(prints, chunk, stride=stride)
    assert len(spans) == 1
    span = spans[0]
    assert span.song == 0
    assert (span.start_s, span.end_s) == (at(10), at(40))
    assert span.offset_s == pytest.approx(at(10) + (8 - 10) * AUDIO.hop_s, abs=0.05)  # row 8 plays at segment 10
    assert span.score is not None and span.score > 0.95


def test_the_path_level_is_the_models_setting() -> None:
    # A song heard throughout at 0.7: above the default level, a span; under a stricter model's, none.
    songs = Songs([60, 50])
    prints = np.concatenate([songs.unknown(10), songs.quiet(0, 8, 30, similarity=0.7), songs.unknown(12)])
    assert [(s.song, s.start_s, s.end_s) for s in songs.track(prints, 7, threshold=0.5)] == [(0, at(10), at(40))]
    assert songs.track(prints, 7, threshold=0.5, monitor_level=0.75) == []


def test_segments_not_scanned_are_fingerprinted_only_next_to_a_change() -> None:
    stride = 2  # the monitor's: every other segment
    songs = Songs([60, 50])
    played = songs.play(0, 20, 30)
    quiet = np.arange(6)
    played[quiet] = songs.quiet(0, 20, len(quiet))  # a quiet opening the edges take
    prints = np.concatenate([songs.unknown(11), played, songs.unknown(20), songs.play(1, 5, 25), songs.unknown(30)])
    spans = songs.track(prints, chunk=9, stride=stride)
    fetched = set(songs.fetched)
    every = songs.track(prints, chunk=9)  # every segment scanned
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(11), at(41)), (1, at(61), at(86))]
    assert [(s.song, s.start_s, s.end_s) for s in every] == [(0, at(11), at(41)), (1, at(61), at(86))]
    assert [s.offset_s for s in spans] == pytest.approx([s.offset_s for s in every], abs=0.05)
    # Fetched: a few segments about each of the four edges, and those of the opening the edge took.
    assert 0 < len(fetched) <= 4 * 2 * (stride - 1) + len(quiet)
    assert not any(t % stride == 0 for t in fetched)


def test_spans_come_in_time_order_and_only_once_their_end_is_certain() -> None:
    songs = Songs([60, 50])
    prints = np.concatenate([songs.play(1, 0, 20), songs.unknown(8), songs.play(0, 30, 25), songs.unknown(100)])
    search = SearchConfig(segment_k=5, threshold=0.8)
    tracker = SpanTracker(songs.vectors, songs.table, songs.durations, AUDIO, search)
    sims, rows = songs.index.search(prints, 5)
    closed_at = {}
    for t in range(len(prints)):
        for span in tracker.push(prints[t : t + 1], rows[t : t + 1], sims[t : t + 1]):
            closed_at[span.song] = t
    assert list(closed_at) == [1, 0]
    # Reported once the segments a lag after the song's end are in, at most a lag later.
    assert 20 + tracker.lag <= closed_at[1] < 20 + 2 * tracker.lag
    assert 53 + tracker.lag <= closed_at[0] < 53 + 2 * tracker.lag
    assert tracker.finish(len(prints) * AUDIO.hop_s) == []


def test_a_jump_within_a_song_starts_a_new_span() -> None:
    songs = Songs([80])
    # A loop: rows 20-39, then back to row 20 for another 20 segments, then on.
    prints = np.concatenate([songs.unknown(6), songs.play(0, 20, 20), songs.play(0, 20, 30), songs.unknown(6)])
    spans = songs.track(prints, chunk=9)
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(6), at(26)), (0, at(26), at(56))]
    # Row 20 (10 s into the song) plays at segment 6 (3 s) and again at segment 26 (13 s).
    assert [s.offset_s for s in spans] == pytest.approx([at(6) + 7.0, at(26) - 3.0], abs=0.05)


def test_an_excerpt_starting_in_a_repeated_passage_is_one_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placed at the repeat until the music parts, the span moves to where the excerpt goes on: one span."""
    songs = Songs([300])
    # Rows 150-239 repeat rows 20-109 (a little differently); the recording plays the repeat's
    # version for longer than the tracker looks ahead, then goes on as the first time (rows 110-139).
    songs.vectors[150:240] = unit_rows(songs.vectors[20:110] + 0.02 * songs.rng.standard_normal((90, DIM)))
    songs.index.reset()
    songs.index.add(songs.vectors)
    prints = np.concatenate([songs.unknown(6), songs.play(0, 150, 90), songs.play(0, 110, 30), songs.unknown(6)])
    spans = songs.track(prints, chunk=9)
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(6), at(126))]
    assert spans[0].offset_s == pytest.approx(at(6) + 7.0, abs=0.05)  # row 20 (10 s) plays at segment 6 (3 s)
    monkeypatch.setattr(fpkit.monitor.tracker, "REALIGN_MARGIN", -1.0)  # never re-placed: two spans
    assert len(songs.track(prints, chunk=9)) == 2


def test_a_short_stray_match_is_not_a_jump() -> None:
    """One segment that happens to look like another part of the song does not split the span."""
    songs = Songs([80])
    played = songs.play(0, 10, 40)
    played[20] = songs.play(0, 60, 1)[0]
    spans = songs.track(np.concatenate([songs.unknown(6), played, songs.unknown(6)]), chunk=5)
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(6), at(46))]


def test_back_to_back_songs_meet_at_one_boundary() -> None:
    songs = Songs([60, 50])
    spans = songs.track(np.concatenate([songs.play(0, 0, 30), songs.play(1, 5, 30)]), chunk=4)
    assert [s.song for s in spans] == [0, 1]
    edges = [spans[0].start_s, spans[0].end_s, spans[1].start_s, spans[1].end_s]
    assert edges == pytest.approx([0.0, at(30), at(30), 30.5], abs=0.01)


def test_unknown_audio_gives_no_span() -> None:
    songs = Songs([60, 50])
    assert songs.track(songs.unknown(200), chunk=16) == []


def test_gaps_fill_the_time_between_spans() -> None:
    songs = Songs([60, 50])
    prints = np.concatenate([songs.unknown(10), songs.play(1, 0, 20), songs.unknown(15), songs.play(0, 4, 30)])
    spans = songs.track(prints, chunk=6, gaps=True)
    assert [s.song for s in spans] == [None, 1, None, 0]
    assert spans[0].start_s == 0.0 and spans[-1].end_s == (len(prints) - 1) * AUDIO.hop_s + AUDIO.segment_s
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(spans))  # they tile the recording
    assert all(s.offset_s is None and s.score is None for s in spans if s.song is None)


def test_only_gaps_for_a_recording_with_no_known_song() -> None:
    songs = Songs([60])
    assert songs.track(songs.unknown(30), chunk=8, gaps=True) == [Span(0.0, 15.5, None, None, None)]


def test_a_span_the_decision_rejects_is_not_reported() -> None:
    songs = Songs([60])
    prints = np.concatenate([songs.unknown(10), songs.play(0, 0, 30), songs.unknown(10)])
    assert songs.track(prints, chunk=10, threshold=0.999) == []


def test_a_span_does_not_start_before_its_song() -> None:
    songs = Songs([60])
    # The song's first row plays at segment 10, a little early on the hop grid.
    spans = songs.track(np.concatenate([songs.unknown(10), songs.play(0, 0, 30), songs.unknown(10)]), chunk=8)
    assert spans[0].offset_s is not None and spans[0].offset_s >= 0.0


def test_span_decision_follows_the_threshold_for_the_span_length() -> None:
    search = SearchConfig(threshold_by_length=[[1.0, 0.9], [10.0, 0.7]])
    assert span_decision(np.full(2, 0.8), 0.3, AUDIO, search).accepted is False  # 1.5 s: threshold 0.878
    long = span_decision(np.full(40, 0.8), 0.3, AUDIO, search)  # 20.5 s: 0.7
    assert long.accepted and long.score == pytest.approx(0.8)  # no lead weight: the mean alone


def test_span_decision_scores_the_lead_as_search_does() -> None:
    search = SearchConfig(threshold=0.9, lead_weight=0.5)
    similarities = np.full(20, 0.8)
    decision = span_decision(similarities, 0.3, AUDIO, search)
    assert decision.score == pytest.approx(0.8 + 0.5 * (0.8 - 0.3)) and decision.accepted
    assert decision.score == pytest.approx(lead_scores(np.array([0.8, 0.3]), 0.5)[0])
    assert not span_decision(similarities, 0.7, AUDIO, search).accepted  # a close second song: no match


@pytest.mark.parametrize("chunk", [3, 1000])
def test_the_lead_weight_scores_a_span_against_the_best_other_song(chunk: int) -> None:
    songs = Songs([60, 50])
    # An excerpt of song 0 (rows 8-37) with song 1's rows 0-29 mixed in: song 1 is a clear second.
    played = unit_rows(songs.play(0, 8, 30) + 0.6 * songs.play(1, 0, 30))
    prints = np.concatenate([songs.unknown(10), played, songs.unknown(12)])
    plain = songs.track(prints, chunk, threshold=0.5)
    weighted = songs.track(prints, chunk, threshold=0.5, lead_weight=1.0)
    # The weight changes the score, never where the span lies.
    assert [(s.song, s.start_s, s.end_s, s.offset_s) for s in plain] == [(0, at(10), at(40), plain[0].offset_s)]
    assert [(s.start_s, s.end_s, s.offset_s) for s in plain] == [(s.start_s, s.end_s, s.offset_s) for s in weighted]
    own = float(np.mean(np.sum(played * songs.vectors[8:38], axis=1)))
    other = float(np.mean(np.sum(played * songs.vectors[60:90], axis=1)))  # song 1 at its alignment
    assert plain[0].score == pytest.approx(own, abs=1e-5)
    assert weighted[0].score == pytest.approx(own + (own - other), abs=1e-5)
    assert songs.track(prints, chunk, threshold=own + 0.5 * (own - other), lead_weight=0.4) == []  # too small a lead


def test_bridging_carries_a_run_to_its_song_end_over_weak_but_steady_evidence() -> None:
    table = SongTable(np.array([0, 100]), np.array([100, 30]))
    found = Alignments(np.array([1, 0]), np.array([-10, 50]))  # song 1's row 0 plays at segment 10
    heard = table.counts[found.song]  # no stored silence
    labels = np.full(40, -1)
    labels[13:36] = 0  # the song runs from segment 10 to segment 39 (its last row, 29)
    sims = np.full((2, 40), 0.1)
    sims[0, 10:13] = 0.55  # a quiet opening
    sims[0, 36:40] = [0.6, 0.5, 0.45, 0.5]  # a fade-out
    bridged = bridge_to_song_ends(labels, found, sims, 0, heard, max_segments=8, level=0.5)
    assert np.flatnonzero(bridged == 0).tolist() == list(range(13, 40))  # the end only
    # Too far from the song's end, too weak, or over another song's run: unchanged.
    assert np.array_equal(bridge_to_song_ends(labels, found, sims, 0, heard, max_segments=3, level=0.5), labels)
    assert np.array_equal(bridge_to_song_ends(labels, found, sims, 0, heard, 8, level=0.6), labels)
    other = labels.copy()
    other[38] = 1
    assert np.array_equal(bridge_to_song_ends(other, found, sims, 0, heard, 8, 0.5), other)
    # Positions count from `first_segment`: the same run seen 5 segments later in a window.
    later = bridge_to_song_ends(labels[5:], found, sims[:, 5:], 5, heard, 8, 0.5)
    assert np.array_equal(later, bridged[5:])
    # A song end beyond the segments seen is left to a later window.
    assert np.array_equal(bridge_to_song_ends(labels[:38], found, sims[:, :38], 0, heard, 8, 0.5), labels[:38])


def test_bridging_stops_at_the_last_heard_row_before_stored_silence() -> None:
    found = Alignments(np.array([1]), np.array([-10]))  # song 1's row 0 plays at segment 10
    labels = np.full(70, -1)
    labels[10:42] = 0  # rows 0-31 heard; rows 34-49 are silence: noise alone, similarity 0
    sims = np.zeros((1, 70))
    sims[0, 42:44] = 0.55  # the last heard rows, 32 and 33, fading
    heard = np.array([34])
    bridged = bridge_to_song_ends(labels, found, sims, 0, heard, max_segments=4, level=0.5)
    assert np.flatnonzero(bridged == 0).tolist() == list(range(10, 44))  # to row 33, not into the silence
    # Without the silence known, the same run is 18 segments from the end: left alone.
    assert np.array_equal(bridge_to_song_ends(labels, found, sims, 0, np.array([50]), 4, 0.5), labels)
    # A run that reaches its last heard row is left as it is; weak evidence carries it nowhere.
    assert np.array_equal(bridge_to_song_ends(labels, found, sims, 0, np.array([32]), 4, 0.5), labels)
    weak = sims.copy()
    weak[0, 42:44] = 0.2
    assert np.array_equal(bridge_to_song_ends(labels, found, weak, 0, heard, 4, 0.5), labels)


@pytest.mark.parametrize("chunk", [5, 1000])
def test_a_song_played_to_its_end_is_reported_to_its_end_through_a_fade(chunk: int) -> None:
    songs = Songs([60, 50])
    played = songs.play(0, 30, 30)  # rows 30-59: the song's end
    fade = np.arange(24, 30)
    played[fade] = songs.quiet(0, 54, len(fade))
    prints = np.concatenate([songs.unknown(10), played, songs.unknown(30)])
    spans = songs.track(prints, chunk)
    song_end_s = songs.durations[0] - 15.0 + 5.0  # row 30 (15 s into the song) plays at segment 10 (5 s)
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(10), pytest.approx(song_end_s, abs=0.05))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fpkit.monitor.tracker, "BRIDGE_S", 0.0)  # the path alone stops where the fade starts
        patch.setattr(fpkit.monitor.tracker, "EDGE_MAX_S", 0.0)
        assert [s.end_s < 20.5 - 1.5 for s in songs.track(prints, chunk)] == [True]


@pytest.mark.parametrize("chunk", [5, 1000])
def test_a_song_that_ends_in_silence_is_reported_to_its_last_sound(chunk: int) -> None:
    songs = Songs([60, 50])
    songs.vectors[44:60] = 0.0  # song 0 ends in 8 s of stored silence (zero fingerprints)
    songs.index.reset()
    songs.index.add(songs.vectors)
    # Rows 20-43 heard, then other audio: whether the song's silence played under it, nothing tells.
    prints = np.concatenate([songs.unknown(10), songs.play(0, 20, 24), songs.unknown(40)])
    spans = songs.track(prints, chunk)
    assert [(s.song, s.start_s, s.end_s) for s in spans] == [(0, at(10), at(34))]  # row 43 plays at segment 33


def test_extend_runs_takes_the_best_stretch_beside_a_run_when_it_is_long_enough() -> None:
    labels = np.array([-1] * 10 + [0] * 10 + [-1] * 10 + [1] * 6 + [-1] * 4)
    earned = np.full((2, 40), -0.3)
    earned[0, 5:10] = [-0.1, 0.2, -0.05, 0.1, 0.1]  # a quiet opening before run 0: segments 6-9 pay
    earned[0, 20:30] = [0.4, 0.4] + [-1.0] * 8  # two segments after it: too short a stretch
    earned[1, 25:30] = 0.5  # run 1 takes five before it

    def gains(label: int, segments: np.ndarray) -> np.ndarray:
        return earned[label, segments]

    extended = extend_runs(labels, gains, max_segments=8, min_segments=3)
    assert extended.tolist() == [-1] * 6 + [0] * 14 + [-1] * 5 + [1] * 11 + [-1] * 4
    # At least 6: the opening does not pay over 6, run 1's stretch does (a weak sixth included).
    longer = extend_runs(labels, gains, max_segments=8, min_segments=6)
    assert longer.tolist() == [-1] * 10 + [0] * 10 + [-1] * 4 + [1] * 12 + [-1] * 4


def test_typical_similarity_leaves_out_the_rows_near_the_alignment() -> None:
    song = unit_rows(np.random.default_rng(1).standard_normal((30, DIM)))
    prints = song[[5, 20]]
    typical = typical_similarity(prints, song, np.array([5, 20]), far=3)
    assert np.all(typical < 0.5)  # the segments' own rows (similarity 1) are not typical of the song
    assert typical_similarity(prints, song[:4], np.array([1, 2]), far=10).tolist() == [np.inf, np.inf]


def test_typical_similarity_is_the_quantile_of_the_far_rows() -> None:
    rng = np.random.default_rng(2)
    song = unit_rows(rng.standard_normal((40, DIM)))
    prints = unit_rows(rng.standard_normal((6, DIM)))
    aligned = np.array([0, 3, 17, 30, 39, 20])
    typical = typical_similarity(prints, song, aligned, far=5)
    for print_, row, value in zip(prints, aligned, typical, strict=True):
        far_rows = song[np.abs(np.arange(40) - row) >= 5]
        assert value == pytest.approx(np.quantile(far_rows @ print_, TYPICAL_QUANTILE), abs=1e-6)


@pytest.mark.parametrize("chunk", [5, 1000])
def test_a_quiet_opening_belongs_to_its_span(chunk: int) -> None:
    songs = Songs([60, 50])
    played = songs.play(0, 20, 30)
    quiet = np.arange(6)
    played[quiet] = songs.quiet(0, 20, len(quiet))
    prints = np.concatenate([songs.unknown(10), played, songs.unknown(10)])
    assert [(s.song, s.start_s) for s in songs.track(prints, chunk)] == [(0, at(10))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fpkit.monitor.tracker, "EDGE_MAX_S", 0.0)  # the path alone starts where the song is clear
        assert [(s.song, s.start_s) for s in songs.track(prints, chunk)] == [(0, at(16))]


@pytest.mark.parametrize("chunk", [5, 1000])
def test_audio_that_resembles_all_of_a_song_does_not_extend_its_span(chunk: int) -> None:
    songs = Songs([60, 50])
    drone = unit_rows(songs.rng.standard_normal((1, DIM)))
    songs.vectors[:60] = unit_rows(songs.vectors[:60] + 1.2 * drone)  # every row of song 0 shares one sound
    songs.index.reset()
    songs.index.add(songs.vectors)
    # Six segments of that sound in noise: 0.4-0.65 at every row of the song, at the alignment as elsewhere.
    sound = unit_rows(drone + 1.1 * songs.unknown(6))
    prints = np.concatenate([songs.unknown(10), sound, songs.play(0, 26, 24), songs.unknown(10)])
    assert [(s.song, s.start_s) for s in songs.track(prints, chunk)] == [(0, at(16))]


def test_best_path_keeps_a_run_through_a_short_dip_and_skips_a_blip() -> None:
    gains = np.full((2, 40), -0.5)
    gains[0, 5:30] = 0.3
    gains[0, 15:17] = -0.5  # a dip of two segments
    gains[1, 35] = 1.0  # one lucky segment
    labels = best_path(gains, switch_costs(Alignments(np.array([0, 1]), np.array([0, 0]))))
    assert labels.tolist() == [-1] * 5 + [0] * 25 + [-1] * 10


def test_best_path_starts_from_the_given_label() -> None:
    gains = np.full((1, 10), -0.1)
    costs = switch_costs(Alignments(np.array([0]), np.array([3])))
    assert best_path(gains, costs, initial=0)[0] == 0  # staying a little costs less than leaving
    assert best_path(gains, costs, initial=-1).tolist() == [-1] * 10


def test_switch_costs_make_a_jump_within_a_song_dearer_than_a_drift() -> None:
    costs = switch_costs(Alignments(np.array([0, 0, 0, 1]), np.array([5, 6, 40, 5])))
    assert costs[1, 2] == SWITCH_PENALTY  # one hop of drift
    assert costs[1, 3] == JUMP_PENALTY  # a jump
    assert costs[1, 4] == SWITCH_PENALTY  # another song
    assert costs[0, 1] == costs[1, 0] == SWITCH_PENALTY
    assert np.all(np.diag(costs) == 0.0)


def test_candidate_alignments_need_repeated_hits_and_come_best_first() -> None:
    table = SongTable(np.array([0, 100]), np.array([100, 50]))
    # Segments 10-12 hit song 1 at rows 7-9 (diagonal -3) and song 0 at rows 40-42 (diagonal 30) a
    # little less strongly; one stray hit on row 99.
    rows = np.array([[107, 40, 99], [108, 41, -1], [109, 42, -1]])
    sims = np.array([[0.9, 0.8, 0.95], [0.9, 0.8, 0.0], [0.9, 0.8, 0.0]], dtype=np.float32)
    found = candidate_alignments(rows, sims, 10, table, keep=5, min_hits=2)
    assert found.song.tolist() == [1, 0] and found.diag.tolist() == [-3, 30]
    assert found.find(0, 30) == 1 and found.find(0, 31) == -1
    assert len(candidate_alignments(rows, sims, 10, table, keep=1, min_hits=2)) == 1


# --- fingerprinting a stream ------------------------------------------------------------------------


@pytest.mark.parametrize("framing", [{}, {"features": {"framing": "stream", "stft_hop": 250}}])
def test_recording_prints_equal_fingerprinting_the_whole_recording(framing: dict) -> None:
    config = config_from_dict({**TINY, **framing}, "<tiny>")
    model = build_model(config).eval()
    wave = np.concatenate([make_song(7.3, RATE, 1), np.full(RATE * 2, 0.1, np.float32), make_song(3.1, RATE, 2)])
    starts = segment_starts(len(wave), config.audio.segment_samples, config.audio.hop_samples)
    whole = embed_at(model, wave, starts, 16)
    blank = blank_segments(wave, starts, config.audio)
    assert blank.sum() == 4  # two seconds of a constant (DC is silence): mostly in four segments
    whole[blank] = 0.0  # silence would match any stored silence
    stream = RecordingPrints(model, config.audio, batch_size=16, stride=2)
    scanned, others, held = [], [], []
    for a in range(0, len(wave), 5171):
        scanned.append(stream.feed(wave[a : a + 5171]).prints())
        assert len(scanned[-1]) <= 5171 // (2 * config.audio.hop_samples) + 1  # out as soon as complete
        done = 2 * (stream.scanned - 1)  # the last segment scanned: those before it can be asked for
        wanted = np.arange(stream.keep_from, done)
        wanted = wanted[wanted % 2 == 1]
        others.append((wanted, stream.prints_of(wanted)))
        stream.forget_before(done - 2)
        held.append(len(stream.buffer))
    scanned.append(stream.flush().prints())
    others.append((np.array([len(starts) - 1]), stream.prints_of(np.array([len(starts) - 1]))))  # the last one
    np.testing.assert_allclose(np.concatenate(scanned), whole[::2], atol=1e-4)
    for segments, prints in others:
        np.testing.assert_allclose(prints, whole[segments], atol=1e-4)
    assert stream.samples == len(wave) and stream.segments == len(starts)
    assert max(held) < 3 * config.audio.segment_samples + 5171  # the audio is not kept


# --- monitoring decoded audio with a (tiny, untrained) model ----------------------------------------


@pytest.fixture
def monitor(tmp_path: Path) -> Monitor:
    model = loaded(save_model(tmp_path / "tiny.pt", db_config(TINY)))
    songs = write_songs(tmp_path / "songs", 3, SONG_S, RATE)
    return Monitor(Searcher(indexed_db(tmp_path / "db", songs, model), model))


def blocks(wave: np.ndarray, size: int) -> list[np.ndarray]:
    return [wave[a : a + size] for a in range(0, len(wave), size)]


def test_monitor_finds_each_excerpt_in_a_recording(monitor: Monitor) -> None:
    # The untrained test model needs excerpts on the hop grid, and unknown songs (other seeds) long
    # enough to part two songs: it hears them at about 0.5 at any alignment.
    wave = np.concatenate(
        [
            make_song(6.0, RATE, 100),
            excerpt(make_song(SONG_S, RATE, 1), 4.0, 10.0),
            make_song(8.0, RATE, 101),
            excerpt(make_song(SONG_S, RATE, 2), 3.5, 8.0),
            excerpt(make_song(SONG_S, RATE, 2), 3.5, 8.0),  # played again: a loop
            make_song(5.0, RATE, 102),
        ]
    )
    spans = list(monitor.run(blocks(wave, 3 * RATE + 17), "recording"))
    assert [s.song for s in spans] == [1, 2, 2]
    truth = [(6.0, 16.0, 4.0), (24.0, 32.0, 3.5), (32.0, 40.0, 3.5)]
    for span, (start, end, offset) in zip(spans, truth, strict=True):
        assert abs(span.start_s - start) <= 1.5 and abs(span.end_s - end) <= 1.5
        assert span.offset_s is not None
        assert abs((span.offset_s - span.start_s) - (offset - start)) < 0.3  # where the song is, at any time


def test_monitor_rejects_a_recording_too_short_or_silent(monitor: Monitor) -> None:
    with pytest.raises(AudioError, match="short: too short"):
        list(monitor.run([make_song(0.8, RATE, 1)], "short"))
    with pytest.raises(AudioError, match="quiet: silent"):
        list(monitor.run(blocks(np.zeros(5 * RATE, np.float32), RATE), "quiet"))


def test_monitor_reports_the_spans_before_a_failure(monitor: Monitor) -> None:
    def failing() -> list[np.ndarray]:
        yield excerpt(make_song(SONG_S, RATE, 0), 2.0, 12.0)
        raise AudioError("broken: truncated")

    spans = []
    with pytest.raises(AudioError, match="broken"):
        spans.extend(monitor.run(failing(), "broken"))
    assert [s.song for s in spans] == [0]


@pytest.mark.parametrize("live", [False, True])
def test_a_stream_gets_its_spans_while_it_goes_on(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    clock = iter(range(10**6))  # a live stream: one second of audio per second
    if live:
        monkeypatch.setattr(fpkit.monitor.session, "monotonic", lambda: float(next(clock)))
    wave = np.concatenate([excerpt(make_song(SONG_S, RATE, 1), 2.0, 12.0), make_song(250.0, RATE, 100)])
    session = monitor.session("stream")
    reported_at = {}
    for second, block in enumerate(blocks(wave, RATE), start=1):
        for span in session.feed(block):
            reported_at[span.song] = second
    assert list(reported_at) == [1]
    # The span ends at 12 s; live, it is out within twice the lag plus a step, not when the stream stops;
    # faster than live, the batch it ends in is tracked while the next one is fingerprinted.
    assert reported_at[1] <= (12 + 2 * LAG_S + STEP_S if live else 2 * FILE_BLOCK_S + STEP_S)
    assert session.finish() == []
