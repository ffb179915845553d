from __future__ import annotations

import dataclasses
from pathlib import Path

import faiss
import numpy as np
import pytest
import soundfile as sf
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, indexed_db, loaded, save_model, unit_rows
from synth import make_song, write_audio, write_songs

from fpkit.augment import Degrader
from fpkit.db import Database, ModelMismatch, Searcher
from fpkit.db.search import SongTable, lead_scores, sequence_search
from fpkit.fingerprint import QueryPrints, SongPrints
from fpkit.model import DEFAULT_WEIGHTS, LoadedModel, load_model

N_SONGS = 4


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    return loaded(save_model(tmp_path / "tiny.pt", db_config(TINY)))


@pytest.fixture
def songs(tmp_path: Path) -> list[Path]:
    return write_songs(tmp_path / "songs", N_SONGS, SONG_S, RATE)


def random_excerpts(count: int, seed: int) -> list[tuple[int, float, np.ndarray]]:
    """(song seed, true offset in seconds, excerpt of 3 to 6 s at a continuous offset)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        song = int(rng.integers(N_SONGS))
        length = rng.uniform(3.0, 6.0)
        start = rng.uniform(0.0, SONG_S - length)
        out.append((song, round(start * RATE) / RATE, excerpt(make_song(SONG_S, RATE, song), start, length)))
    return out


def stored_rows(count: int, dim: int, seed: int) -> tuple[np.ndarray, faiss.Index]:
    stored = unit_rows(np.random.default_rng(seed).standard_normal((count, dim)))
    index = faiss.IndexFlatIP(dim)
    index.add(stored)
    return stored, index


def test_sequence_search_places_a_query_at_its_row_and_shift() -> None:
    stored, index = stored_rows(30, 8, seed=0)
    songs = SongTable(np.array([0, 10]), np.array([10, 20]))
    # The copy shifted by 0.25 s matches song 1 from its row 4: the query starts at 4 * 0.5 - 0.25 s.
    query = QueryPrints(np.array([0.0, 0.25]), [-stored[12:15], stored[14:17]])
    found = sequence_search(index, stored, songs, query, hop_s=0.5, segment_k=3, max_candidates=100)
    assert (found[0].song, found[0].offset_s) == (1, 1.75)
    assert found[0].score == pytest.approx(1.0)
    assert len({a.song for a in found}) == len(found)  # one alignment per song


def test_mean_pooling_scores_a_placement_with_every_copy() -> None:
    stored, index = stored_rows(30, 8, seed=0)
    songs = SongTable(np.array([0, 10]), np.array([10, 20]))
    # As above, but the unshifted copy lies halfway between song 1's rows 3 and 4, and resembles both.
    halfway = unit_rows(stored[13:16] + stored[14:17])
    query = QueryPrints(np.array([0.0, 0.25]), [halfway, stored[14:17]])
    found = sequence_search(index, stored, songs, query, 0.5, segment_k=3, max_candidates=100, pooling="mean")
    assert (found[0].song, found[0].offset_s) == (1, 1.75)
    at_row = [np.mean(np.sum(halfway * stored[r : r + 3], axis=1)) for r in (13, 14)]
    assert found[0].score == pytest.approx((1.0 + 0.5 * at_row[0] + 0.5 * at_row[1]) / 2, abs=1e-6)


def test_mean_pooling_prefers_what_every_copy_finds_to_one_copy_s_chance_match() -> None:
    """Song 0 matches one copy perfectly and the others not at all; song 1 matches every copy well."""
    stored, index = stored_rows(20, 16, seed=1)
    songs = SongTable(np.array([0, 10]), np.array([10, 10]))
    rng = np.random.default_rng(2)
    near_song_1 = [unit_rows(stored[12:15] + 0.6 * unit_rows(rng.standard_normal((3, 16)))) for _ in range(3)]
    query = QueryPrints(np.array([0.0, 0.125, 0.25, 0.375]), [stored[2:5], *near_song_1])
    best = {
        pooling: sequence_search(index, stored, songs, query, 0.5, segment_k=2, max_candidates=100, pooling=pooling)[0]
        for pooling in ("max", "mean")
    }
    assert best["max"].song == 0
    assert best["mean"].song == 1


def test_refined_offsets_move_to_where_the_copies_agree_and_keep_the_best_copy_s_score() -> None:
    """Orthogonal rows: a query row scores 1 against its own stored row and 0 against any other.

    The unshifted copy matches song 1 at row 3 exactly (1.5 s, score 1); the copy shifted by 0.25 s
    matches row 4 (1.75 s) well and row 3 negatively. The best copy alone says 1.5 s; averaged
    over both copies, 1.75 s scores (0.96 + 0.5) / 2 and 1.5 s only (1 + 0.34) / 2.
    """
    stored = np.eye(30, 32, dtype=np.float32)
    index = faiss.IndexFlatIP(32)
    index.add(stored)
    songs = SongTable(np.array([0, 10]), np.array([10, 20]))
    shifted = unit_rows(stored[14:17] - 0.3 * stored[13:16])
    query = QueryPrints(np.array([0.0, 0.25]), [stored[13:16], shifted])
    plain = sequence_search(index, stored, songs, query, 0.5, segment_k=3, max_candidates=100)
    refined = sequence_search(index, stored, songs, query, 0.5, segment_k=3, max_candidates=100, refine_top=1)
    assert (plain[0].song, plain[0].offset_s, plain[0].score) == (1, 1.5, pytest.approx(1.0))
    assert (refined[0].song, refined[0].offset_s, refined[0].score) == (1, 1.75, pytest.approx(1.0))
    assert refined[1:] == plain[1:]


def test_refined_offsets_change_no_song_and_no_score(tmp_path: Path, model: LoadedModel, songs: list[Path]) -> None:
    db = indexed_db(tmp_path / "db", songs, model)
    plain = Searcher(db, model, dataclasses.replace(model.config.search, refine_offsets=False))
    refined = Searcher(db, model, dataclasses.replace(model.config.search, refine_offsets=True))
    for _, _, clip in random_excerpts(8, seed=4):
        before, after = plain.search_wave(clip, "clip"), refined.search_wave(clip, "clip")
        assert [(c.ref, c.score) for c in after.candidates] == [(c.ref, c.score) for c in before.candidates]


def test_a_query_copy_without_index_hits_proposes_nothing() -> None:
    """A fast-scan index finds no rows (-1) for a copy whose segments are all blank (zero vectors)."""
    stored = np.eye(8, dtype=np.float32)
    nowhere = faiss.IndexIDMap(faiss.IndexFlatIP(8))  # finds nothing for any query
    query = QueryPrints(np.array([0.0]), [stored[2:4]])
    songs = SongTable(np.array([0]), np.array([8]))
    assert sequence_search(nowhere, stored, songs, query, 0.5, segment_k=3, max_candidates=10) == []


def test_clean_excerpts_are_found_at_their_offsets(tmp_path: Path, model: LoadedModel, songs: list[Path]) -> None:
    searcher = Searcher(indexed_db(tmp_path / "db", songs, model), model)
    errors = []
    for song, start, clip in random_excerpts(12, seed=1):
        result = searcher.search_wave(clip, "clip")
        assert result.match is not None and result.match.ref == str(songs[song])
        errors.append(abs(result.match.offset_s - start))
    assert max(errors) < 0.25
    assert np.median(errors) < 0.1


def test_the_reverb_delay_moves_every_reported_offset_and_nothing_else(
    tmp_path: Path, model: LoadedModel, songs: list[Path]
) -> None:
    db = indexed_db(tmp_path / "db", songs, model)
    dry = Searcher(db, model)
    delayed = Searcher(db, model, dataclasses.replace(model.config.search, reverb_delay_s=0.12))
    for _, _, clip in random_excerpts(3, seed=3):
        plain, moved = dry.search_wave(clip, "clip").candidates, delayed.search_wave(clip, "clip").candidates
        assert [c.ref for c in moved] == [c.ref for c in plain]
        assert [c.score for c in moved] == [c.score for c in plain]
        assert np.allclose([c.offset_s for c in moved], [c.offset_s + 0.12 for c in plain])


def test_unknown_audio_has_no_match(tmp_path: Path, model: LoadedModel, songs: list[Path]) -> None:
    searcher = Searcher(indexed_db(tmp_path / "db", songs, model), model)
    for seed in range(100, 108):
        result = searcher.search_wave(make_song(4.0, RATE, seed), "unknown")
        assert result.match is None
        assert result.candidates and result.candidates[0].score < model.config.search.threshold


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="needs a trained model: untrained nets are not noise-robust")
@pytest.mark.parametrize(("pooling", "refine"), [("max", False), ("mean", False), ("max", True)])
def test_noisy_excerpts_are_found_with_the_shipped_model(
    tmp_path: Path, songs: list[Path], pooling: str, refine: bool
) -> None:
    model = load_model(None)
    config = dataclasses.replace(model.config.search, subhop_pooling=pooling, refine_offsets=refine)
    searcher = Searcher(indexed_db(tmp_path / "db", songs, model), model, config)
    degrader = Degrader.from_folders(model.config.augment, RATE, None, None)
    rng = np.random.default_rng(0)
    for song, start, clip in random_excerpts(10, seed=2):
        result = searcher.search_wave(degrader.degrade(clip, rng), "noisy")
        assert result.candidates[0].ref == str(songs[song])
        assert abs(result.candidates[0].offset_s - start) < 0.25


def test_songs_added_later_are_found_and_duplicates_are_skipped(
    tmp_path: Path, model: LoadedModel, songs: list[Path]
) -> None:
    db = indexed_db(tmp_path / "db", songs[:2], model)
    db.close()
    with Database.open_or_create(tmp_path / "db", model) as db:
        pcm, _ = sf.read(songs[0], dtype="int16")  # the same samples in another container
        copy = write_audio(tmp_path / "elsewhere" / "copy.flac", pcm, RATE)
        report = db.add_files([*songs, copy], model)
        db.update_index(model.config.index)
        assert [Path(r.path) for r in report.stored] == songs[2:]
        assert {Path(s.path) for s in report.skipped} == {*songs[:2], copy}
        again = db.add_files(songs, model)
        assert not again.stored and len(again.skipped) == N_SONGS
    with Database.open(tmp_path / "db") as db:
        result = Searcher(db, model).search_wave(excerpt(make_song(SONG_S, RATE, 3), 5.0, 4.0))
        assert len(db.songs) == N_SONGS and result.match is not None and result.match.ref == str(songs[3])


def test_an_interrupted_add_leaves_the_old_database_searchable(
    tmp_path: Path, model: LoadedModel, songs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed_db(tmp_path / "db", songs[:2], model).close()
    real = SongPrints.finish
    calls = []

    def crash_on_second_song(self: SongPrints) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(SongPrints, "finish", crash_on_second_song)
    with pytest.raises(KeyboardInterrupt), Database.open_or_create(tmp_path / "db", model) as db:
        db.add_files(songs[2:], model)
    monkeypatch.undo()
    with Database.open(tmp_path / "db") as db:
        assert len(db.songs) == 2
        result = Searcher(db, model).search_wave(excerpt(make_song(SONG_S, RATE, 1), 3.0, 4.0))
        assert result.match is not None and result.match.ref == str(songs[1])
    with Database.open_or_create(tmp_path / "db", model) as db:  # the next run resumes
        assert len(db.add_files(songs, model).stored) == 2


def test_an_interrupted_rebuild_keeps_the_old_songs(tmp_path: Path, model: LoadedModel, songs: list[Path]) -> None:
    indexed_db(tmp_path / "db", songs[:2], model).close()
    with Database.open_or_create(tmp_path / "db", model, rebuild=True):
        pass  # stopped before anything was committed
    with Database.open(tmp_path / "db") as db:
        assert len(db.songs) == 2 and db.indexed_rows == db.rows


def test_another_model_is_refused(tmp_path: Path, model: LoadedModel, songs: list[Path]) -> None:
    indexed_db(tmp_path / "db", songs[:1], model).close()
    other = loaded(save_model(tmp_path / "other.pt", db_config(TINY), seed=1))
    with pytest.raises(ModelMismatch, match=r"built with model [0-9a-f]+, but .*other.pt is model"):
        Database.open_or_create(tmp_path / "db", other)
    with Database.open(tmp_path / "db") as db, pytest.raises(ModelMismatch):
        Searcher(db, other)


def test_unreadable_and_silent_songs_are_reported_and_the_rest_stored(
    tmp_path: Path, model: LoadedModel, songs: list[Path]
) -> None:
    (tmp_path / "songs" / "broken.wav").write_bytes(b"RIFF....not audio at all")
    write_audio(tmp_path / "songs" / "silence.wav", np.zeros(3 * RATE, dtype=np.float32), RATE)
    with Database.open_or_create(tmp_path / "db", model) as db:
        report = db.add_files([tmp_path / "songs", tmp_path / "missing.wav"], model)
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert set(reasons) == {"broken.wav", "silence.wav", "missing.wav"}
    assert "not readable as audio" in reasons["broken.wav"] and "silent" in reasons["silence.wav"]
    assert len(report.stored) == N_SONGS


def test_lead_scores_add_each_songs_lead_over_the_best_other() -> None:
    similarity = np.array([0.9, 0.6, 0.5])
    np.testing.assert_allclose(lead_scores(similarity, 0.0), similarity)
    np.testing.assert_allclose(lead_scores(similarity, 1.0), [1.2, 0.3, 0.1])  # 0.9 + 0.3, 0.6 - 0.3, 0.5 - 0.4
    np.testing.assert_allclose(lead_scores(np.array([0.7]), 0.5), [1.05])  # alone: leads an unhit song at 0
    assert lead_scores(np.zeros(0), 1.0).shape == (0,)
