from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, save_model
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app

runner = CliRunner()
SPAN_KEYS = {"recording", "start_s", "end_s", "match", "offset_s", "score"}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A database of three synthetic songs made with the tiny test model."""
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 3, SONG_S, RATE)
    db = tmp_path / "db"
    done = runner.invoke(app, ["index", str(tmp_path / "songs"), "--db", str(db), "--model", str(model)])
    assert done.exit_code == 0, done.output
    return db, songs


def recording() -> tuple[np.ndarray, list[tuple[int, float, float, float]]]:
    """Unknown music around excerpts of songs 1 and 2 (on the hop grid, for the untrained model).

    Returns the wave at the model rate and (song, start_s, end_s, offset_s) of each excerpt.
    """
    wave = np.concatenate(
        [
            make_song(5.0, RATE, 100),
            excerpt(make_song(SONG_S, RATE, 1), 6.0, 9.0),
            make_song(6.0, RATE, 101),
            excerpt(make_song(SONG_S, RATE, 2), 2.5, 8.0),
            make_song(4.0, RATE, 102),
        ]
    )
    return wave, [(1, 5.0, 14.0, 6.0), (2, 20.0, 28.0, 2.5)]


def run(*args: str | Path, stdin: bytes | str | None = None):
    return runner.invoke(app, ["monitor", *map(str, args)], input=stdin)


def check_spans(lines: list[dict], songs: list[Path], truth: list[tuple[int, float, float, float]]) -> None:
    assert [line["match"] for line in lines] == [str(songs[song]) for song, *_ in truth]
    for line, (_, start, end, offset) in zip(lines, truth, strict=True):
        assert abs(line["start_s"] - start) <= 1.5 and abs(line["end_s"] - end) <= 1.5
        assert abs((line["offset_s"] - line["start_s"]) - (offset - start)) < 0.3
        assert isinstance(line["score"], float)


def test_jsonl_lists_each_span_in_time_order(tmp_path: Path, setup) -> None:
    db, songs = setup
    wave, truth = recording()
    path = write_audio(tmp_path / "rec.flac", AF.resample(torch.from_numpy(wave), RATE, 44100).numpy(), 44100)
    done = run(path, "--db", db, "--format", "jsonl")
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(line) == SPAN_KEYS and line["recording"] == str(path) for line in lines)
    check_spans(lines, songs, truth)


def test_gaps_are_listed_with_a_null_match(tmp_path: Path, setup) -> None:
    db, songs = setup
    wave, truth = recording()
    path = write_audio(tmp_path / "rec.wav", wave, RATE)
    done = run(path, "--db", db, "--format", "jsonl", "--gaps")
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["match"] is None for line in lines] == [True, False, True, False, True]
    assert lines[0]["start_s"] == 0.0 and lines[-1]["end_s"] == pytest.approx(len(wave) / RATE)
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(lines))
    assert all(line["offset_s"] is None and line["score"] is None for line in lines[::2])
    check_spans(lines[1::2], songs, truth)


def test_raw_audio_from_stdin_gives_the_same_spans_as_the_file(tmp_path: Path, setup) -> None:
    db, _ = setup
    wave, _ = recording()
    path = write_audio(tmp_path / "rec.wav", wave, RATE)
    from_file = run(path, "--db", db, "--format", "jsonl")
    raw = AF.resample(torch.from_numpy(wave), RATE, 16000).numpy().astype("<f4").tobytes()
    from_stdin = run("-", "--db", db, "--format", "jsonl", "--rate", "16000", stdin=raw)
    assert from_stdin.exit_code == 0, from_stdin.output
    streamed, whole = ([json.loads(line) for line in done.stdout.splitlines()] for done in (from_stdin, from_file))
    assert [line["recording"] for line in streamed] == ["<stdin>"] * len(whole)
    assert [line["match"] for line in streamed] == [line["match"] for line in whole]
    for a, b in zip(streamed, whole, strict=True):
        assert abs(a["start_s"] - b["start_s"]) <= 0.5 and abs(a["end_s"] - b["end_s"]) <= 0.5


def test_csv_and_table(tmp_path: Path, setup) -> None:
    db, songs = setup
    wave, _ = recording()
    path = write_audio(tmp_path / "rec.wav", wave, RATE)
    done = run(path, "--db", db, "--format", "csv")
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(rows[0]) == ["recording", "start_s", "end_s", "match", "offset_s", "score", "error"]
    assert [row["match"] for row in rows] == [str(songs[1]), str(songs[2])]
    table = run(path, "--db", db)
    assert table.exit_code == 0
    rows = table.stdout.splitlines()
    assert rows[0] == str(path) and rows[1].split() == ["start", "end", "offset", "score", "match"]
    assert re.fullmatch(rf" +0:2\d\.\d +0:2\d\.\d +\d+\.\d\d s +[01]\.\d{{3}}  {songs[2]}", rows[3])


def test_a_bad_recording_is_named_and_the_others_monitored(tmp_path: Path, setup) -> None:
    db, songs = setup
    wave, _ = recording()
    good = write_audio(tmp_path / "rec.wav", wave, RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage")
    short = write_audio(tmp_path / "short.wav", make_song(0.5, RATE, 1), RATE)
    silent = write_audio(tmp_path / "silent.wav", np.zeros(3 * RATE, np.float32), RATE)
    done = run(corrupt, good, short, silent, tmp_path / "missing.wav", "--db", db, "--format", "jsonl")
    assert done.exit_code == 3
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    errors = {line["recording"]: line["error"] for line in lines if "error" in line}
    assert list(errors) == [str(corrupt), str(short), str(silent), str(tmp_path / "missing.wav")]
    assert "not readable as audio" in errors[str(corrupt)] and "too short" in errors[str(short)]
    assert "silent" in errors[str(silent)]
    assert [line["match"] for line in lines if line["recording"] == str(good)] == [str(songs[1]), str(songs[2])]
    assert "corrupt.wav: not readable as audio" in done.stderr


def test_stdin_that_is_not_f32le_is_an_error(setup) -> None:
    db, _ = setup
    done = run("-", "--db", db, "--format", "jsonl", stdin=np.zeros(RATE * 3, "<f4").tobytes() + b"\x01")
    assert done.exit_code == 3
    assert "<stdin>: ends inside a sample" in done.stderr


def test_unusable_options_are_one_line_errors(tmp_path: Path, setup) -> None:
    db, _ = setup
    twice = run("-", "-", "--db", db)
    assert twice.exit_code == 1 and "only once" in twice.stderr
    missing = run("x.wav", "--db", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "error:" in missing.stderr
    other = save_model(tmp_path / "other.pt", db_config(TINY), seed=1)
    mismatch = run("x.wav", "--db", db, "--model", other)
    assert mismatch.exit_code == 1 and "built with model" in mismatch.stderr


def test_the_lead_weight_set_for_search_scores_spans_too(tmp_path: Path, setup) -> None:
    db, songs = setup
    wave, truth = recording()
    path = write_audio(tmp_path / "rec.wav", wave, RATE)
    plain = run(path, "--db", db, "--format", "jsonl", "--threshold", "0.3")
    weighted = run(path, "--db", db, "--format", "jsonl", "--threshold", "0.3", "--set", "search.lead_weight=1")
    assert plain.exit_code == weighted.exit_code == 0, plain.output + weighted.output
    before = [json.loads(line) for line in plain.stdout.splitlines()]
    after = [json.loads(line) for line in weighted.stdout.splitlines()]
    check_spans(after, songs, truth)
    # The same spans, each scored above its mean by its lead over the other songs.
    assert [{**line, "score": None} for line in after] == [{**line, "score": None} for line in before]
    assert all(a["score"] > b["score"] for a, b in zip(after, before, strict=True))


def test_the_path_level_is_set_like_any_search_setting(tmp_path: Path, setup) -> None:
    db, _ = setup
    path = write_audio(tmp_path / "rec.wav", recording()[0], RATE)
    done = run(path, "--db", db, "--format", "jsonl", "--set", "search.monitor_level=0.99")
    assert done.exit_code == 0, done.output
    assert done.stdout == ""  # no segment is heard that well: no song anywhere
    bad = run(path, "--db", db, "--set", "search.monitor_level=1.5")
    assert bad.exit_code != 0 and "search.monitor_level" in bad.output


@pytest.mark.parametrize(("given", "cores", "expected"), [(None, 2, "1"), (None, 6, "4"), ("3", 2, "3")])
def test_each_library_gets_one_thread_unless_omp_num_threads_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str | None, cores: int, expected: str
) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "")  # so that the test leaves them as they were
        monkeypatch.delenv(name)
    if given is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", given)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    run("recording.wav", "--db", tmp_path / "no-db")  # set before anything loads, whatever happens next
    # The network, the index and decoding work at once: the network's operations get the cores left.
    assert os.environ["OMP_NUM_THREADS"] == expected
    assert os.environ.get("OPENBLAS_NUM_THREADS") == (None if given else "1")
