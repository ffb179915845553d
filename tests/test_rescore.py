"""`index.rescore`: databases that keep opq32 codes instead of float16 fingerprints for re-scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, save_model
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

import fpkit.db.rescore
from fpkit.cli.app import app
from fpkit.config import AudioConfig, IndexConfig
from fpkit.db.index import IndexConfigError, check_index_config
from fpkit.db.rescore import keep_rows_as
from fpkit.db.store import MANIFEST, Store, StoreDamaged

runner = CliRunner()
TRAIN_ROWS = 256  # one training point per centroid: the least k-means takes
SONG_ROWS = 40  # fingerprints of a 20 s song (the last segment padded)
DIM = 32  # the tiny model's: 32 one-dimensional sub-vectors


@pytest.fixture(autouse=True)
def small_codebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fpkit.db.rescore, "TRAIN_ROWS", TRAIN_ROWS)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A tiny model and ten songs: eight of them are enough rows to train a codebook."""
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    return model, write_songs(tmp_path / "songs", 10, SONG_S, RATE)


def run(*args: str | Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def manifest(db: Path) -> dict:
    return json.loads((db / MANIFEST).read_text())


def found(db: Path, tmp_path: Path, seed: int, start_s: float = 6.3) -> dict:
    """`fpkit search` of a 4 s excerpt of song `seed`, as its JSON line."""
    clip = write_audio(tmp_path / "clips" / f"{seed}.wav", excerpt(make_song(SONG_S, RATE, seed), start_s, 4.0), RATE)
    result = run("search", clip, "--db", db, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_opq32_database_trains_its_codes_then_appends_merges_searches_and_monitors(tmp_path: Path, setup) -> None:
    model, songs = setup
    db, opq32 = tmp_path / "db", ("--set", "index.rescore=opq32")
    first = run("index", *songs[:4], "--db", db, "--model", model, *opq32)
    assert first.exit_code == 0, first.output
    assert "kept as float16 (opq32 codes from 256 segments on)" in first.stderr  # 160 rows: too few to train
    assert (manifest(db)["rescore"], manifest(db)["codebook"], manifest(db)["format"]) == ("opq32", None, 1)

    second = run("index", *songs[4:8], "--db", db)  # the database keeps its setting without --set
    assert second.exit_code == 0 and "320 segments kept as opq32 codes" in second.stderr, second.output
    written = manifest(db)
    assert written["dtype"] == "uint8" and (db / written["codebook"]).exists()
    assert written["format"] == 2  # fpkit from before codes refuses it ("unknown database format")
    assert [p.name for p in db.glob("vectors-*")] == [written["vectors"]]  # the float16 rows are gone
    assert (db / written["vectors"]).stat().st_size == 8 * SONG_ROWS * 32

    assert run("index", songs[8], "--db", db).exit_code == 0  # appended as codes
    assert run("generate", songs[9], "--out", tmp_path / "part", "--model", model).exit_code == 0
    assert run("index", "--db", db, "--merge", tmp_path / "part").exit_code == 0  # a float16 part, encoded
    assert (db / written["vectors"]).stat().st_size == 10 * SONG_ROWS * 32
    assert manifest(db)["codebook"] == written["codebook"]  # trained once
    with Store.open(db) as store:
        assert (store.rescore, store.kept_as, store.rows) == ("opq32", "opq32", 10 * SONG_ROWS)

    reference = tmp_path / "float16"
    assert run("index", *songs, "--db", reference, "--model", model).exit_code == 0
    for seed in (1, 5, 8, 9):
        line, exact = found(db, tmp_path, seed), found(reference, tmp_path, seed)
        assert line["match"] == str(songs[seed]) and abs(line["offset_s"] - 6.3) < 0.25
        assert abs(line["score"] - exact["score"]) < 0.03  # a codebook of 320 training points

    played = [make_song(5.0, RATE, 100), excerpt(make_song(SONG_S, RATE, 5), 2.5, 9.0), make_song(5.0, RATE, 101)]
    recording = write_audio(tmp_path / "recording.wav", np.concatenate(played), RATE)
    monitored = run("monitor", recording, "--db", db, "--format", "jsonl")
    assert monitored.exit_code == 0, monitored.output
    (span,) = (json.loads(line) for line in monitored.stdout.splitlines())
    assert span["match"] == str(songs[5]) and abs(span["start_s"] - 5.0) <= 1.5


def test_rebuild_keeps_the_setting_and_trains_a_new_codebook(tmp_path: Path, setup) -> None:
    model, songs = setup
    db = tmp_path / "db"
    assert run("index", *songs[:8], "--db", db, "--model", model, "--set", "index.rescore=opq32").exit_code == 0
    old = manifest(db)["codebook"]
    rebuilt = run("index", *songs[2:10], "--db", db, "--rebuild")
    assert rebuilt.exit_code == 0 and "kept as opq32 codes" in rebuilt.stderr, rebuilt.output
    assert manifest(db)["codebook"] not in (None, old) and not (db / old).exists()
    assert found(db, tmp_path, 9)["match"] == str(songs[9])


def test_a_database_from_before_the_setting_opens_and_can_take_codes(tmp_path: Path, setup) -> None:
    model, songs = setup
    db = tmp_path / "db"
    assert run("index", *songs[:8], "--db", db, "--model", model).exit_code == 0
    old = manifest(db)
    for key in ("rescore", "codebook"):
        del old[key]
    (db / MANIFEST).write_text(json.dumps(old))
    assert found(db, tmp_path, 3)["match"] == str(songs[3])
    assert run("index", "--db", db).exit_code == 0 and manifest(db).get("codebook") is None  # stays float16

    converted = run("index", "--db", db, "--set", "index.rescore=opq32")
    assert converted.exit_code == 0 and "kept as opq32 codes" in converted.stderr, converted.output
    assert found(db, tmp_path, 3)["match"] == str(songs[3])


def test_an_invalid_setting_is_one_line_before_anything_is_made(tmp_path: Path, setup) -> None:
    model, songs = setup
    refused = run("index", songs[0], "--db", tmp_path / "db", "--model", model, "--set", "index.rescore=opq8")
    assert refused.exit_code == 1 and not (tmp_path / "db").exists()
    assert refused.stderr.strip() == "error: --set: index.rescore: must be one of float16, opq32, got 'opq8'"
    with pytest.raises(IndexConfigError, match=r"index.rescore=opq32: .* this model's 48 dimensions do not divide"):
        check_index_config(IndexConfig(rescore="opq32"), 48)


def new_store(tmp_path: Path, rows: int) -> tuple[Store, np.ndarray]:
    """A writable store asked to keep opq32 codes, holding one song of `rows` rows, committed."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    store = Store.create(tmp_path / "db", model, "abc", AudioConfig(), DIM)
    prints = add(store, "a", rows)
    keep_rows_as(store, "opq32")
    store.commit()
    return store, prints


def add(store: Store, name: str, rows: int) -> np.ndarray:
    prints = np.random.default_rng(len(store.files)).standard_normal((rows, DIM)).astype(np.float32)
    prints /= np.linalg.norm(prints, axis=1, keepdims=True)
    store.append(f"/music/{name}.wav", rows / 2, name, rows, 0, prints)
    return prints


def generated(db: Path) -> list[str]:
    return sorted(p.name for p in db.iterdir() if p.name.startswith(("vectors-", "files-", "codebook-")))


def test_encoding_takes_effect_at_commit_and_a_crash_before_it_keeps_the_float16_rows(tmp_path: Path) -> None:
    store, prints = new_store(tmp_path, TRAIN_ROWS - 1)
    assert store.kept_as == "float16"  # too few rows to train
    add(store, "b", 1)
    keep_rows_as(store, "float16")  # trains and encodes: the store keeps its opq32 setting
    assert store.kept_as == "opq32" and len(generated(tmp_path / "db")) == 4  # new codes and codebook beside
    store.close()  # a crash before the commit
    db = tmp_path / "db"
    with Store.open(db, writable=True) as reopened:
        assert (reopened.rescore, reopened.kept_as, reopened.rows) == ("opq32", "float16", TRAIN_ROWS - 1)
        np.testing.assert_allclose(reopened.read_rows(0, reopened.rows), prints, atol=1e-3)
        reopened.commit()
    assert generated(db) == sorted([manifest(db)["vectors"], manifest(db)["files"]])  # the stale codes are gone


def test_codes_appended_after_the_last_commit_are_cut_off(tmp_path: Path) -> None:
    store, _ = new_store(tmp_path, TRAIN_ROWS)
    assert store.kept_as == "opq32"
    add(store, "b", 10)
    store.close_writers()
    store.close()  # a crash: appended, never committed
    db = tmp_path / "db"
    with Store.open(db, writable=True) as writer:
        assert writer.rows == TRAIN_ROWS and (db / writer.manifest["vectors"]).stat().st_size == TRAIN_ROWS * 32
        add(writer, "b", 10)
        writer.commit()
    with Store.open(db) as reader:
        assert reader.rows == TRAIN_ROWS + 10 and reader.read_rows(0, reader.rows).shape == (TRAIN_ROWS + 10, DIM)


def test_a_lost_codebook_is_named_and_repair_drops_the_songs_it_decoded(tmp_path: Path) -> None:
    store, _ = new_store(tmp_path, TRAIN_ROWS)
    store.close()
    db = tmp_path / "db"
    codebook = db / manifest(db)["codebook"]
    codebook.write_bytes(b"not a codebook")
    with pytest.raises(StoreDamaged, match=rf"{codebook.name}: missing or unreadable \(the codebook"):
        Store.open(db)
    salvage = Store.salvage(db)
    assert salvage.lost == ["/music/a.wav"] and salvage.rows_cut == TRAIN_ROWS
    salvage.store.commit()
    salvage.store.close()
    with Store.open(db) as kept:
        assert (kept.rows, kept.rescore, kept.kept_as) == (0, "opq32", "float16")  # trains again when refilled
    assert generated(db) == sorted([manifest(db)["vectors"], manifest(db)["files"]])
