"""Output to a pipe or a file: whole lines, and progress as lines (CliRunner's streams are not terminals)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, save_model
from synth import write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app
from fpkit.cli.common import RichBars

runner = CliRunner()


def test_index_shows_line_progress_and_search_keeps_long_paths_whole(tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    deep = tmp_path / ("a folder with a name long enough to pass eighty columns on its own " * 2).strip()
    songs = write_songs(deep, 2, SONG_S, RATE)
    db = tmp_path / "db"
    done = runner.invoke(app, ["index", *map(str, songs), "--db", str(db), "--model", str(model)])
    assert done.exit_code == 0, done.output
    assert "fingerprinting: 2/2" in done.stderr.splitlines() and "indexing: 80/80" in done.stderr.splitlines()
    found = runner.invoke(app, ["search", str(songs[0]), "--db", str(db)])
    assert found.exit_code == 0, found.output
    rows = [line for line in found.stdout.splitlines() if str(songs[0]) in line]
    assert len(rows) == 1 and rows[0].count(str(songs[0])) == 2  # query and match, each on one line


def test_quiet_index_shows_no_progress(tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 2, SONG_S, RATE)
    done = runner.invoke(
        app, ["--quiet", "index", *map(str, songs), "--db", str(tmp_path / "db"), "--model", str(model)]
    )
    assert done.exit_code == 0, done.output
    assert not [line for line in done.stderr.splitlines() if line.startswith(("fingerprinting:", "indexing:"))]


def test_a_long_summary_line_is_not_wrapped() -> None:
    done = runner.invoke(app, ["info"])
    assert done.exit_code == 0
    assert len(done.stderr.splitlines()) == 1 and "threads" in done.stderr


def test_the_one_renderer_writes_a_line_per_tenth_of_each_phase_off_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with RichBars() as bars:
        bars.start("training", 20)
        for step in range(20):
            bars.advance(note=f"loss {1 / (step + 1):.2f}")
        bars.start("<stdin> (seconds of audio)", None)  # a length nobody knows: no tenths to report
        bars.advance(30.5)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"training: {n}/20 loss {1 / n:.2f}" for n in range(2, 21, 2)]
