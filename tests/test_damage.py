"""Damaged databases: one line naming the file and the fix, `--repair`, nothing committed on top (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, save_model
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app
from fpkit.config import AudioConfig
from fpkit.db import Database
from fpkit.db.store import MANIFEST, Store, StoreDamaged
from fpkit.model import load_model

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """A tiny model, three songs and a database holding them."""
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 3, SONG_S, RATE)
    db = tmp_path / "db"
    done = run("index", tmp_path / "songs", "--db", db, "--model", model)
    assert done.exit_code == 0, done.output
    return model, songs, db


def run(*args: str | Path, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def one_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def only(db: Path, pattern: str) -> Path:
    (path,) = db.glob(pattern)
    return path


def clip(seed: int, start_s: float = 4.0) -> np.ndarray:
    return excerpt(make_song(SONG_S, RATE, seed), start_s, 4.0)


def search_csv(db: Path, *queries: Path) -> list[str]:
    """The match column of `fpkit search --format csv`."""
    found = run("search", *queries, "--db", db, "--format", "csv")
    assert found.exit_code == 0, found.output
    return [line.split(",")[1] for line in found.stdout.splitlines()[1:]]


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails any attempt to add audio files: repairs work from the stored fingerprints."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio files were added")

    monkeypatch.setattr(Database, "add_files", refuse)


def test_cut_short_vectors_are_named_nothing_is_committed_on_top_and_repair_cuts_the_tail(
    tmp_path: Path, setup, no_decoding: None
) -> None:
    _, songs, db = setup
    vectors = only(db, "vectors-*.f16")
    with open(vectors, "r+b") as f:
        f.truncate(vectors.stat().st_size // 2)  # song 0 whole, song 1 half, song 2 gone
    manifest = (db / MANIFEST).read_bytes()
    queries = [write_audio(tmp_path / f"q{i}.wav", clip(i), RATE) for i in range(3)]
    for args in (("search", queries[0]), ("index", tmp_path / "songs")):
        refused = run(*args, "--db", db)
        line = one_line(refused)
        assert refused.exit_code == 1
        assert f"{vectors}: holds 60 of the 120 fingerprint rows" in line and f"fpkit index --db {db} --repair" in line
    assert (db / MANIFEST).read_bytes() == manifest  # index refused before committing anything

    repaired = run("index", "--db", db, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert f"dropped: {songs[1]}" in repaired.stderr and f"dropped: {songs[2]}" in repaired.stderr
    assert "the index is rebuilt from the stored fingerprints" in repaired.stderr
    assert only(db, "vectors-*.f16") == vectors and vectors.stat().st_size == 40 * 32 * 2  # cut in place
    assert search_csv(db, *queries) == [str(songs[0]), "", ""]


def test_the_dropped_songs_come_back_with_the_next_index(tmp_path: Path, setup) -> None:
    _, songs, db = setup
    vectors = only(db, "vectors-*.f16")
    with open(vectors, "r+b") as f:
        f.truncate(vectors.stat().st_size - 100)
    again = run("index", tmp_path / "songs", "--db", db, "--repair")
    assert again.exit_code == 0, again.output
    assert "stored 1 new songs" in again.stderr and "skipped 2" in again.stderr
    queries = [write_audio(tmp_path / f"q{i}.wav", clip(i), RATE) for i in range(3)]
    assert search_csv(db, *queries) == [str(s) for s in songs]


def test_a_missing_or_garbled_index_is_rebuilt_from_the_stored_fingerprints(
    tmp_path: Path, setup, no_decoding: None
) -> None:
    _, songs, db = setup
    query = write_audio(tmp_path / "q.wav", clip(2), RATE)
    index = only(db, "index-*.faiss")
    for damage in ("missing", "garbage"):
        if damage == "missing":
            index.unlink()
        else:
            index.write_bytes(b"junk" * 10)
        for args in (("search", query), ("index", songs[0])):
            refused = run(*args, "--db", db)
            line = one_line(refused)
            assert refused.exit_code == 1 and str(index.name) in line and "--repair" in line
        repaired = run("index", "--db", db, "--repair")
        assert repaired.exit_code == 0, repaired.output
        assert "the index is rebuilt" in repaired.stderr and "dropped" not in repaired.stderr
        assert search_csv(db, query) == [str(songs[2])]
        index = only(db, "index-*.faiss")


def test_a_garbled_files_table_is_named_and_rebuild_or_repair_gets_past_it(tmp_path: Path, setup) -> None:
    _, songs, db = setup
    table = only(db, "files-*.jsonl")
    lines = table.read_bytes().splitlines(keepends=True)
    table.write_bytes(lines[0] + b"{not json" + lines[1][9:] + lines[2])  # the middle record garbled, same size
    queries = [write_audio(tmp_path / f"q{i}.wav", clip(i), RATE) for i in range(3)]
    refused = run("search", queries[0], "--db", db)
    assert refused.exit_code == 1 and f"{table}: line 2 is not a song record" in one_line(refused)

    repaired = run("index", "--db", db, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "1 unreadable lines of the files table" in repaired.stderr
    assert search_csv(db, *queries) == [str(songs[0]), "", str(songs[2])]  # the others kept, rows renumbered

    table = only(db, "files-*.jsonl")
    table.write_bytes(b"garbage\n" * 3)
    rebuilt = run("index", tmp_path / "songs", "--db", db, "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert search_csv(db, *queries) == [str(s) for s in songs]


def test_a_lost_model_copy_is_named_and_restored_from_model(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    (db / "model.pt").unlink()
    query = write_audio(tmp_path / "q.wav", clip(1), RATE)
    refused = run("search", query, "--db", db)
    line = one_line(refused)
    assert f"{db / 'model.pt'}: missing" in line and "--repair --model CHECKPOINT" in line
    without = run("index", "--db", db, "--repair")
    assert without.exit_code == 1 and "pass --model CHECKPOINT" in one_line(without)
    other = save_model(tmp_path / "other.pt", db_config(TINY), seed=1)
    wrong = run("index", "--db", db, "--repair", "--model", other)
    assert wrong.exit_code == 1 and "built with model" in one_line(wrong)
    (db / "model.pt").write_bytes(b"not a checkpoint")
    refused = run("search", query, "--db", db)
    assert refused.exit_code == 1 and "not an fpkit checkpoint" in one_line(refused)
    repaired = run("index", "--db", db, "--repair", "--model", model)
    assert repaired.exit_code == 0 and "restored its model" in repaired.stderr
    assert search_csv(db, query) == [str(songs[1])]


def test_index_without_paths_brings_the_index_up_to_date(tmp_path: Path, setup) -> None:
    model, _, db = setup
    nothing = run("index", "--db", tmp_path / "nowhere", "--model", model)
    assert nothing.exit_code == 1 and "nothing to index" in one_line(nothing)
    with Database.open_or_create(db, load_model(model)) as opened:
        opened.add_files(write_songs(tmp_path / "more", 1, SONG_S, RATE, start_seed=10), opened.load_model())
        assert opened.indexed_rows == 120 and opened.rows == 160  # stored, not indexed yet
    updated = run("index", "--db", db)
    assert updated.exit_code == 0 and "now 4 songs" in updated.stderr
    with Database.open(db) as reopened:
        assert reopened.indexed_rows == 160


def test_a_manifest_that_lost_a_key_is_one_line(tmp_path: Path, setup) -> None:
    _, songs, db = setup
    manifest = json.loads((db / MANIFEST).read_text())
    del manifest["rows"]
    (db / MANIFEST).write_text(json.dumps(manifest))
    refused = run("search", songs[0], "--db", db)
    assert refused.exit_code == 1 and "unreadable manifest (no valid 'rows')" in one_line(refused)


def test_searching_an_empty_database_is_one_line(tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "bad.wav").write_bytes(b"RIFF\x00\x00garbage")
    made = run("index", tmp_path / "corrupt", "--db", tmp_path / "db", "--model", model)
    assert made.exit_code == 3 and "now 0 songs" in made.stderr
    query = write_audio(tmp_path / "q.wav", make_song(3.0, RATE), RATE)
    empty = run("search", query, "--db", tmp_path / "db")
    assert empty.exit_code == 1 and "holds no songs yet" in one_line(empty)


def test_a_path_without_audio_files_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    for args in (("index", "--db", tmp_path / "db"), ("generate", "--out", tmp_path / "db")):
        refused = run(args[0], tmp_path / "empty", *args[1:], "--model", model)
        assert refused.exit_code == 1 and f"{tmp_path / 'empty'}: no audio files found" in one_line(refused)
        assert not (tmp_path / "db").exists()


@pytest.mark.parametrize(
    ("factory", "problem"),
    [("Bogus", "could not parse index string Bogus"), ("HNSW32", "cannot store row ids")],
)
def test_a_bad_faiss_factory_is_refused_before_any_work(tmp_path: Path, setup, factory: str, problem: str) -> None:
    model, _, db = setup
    manifest = (db / MANIFEST).read_bytes()
    more = write_songs(tmp_path / "more", 1, SONG_S, RATE, start_seed=10)
    for folder in (db, tmp_path / "new"):
        refused = run(
            "index", *more, "--db", folder, "--model", model,
            "--set", f"index.factory={factory}", "--set", "index.exact_below=0",
        )  # fmt: skip
        line = one_line(refused)
        assert refused.exit_code == 1 and f"index.factory={factory!r}" in line and problem in line
    assert (db / MANIFEST).read_bytes() == manifest and not (tmp_path / "new").exists()


# ---- the store's check and salvage, without the command line --------------------------------

DIM = 8


def store_with_songs(tmp_path: Path, counts: list[int]) -> Path:
    tmp_path.mkdir(exist_ok=True)
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    rng = np.random.default_rng(0)
    with Store.create(tmp_path / "db", model, "abc", AudioConfig(), DIM) as store:
        for i, n in enumerate(counts):
            store.append(f"/music/{i}.wav", n / 2, f"sha{i}", n, 0, rng.standard_normal((n, DIM)).astype(np.float32))
        store.commit()
    return tmp_path / "db"


def test_salvage_keeps_a_prefix_in_place_and_copies_survivors_past_a_hole(tmp_path: Path) -> None:
    root = store_with_songs(tmp_path, [4, 5, 6])
    before = np.array(Store.open(root).read_rows(0, 15))
    vectors = only(root, "vectors-*.f16")
    with open(vectors, "r+b") as f:
        f.truncate(7 * DIM * 2)  # song 1 loses its last two rows, song 2 all
    with pytest.raises(StoreDamaged, match=r"holds 7 of the 15 fingerprint rows"):
        Store.open(root)
    salvage = Store.salvage(root)
    assert salvage.lost == ["/music/1.wav", "/music/2.wav"] and salvage.rows_cut == 11
    salvage.store.commit()
    salvage.store.close()
    kept = Store.open(root)
    assert [f.path for f in kept.files] == ["/music/0.wav"] and only(root, "vectors-*.f16") == vectors
    np.testing.assert_array_equal(kept.read_rows(0, kept.rows), before[:4])

    root = store_with_songs(tmp_path / "hole", [4, 5, 6])
    table = only(root, "files-*.jsonl")
    lines = table.read_bytes().splitlines(keepends=True)
    table.write_bytes(lines[0] + b"x" * (len(lines[1]) - 1) + b"\n" + lines[2])
    salvage = Store.salvage(root)
    assert salvage.unreadable == 1 and salvage.rows_cut == 5
    salvage.store.commit()
    salvage.store.close()
    kept = Store.open(root)
    assert [(f.path, f.first_row, f.count) for f in kept.files] == [("/music/0.wav", 0, 4), ("/music/2.wav", 4, 6)]
    np.testing.assert_array_equal(kept.read_rows(0, kept.rows), np.concatenate([before[:4], before[9:]]))
    assert len(list(root.glob("vectors-*"))) == 1  # the old generation is gone
