from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, save_model, search_finds
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 3, SONG_S, RATE)
    return model, songs, tmp_path / "db"


def run(*args: str | Path, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def test_index_then_search_jsonl_follows_the_contract(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    done = run("index", tmp_path / "songs", "--db", db, "--model", model)
    assert done.exit_code == 0, done.output
    clip = write_audio(tmp_path / "q" / "clip.flac", excerpt(make_song(SONG_S, RATE, 2), 7.3, 4.0), RATE)
    unknown = write_audio(tmp_path / "q" / "unknown.wav", make_song(4.0, RATE, 100), RATE)
    found = run("search", clip, unknown, "--db", db, "--format", "jsonl", "--top-k", "2")
    assert found.exit_code == 0, found.output
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(clip), str(unknown)]
    hit, miss = lines
    assert set(hit) == {"query", "match", "offset_s", "score", "candidates"}
    assert hit["match"] == str(songs[2]) and abs(hit["offset_s"] - 7.3) < 0.25 and isinstance(hit["score"], float)
    assert len(hit["candidates"]) == 2 and set(hit["candidates"][0]) == {"ref", "offset_s", "score"}
    assert miss["match"] is None and miss["offset_s"] is None and miss["score"] is None


def test_queries_and_songs_can_come_from_stdin(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    assert run("index", "-", "--db", db, "--model", model, stdin="\n".join(map(str, songs)) + "\n").exit_code == 0
    clips = [
        write_audio(tmp_path / f"c{i}.wav", excerpt(make_song(SONG_S, RATE, i), 2.0 + i, 3.0), RATE) for i in range(3)
    ]
    found = run("search", "-", "--db", db, "--format", "csv", stdin="\n".join(map(str, clips)))
    assert found.exit_code == 0, found.output
    rows = list(csv.DictReader(io.StringIO(found.stdout)))
    assert [r["match"] for r in rows] == [str(s) for s in songs]
    assert list(rows[0]) == ["query", "match", "offset_s", "score", "error"]


def test_a_second_index_adds_nothing_and_rebuild_starts_over(setup) -> None:
    model, songs, db = setup
    assert run("index", *songs[:2], "--db", db, "--model", model).exit_code == 0
    again = run("index", *songs, "--db", db)  # the database's own model
    assert again.exit_code == 0 and "stored 1 new songs" in again.stderr and "skipped 2" in again.stderr
    rebuilt = run("index", songs[0], "--db", db, "--rebuild")
    assert rebuilt.exit_code == 0 and "now 1 songs" in rebuilt.stderr


def test_a_corrupt_song_is_listed_and_the_rest_indexed(tmp_path: Path, setup) -> None:
    model, _, db = setup
    (tmp_path / "songs" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    done = run("index", tmp_path / "songs", "--db", db, "--model", model)
    assert done.exit_code == 3
    assert "corrupt.wav: not readable as audio" in done.stderr and "stored 3 new songs" in done.stderr


def test_another_model_is_a_one_line_error(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    assert run("index", *songs, "--db", db, "--model", model).exit_code == 0
    other = save_model(tmp_path / "other.pt", db_config(TINY), seed=1)
    for args in (("index", songs[0]), ("search", songs[0])):
        refused = run(*args, "--db", db, "--model", other)
        assert refused.exit_code == 1
        assert "built with model" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_bad_queries_and_missing_databases_are_named(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    missing = run("search", songs[0], "--db", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "nowhere: no such database folder" in missing.stderr
    assert run("index", *songs, "--db", db, "--model", model).exit_code == 0
    short = write_audio(tmp_path / "short.wav", make_song(0.6, RATE), RATE)
    found = run("search", short, songs[1], "--db", db, "--format", "jsonl")
    assert found.exit_code == 3
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [line["match"] for line in lines] == [None, str(songs[1])]
    assert "too short" in lines[0]["error"]
    assert "short.wav: too short" in found.stderr


def test_a_silent_query_is_no_match_not_an_error(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    assert run("index", *songs, "--db", db, "--model", model).exit_code == 0
    silent = write_audio(tmp_path / "silent.wav", np.zeros(5 * RATE, dtype=np.float32), RATE)
    found = run("search", silent, songs[1], "--db", db, "--format", "jsonl")
    assert found.exit_code == 0, found.output
    quiet, song = (json.loads(line) for line in found.stdout.splitlines())
    assert quiet == {"query": str(silent), "match": None, "offset_s": None, "score": None, "candidates": []}
    assert song["match"] == str(songs[1])


def test_generated_parts_merge_into_one_database(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    for i, song in enumerate(songs):
        assert run("generate", song, "--out", tmp_path / f"part{i}", "--model", model).exit_code == 0
    merged = run(
        "index", "--db", db, *[a for i in range(3) for a in ("--merge", tmp_path / f"part{i}")],
        "--set", "index.factory=IVF2,Flat", "--set", "index.exact_below=0", "--set", "index.on_disk=true",
    )  # fmt: skip
    assert merged.exit_code == 0, merged.output
    search_finds(db, songs[1], 1, SONG_S, 11.0, tmp_path)


def test_table_output_is_for_people(tmp_path: Path, setup) -> None:
    model, songs, db = setup
    assert run("index", *songs, "--db", db, "--model", model).exit_code == 0
    shown = run("search", songs[0], "--db", db)
    assert shown.exit_code == 0 and "score" in shown.stdout and "1.000" in shown.stdout
