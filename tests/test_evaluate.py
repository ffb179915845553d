"""Hit-rate metrics on hand-made result arrays, and query position sampling."""

from __future__ import annotations

import numpy as np
import pytest

from fpkit.evaluation.metrics import (
    NO_SONG,
    UNKNOWN,
    Outcomes,
    correct_candidates,
    first_correct_rank,
    length_metrics,
    sample_aligned_positions,
    sample_positions,
    song_ranks,
    timing,
)

NEG = -np.inf


def outcomes(
    true_song: list[int],
    true_start: list[float],
    songs: list[list[int]],
    offsets: list[list[float]],
    scores: list[list[float]],
    matched: list[bool] | None = None,
    search_s: list[float] | None = None,
) -> Outcomes:
    n = len(true_song)
    return Outcomes(
        true_song=np.array(true_song, dtype=np.int64),
        true_start_s=np.array(true_start, dtype=np.float64),
        cand_song=np.array(songs, dtype=np.int64).reshape(n, -1),
        cand_offset_s=np.array(offsets, dtype=np.float64).reshape(n, -1),
        cand_score=np.array(scores, dtype=np.float64).reshape(n, -1),
        matched=np.array(matched if matched is not None else [True] * n, dtype=bool),
        search_s=np.array(search_s if search_s is not None else [0.01] * n, dtype=np.float64),
    )


def test_exact_and_near_offsets_in_the_random_protocol() -> None:
    o = outcomes(
        true_song=[3, 3, 3, 3],
        true_start=[10.0, 10.0, 10.0, 10.0],
        songs=[[3, 1], [3, 1], [3, 1], [1, 3]],
        offsets=[[10.2, 0.0], [10.4, 0.0], [10.6, 0.0], [5.0, 10.0]],
        scores=[[0.9, 0.5], [0.9, 0.5], [0.9, 0.5], [0.9, 0.8]],
    )
    exact = first_correct_rank(correct_candidates(o, "random", False, 0.5), o.cand_score)
    near = first_correct_rank(correct_candidates(o, "random", True, 0.5), o.cand_score)
    np.testing.assert_array_equal(exact, [1, np.inf, np.inf, 2])
    np.testing.assert_array_equal(near, [1, 1, np.inf, 2])


def test_aligned_protocol_compares_segment_indices() -> None:
    o = outcomes(
        true_song=[0, 0, 0],
        true_start=[5.0, 5.0, 5.0],
        songs=[[0], [0], [0]],
        offsets=[[5.125], [5.5], [6.0]],
        scores=[[0.9], [0.9], [0.9]],
    )
    exact = correct_candidates(o, "aligned", False, 0.5)[:, 0]
    near = correct_candidates(o, "aligned", True, 0.5)[:, 0]
    np.testing.assert_array_equal(exact, [True, False, False])
    np.testing.assert_array_equal(near, [True, True, False])


def test_a_tie_between_right_and_wrong_counts_against_the_query() -> None:
    o = outcomes(
        true_song=[2, 2],
        true_start=[4.0, 4.0],
        songs=[[5, 2, 7], [2, 5, 7]],
        offsets=[[4.0, 4.0, 1.0], [4.0, 4.0, 1.0]],
        scores=[[0.8, 0.8, 0.3], [0.8, 0.7, 0.3]],
    )
    exact = first_correct_rank(correct_candidates(o, "random", False, 0.5), o.cand_score)
    np.testing.assert_array_equal(exact, [2, 1])
    np.testing.assert_array_equal(song_ranks(o), [2, 1])


def test_song_rank_counts_distinct_songs_and_ignores_padding() -> None:
    o = outcomes(
        true_song=[4, 4, 4],
        true_start=[0.0, 0.0, 0.0],
        songs=[[1, 1, 1, 4], [4, 1, NO_SONG, NO_SONG], [1, 2, NO_SONG, NO_SONG]],
        offsets=[[0.0, 3.0, 6.0, 30.0], [30.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        scores=[[0.9, 0.8, 0.7, 0.6], [0.9, 0.5, NEG, NEG], [0.9, 0.5, NEG, NEG]],
    )
    # Three candidates of one wrong song rank the right song second; a wrong offset still
    # finds the right song; a song missing from the list has no rank.
    np.testing.assert_array_equal(song_ranks(o), [2, 1, np.inf])
    exact = first_correct_rank(correct_candidates(o, "random", False, 0.5), o.cand_score)
    np.testing.assert_array_equal(exact, [np.inf, np.inf, np.inf])


def test_length_metrics_over_known_and_unknown_queries() -> None:
    o = outcomes(
        true_song=[0, 1, 2, UNKNOWN, UNKNOWN],
        true_start=[1.0, 2.0, 3.0, 0.0, 0.0],
        songs=[[0, 9], [9, 1], [9, 8], [0, 1], [NO_SONG, NO_SONG]],
        offsets=[[1.1, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]],
        scores=[[0.9, 0.1], [0.9, 0.8], [0.9, 0.8], [0.6, 0.5], [NEG, NEG]],
        matched=[True, True, False, True, False],
    )
    m = length_metrics(o, 2.0, "random", 0.5)
    assert (m.length_s, m.queries, m.unknown_queries) == (2.0, 3, 2)
    assert m.top1_exact == pytest.approx(1 / 3)
    assert m.top1_near == pytest.approx(1 / 3)
    assert m.top3_exact == pytest.approx(2 / 3)
    assert m.top10_exact == pytest.approx(2 / 3)
    assert m.song_top1 == pytest.approx(1 / 3)
    assert m.song_top3 == pytest.approx(2 / 3)
    assert m.song_top10 == pytest.approx(2 / 3)
    assert m.top1_accepted == pytest.approx(1 / 3)
    assert m.false_positive_rate == pytest.approx(1 / 2)


def test_rates_are_none_without_queries_of_a_kind() -> None:
    o = outcomes([UNKNOWN], [0.0], [[1]], [[0.0]], [[0.9]], matched=[False])
    m = length_metrics(o, None, "random", 0.5)
    assert m.queries == 0 and m.top1_exact is None and m.song_top10 is None
    assert m.false_positive_rate == 0.0
    known = outcomes([1], [0.0], [[1]], [[0.0]], [[0.9]])
    assert length_metrics(known, 1.0, "random", 0.5).false_positive_rate is None


def test_timing_mean_and_p95() -> None:
    o = outcomes([0] * 20, [0.0] * 20, [[0]] * 20, [[0.0]] * 20, [[1.0]] * 20, search_s=[0.001 * i for i in range(20)])
    t = timing(o, 1.0)
    assert t.mean_ms == pytest.approx(9.5)
    assert t.p95_ms == pytest.approx(18.05)
    assert timing(o.select(np.zeros(20, dtype=bool)), 1.0).mean_ms is None


def test_positions_fit_their_songs_and_repeat_with_the_seed() -> None:
    durations = [5.0, 30.0, 60.0]
    a = sample_positions(durations, 500, 10.0, seed=7, stream=0)
    b = sample_positions(durations, 500, 10.0, seed=7, stream=0)
    np.testing.assert_array_equal(a.song, b.song)
    np.testing.assert_array_equal(a.start_s, b.start_s)
    assert set(a.song.tolist()) == {1, 2}  # the 5 s song cannot hold a 10 s query
    assert np.all(a.start_s >= 0) and np.all(a.start_s + 10.0 <= np.array(durations)[a.song])
    assert np.mean(a.start_s % 0.5 > 1e-6) > 0.9  # continuous, not on the grid
    assert np.mean(a.song == 2) == pytest.approx(50 / 70, abs=0.08)  # weighted by usable length
    c = sample_positions(durations, 500, 10.0, seed=8, stream=0)
    assert not np.array_equal(a.start_s, c.start_s)


def test_aligned_positions_lie_on_the_grid() -> None:
    p = sample_aligned_positions([3.0, 12.0], 200, 2.0, 0.5, seed=1, stream=1)
    np.testing.assert_allclose(p.start_s % 0.5, 0.0)
    free = sample_positions([3.0, 12.0], 200, 2.0, seed=1, stream=1)  # the same draws, snapped back
    np.testing.assert_array_equal(p.song, free.song)
    assert np.all((free.start_s - p.start_s >= 0) & (free.start_s - p.start_s < 0.5))
    assert np.all(p.start_s + 2.0 <= np.array([3.0, 12.0])[p.song] + 1e-9)
    assert set(np.round(p.start_s[p.song == 0], 3).tolist()) <= {0.0, 0.5, 1.0}


def test_sampling_fails_when_no_song_is_long_enough() -> None:
    with pytest.raises(ValueError, match="longest query"):
        sample_positions([1.0, 2.0], 10, 5.0, seed=0, stream=0)
    with pytest.raises(ValueError, match="longest query"):
        sample_aligned_positions([1.0], 10, 5.0, 0.5, seed=0, stream=1)
