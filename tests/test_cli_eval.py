"""`fpkit eval` end to end on synthetic songs: report, JSON, plot, reproducibility, --truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner, Result

from fpkit.cli.app import app
from fpkit.db import Database
from fpkit.model import load_model, read_checkpoint

runner = CliRunner()
RATE = 8000
SONG_S = 12.0
# Untrained tiny models need a fine sub-hop grid to place queries (see tests/dbhelpers.py).
SEARCH = ["--set", "search.subhop_shifts=8", "--set", "search.threshold=0.85"]
CLEAN = ["--set", "augment.noise_prob=0", "--set", "augment.ir_prob=0"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """songs/ (4), dummy/ (2), unknown/ (2), noise/ and ir/ folders of small 8 kHz files."""
    write_songs(tmp_path / "songs", 4, SONG_S, RATE, start_seed=0)
    write_songs(tmp_path / "dummy", 2, SONG_S, RATE, start_seed=10)
    write_songs(tmp_path / "unknown", 2, SONG_S, RATE, start_seed=20)
    rng = np.random.default_rng(0)
    write_audio(tmp_path / "noise" / "hum.wav", (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32), RATE)
    decay = np.exp(-np.arange(RATE // 5) / (0.03 * RATE))
    write_audio(tmp_path / "ir" / "room.wav", (rng.standard_normal(RATE // 5) * decay).astype(np.float32), RATE)
    return tmp_path


def run(*args: str | Path) -> Result:
    return runner.invoke(app, ["eval", *map(str, args)])


def synthetic(data: Path, checkpoint: Path, out: Path, *extra: str | Path) -> Result:
    return run(
        "--songs", data / "songs", "--dummy", data / "dummy", "--noise", data / "noise", "--ir", data / "ir",
        "--model", checkpoint, "--lengths", "1,2", "--queries", "4", "--out", out, *SEARCH, *extra,
    )  # fmt: skip


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def queries(out: Path) -> list[dict[str, str]]:
    with (out / "queries.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_synthetic_eval_writes_table_json_and_plot(data: Path, tiny_checkpoint: Path) -> None:
    out = data / "report"
    result = synthetic(data, tiny_checkpoint, out, "--unknown", data / "unknown", "--seed", "5", "--json")
    assert result.exit_code == 0, result.output
    doc = report(out)
    assert json.loads(result.stdout) == doc  # --json: the report on stdout, the table on stderr
    assert "random queries: hit rate (%)" in result.stderr and "aligned queries" in result.stderr
    assert "false_positive_rate" in result.stderr
    settings = doc["settings"]
    assert settings["mode"] == "synthetic" and settings["seed"] == 5 and settings["snr_db"] == [0.0, 10.0]
    assert settings["model_id"] == load_model(tiny_checkpoint).model_id
    assert settings["database_songs"] == 6 and settings["database"] == "(temporary)"
    assert (settings["queries"], settings["unknown_queries"], settings["lengths_s"]) == (4, 4, [1.0, 2.0])
    assert settings["search"]["top_k"] >= 10 and settings["search"]["subhop_shifts"] == 8
    assert set(doc["results"]) == {"random", "aligned"}
    for row in doc["results"]["random"]:
        assert (row["queries"], row["unknown_queries"]) == (4, 4)
        assert 0 <= row["top1_exact"] <= row["top1_near"] <= 1
        assert row["song_top1"] <= row["song_top3"] <= row["song_top10"]
        assert row["false_positive_rate"] is not None
    assert all(row["false_positive_rate"] is None for row in doc["results"]["aligned"])
    assert [t["length_s"] for t in doc["timing"]["search"]["random"]] == [1.0, 2.0]
    assert all(t["mean_ms"] > 0 for t in doc["timing"]["search"]["aligned"])
    assert (out / "hit_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # queries.csv: every search, agreeing with the figures.
    rows = queries(out)
    assert len(rows) == 2 * (4 + 4) + 2 * 4  # random (known and unknown) and aligned, two lengths
    for protocol in ("random", "aligned"):
        for metrics in doc["results"][protocol]:
            mine = [r for r in rows if r["protocol"] == protocol and float(r["length_s"]) == metrics["length_s"]]
            known = [r for r in mine if r["song"]]
            assert len(known) == 4 and all(r["query"].startswith(r["song"] + "@") for r in known)
            assert sum(r["right_song"] == "True" for r in known) / 4 == metrics["song_top1"]
            right = [r for r in known if r["right_song"] == "True"]
            errors = [float(r["offset_s"]) - float(r["start_s"]) for r in right]
            assert [float(r["offset_error_s"]) for r in right] == pytest.approx(errors, abs=1e-3)
            unknown = [r for r in mine if not r["song"]]
            assert all(r["start_s"] == r["offset_error_s"] == "" and r["right_song"] == "False" for r in unknown)
            if unknown:
                assert sum(r["accepted"] == "True" for r in unknown) / 4 == metrics["false_positive_rate"]
    # What degraded each query: the folders' files, at an SNR in the range.
    assert all(r["noise"] == "hum.wav" and r["room"] == "room.wav" and 0 <= float(r["snr_db"]) <= 10 for r in rows)
    assert len({r["snr_db"] for r in rows}) > 1
    assert "queries.csv" in result.stderr


def test_same_seed_same_figures_and_the_database_is_reused(data: Path, tiny_checkpoint: Path) -> None:
    db = data / "db"
    first = synthetic(data, tiny_checkpoint, data / "a", "--db", db, "--seed", "3")
    assert first.exit_code == 0, first.output
    assert (db / "manifest.json").exists()
    # The second run names no model: the database's own copy is used, and nothing is re-indexed.
    second = run(
        "--songs", data / "songs", "--dummy", data / "dummy", "--noise", data / "noise", "--ir", data / "ir",
        "--db", db, "--lengths", "1,2", "--queries", "4", "--out", data / "b", "--seed", "3", *SEARCH,
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    a, b = report(data / "a"), report(data / "b")
    assert a["results"] == b["results"]
    assert {**a["settings"], "model_path": None} == {**b["settings"], "model_path": None}
    assert b["settings"]["database"] == str(db) and b["settings"]["database_songs"] == 6
    # Lengths are cut from the same starts and degraded alike: dropping 1 s leaves 2 s unchanged.
    third = synthetic(data, tiny_checkpoint, data / "c", "--db", db, "--seed", "3", "--lengths", "2")
    assert third.exit_code == 0, third.output
    c = report(data / "c")
    for protocol in ("random", "aligned"):
        assert c["results"][protocol] == a["results"][protocol][1:]


def test_clean_segment_aligned_queries_are_found_exactly(data: Path, tiny_checkpoint: Path) -> None:
    """Without noise or reverb a grid-aligned query is a copy of stored segments: every hit is exact."""
    out = data / "clean"
    result = synthetic(data, tiny_checkpoint, out, "--protocol", "aligned", *CLEAN)
    assert result.exit_code == 0, result.output
    doc = report(out)
    assert list(doc["results"]) == ["aligned"]
    for row in doc["results"]["aligned"]:
        assert row["top1_exact"] == 1.0 and row["song_top1"] == 1.0 and row["top1_accepted"] == 1.0


def test_truth_scores_real_recordings(data: Path, tiny_checkpoint: Path) -> None:
    model = load_model(tiny_checkpoint)
    db = data / "db"
    with Database.create(db, model) as database:
        database.add_files([data / "songs"], model)
        database.update_index(model.config.index)
    rec = data / "recordings"
    write_audio(rec / "take1.wav", make_song(SONG_S, RATE, seed=1)[2 * RATE : 5 * RATE], RATE)
    write_audio(rec / "phone" / "take2.wav", make_song(SONG_S, RATE, seed=3)[9 * RATE : 11 * RATE], RATE)
    write_audio(rec / "street.wav", make_song(3.0, RATE, seed=99), RATE)
    truth = data / "truth.csv"
    truth.write_text("query,song,start_s\ntake1.wav,song_1.wav,2.0\nphone/take2.wav,songs/song_3.wav,9\nstreet.wav,,\n")
    out = data / "real"
    result = run("--queries", rec, "--truth", truth, "--db", db, "--out", out, *SEARCH)
    assert result.exit_code == 0, result.output
    doc = report(out)
    assert doc["settings"]["mode"] == "recordings"
    assert (doc["settings"]["queries"], doc["settings"]["unknown_queries"]) == (2, 1)
    (row,) = doc["results"]["recordings"]
    assert row["length_s"] is None and (row["queries"], row["unknown_queries"]) == (2, 1)
    assert row["top1_exact"] == 1.0 and row["song_top1"] == 1.0
    assert row["false_positive_rate"] == 0.0  # an unrelated song scores below the threshold
    assert "whole" in result.stderr
    listed = {Path(r["query"]).name: r for r in queries(out)}
    assert set(listed) == {"take1.wav", "take2.wav", "street.wav"}
    assert listed["take1.wav"]["song"].endswith("song_1.wav") and listed["take1.wav"]["right_song"] == "True"
    assert listed["street.wav"]["song"] == "" and listed["street.wav"]["accepted"] == "False"
    assert all(r["snr_db"] == r["noise"] == r["room"] == "" for r in listed.values())  # real recordings

    # First L seconds of each recording; a recording shorter than L is left out of that length.
    cut = run("--queries", rec, "--truth", truth, "--db", db, "--out", out, "--lengths", "1,2.5", *SEARCH)
    assert cut.exit_code == 0, cut.output
    rows = report(out)["results"]["recordings"]
    assert [(r["length_s"], r["queries"], r["unknown_queries"]) for r in rows] == [(1.0, 2, 1), (2.5, 1, 1)]


def test_truth_errors_name_the_line(data: Path, tiny_checkpoint: Path) -> None:
    model = load_model(tiny_checkpoint)
    with Database.create(data / "db", model) as database:
        database.add_files([data / "songs"], model)
        database.update_index(model.config.index)
    rec = data / "recordings"
    write_audio(rec / "take1.wav", make_song(2.0, RATE, seed=1), RATE)
    truth = data / "truth.csv"
    truth.write_text("query,song,start_s\ntake1.wav,song_1.wav,soon\n")
    result = run("--queries", rec, "--truth", truth, "--db", data / "db")
    assert result.exit_code == 1
    assert f"{truth}: line 2: start_s 'soon' is not a number" in result.stderr
    truth.write_text("query,song,start_s\ntake1.wav,song_9.wav,1\n")
    result = run("--queries", rec, "--truth", truth, "--db", data / "db")
    assert result.exit_code == 1
    assert "line 2: song 'song_9.wav' is not in the database" in result.stderr


def test_a_query_song_that_cannot_be_indexed_is_an_error(data: Path, tiny_checkpoint: Path) -> None:
    write_audio(data / "songs" / "silence.wav", np.zeros(5 * RATE, dtype=np.float32), RATE)
    result = synthetic(data, tiny_checkpoint, data / "out")
    assert result.exit_code == 1
    assert "silence.wav: silent" in result.stderr and "leave it out of --songs" in result.stderr


def test_an_unknown_song_that_is_indexed_is_refused(data: Path, tiny_checkpoint: Path) -> None:
    result = synthetic(data, tiny_checkpoint, data / "out", "--unknown", data / "dummy")
    assert result.exit_code == 1
    assert "song_10.wav: is in the database" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--songs", "nowhere"], "--songs nowhere: no such folder"),
        (["--songs", "{songs}", "--queries", "many"], "--queries many: expected a number of queries"),
        (["--songs", "{songs}", "--lengths", "1,x"], "--lengths: 'x' is not a number of seconds"),
        (
            ["--songs", "{songs}", "--model", "{model}", "--lengths", "0.5,2"],
            "--lengths: 0.5 s is shorter than one segment (1 s)",
        ),
        (
            ["--songs", "{songs}", "--model", "{model}", "--lengths", "30"],
            "no song is longer than the longest query (30 s)",
        ),
        (["--songs", "{songs}", "--snr", "10,0"], "--snr 10,0: expected LOW,HIGH in dB with LOW <= HIGH"),
        (["--songs", "{songs}", "--protocol", "aligned", "--unknown", "{songs}"], "--unknown queries are scored"),
        (["--truth", "{truth}", "--songs", "{songs}"], "--songs is for synthetic queries"),
        (["--truth", "{truth}", "--queries", "{songs}"], "--truth needs --queries DIR"),
        (["--lengths", "2"], "give --songs DIR"),
        (["--songs", "{songs}", "--model", "missing.pt"], "missing.pt: no such model file"),
        (["--songs", "{songs}", "--model", "{model}", "--set", "index.factory=Bogus"], "index.factory='Bogus'"),
        (["--queries", "{songs}", "--truth", "{truth}", "--db", "{songs}"], "no database there"),
        (["--queries", "{songs}", "--truth", "{songs}/t.csv", "--db", "{songs}"], "cannot read ground truth"),
    ],
)
def test_usage_errors_are_one_line(data: Path, tiny_checkpoint: Path, args: list[str], message: str) -> None:
    truth = data / "truth.csv"
    truth.write_text("query,song,start_s\nsong_0.wav,,\n")
    result = run(*[a.format(songs=data / "songs", truth=truth, model=tiny_checkpoint) for a in args])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_search_settings_come_from_the_model_unless_a_config_is_given(data: Path, tiny_checkpoint: Path) -> None:
    stored = read_checkpoint(tiny_checkpoint)
    stored["config"]["search"]["segment_k"] = 7  # as a calibrated threshold travels with a model
    torch.save(stored, tiny_checkpoint)
    out = data / "report"
    assert synthetic(data, tiny_checkpoint, out, "--protocol", "random").exit_code == 0
    assert report(out)["settings"]["search"]["segment_k"] == 7
    assert synthetic(data, tiny_checkpoint, out, "--protocol", "random", "--set", "search.segment_k=9").exit_code == 0
    assert report(out)["settings"]["search"]["segment_k"] == 9
