"""SIGINT and SIGTERM stop every long command alike: commit or save, one line, exit 130 (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, excerpt, save_model
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

import fpkit.db.store
import fpkit.evaluation.run
from fpkit.cli.app import app
from fpkit.db import Database, Searcher
from fpkit.db.store import Store
from fpkit.interrupt import stop_on_signals, uninterrupted

runner = CliRunner()
STOPS = [
    pytest.param(signal.SIGINT, id="SIGINT-inherited-as-ignored"),
    pytest.param(signal.SIGTERM, id="SIGTERM"),
]


@pytest.fixture(autouse=True)
def sigint_ignored() -> Iterator[None]:
    """As in a job a script starts in the background: Python then leaves SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def run(*args: str | Path, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def on_call(number: int, real: Callable, stop: int) -> Callable:  # type: ignore[type-arg]
    """`real`, but the `number`-th call sends signal `stop` to this process first."""
    calls = []

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == number:
            os.kill(os.getpid(), stop)
        return real(*args, **kwargs)

    return wrapper


def interrupted_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if "interrupted" in line]
    return line


@pytest.mark.parametrize("stop", STOPS)
def test_stop_signals_raise_even_where_sigint_was_ignored(stop: int) -> None:
    before = signal.getsignal(stop)
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        os.kill(os.getpid(), stop)
    assert signal.getsignal(stop) == before  # put back afterwards


def test_a_signal_inside_an_uninterrupted_step_waits_for_its_end() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("the rest of the step")
        done.append("after the step")
    assert done == ["the rest of the step"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Path]]:
    return save_model(tmp_path / "tiny.pt", db_config(TINY)), write_songs(tmp_path / "songs", 3, SONG_S, RATE)


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("command", ["index", "generate"])
def test_adding_songs_commits_those_stored_and_exits_130(
    tmp_path: Path, setup, monkeypatch: pytest.MonkeyPatch, command: str, stop: int
) -> None:
    model, songs = setup
    monkeypatch.setattr(Store, "append", on_call(3, Store.append, stop))  # the signal comes before song 3 is written
    target = ("--db",) if command == "index" else ("--out",)
    stopped = run(command, *songs, *target, tmp_path / "db", "--model", model)
    assert "keeps the 2 songs stored so far" in interrupted_line(stopped)
    monkeypatch.undo()
    with Database.open(tmp_path / "db") as db:
        assert [s.path for s in db.songs] == [str(s) for s in songs[:2]]
    again = run(command, *songs, *target, tmp_path / "db")
    assert again.exit_code == 0 and "stored 1 new songs" in again.stderr and "skipped 2" in again.stderr


def test_a_signal_while_a_song_is_written_lets_it_finish(
    tmp_path: Path, setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, songs = setup
    # json.dumps runs between writing a song's fingerprints and its line in the files table.
    monkeypatch.setattr(fpkit.db.store, "json", _JsonStoppingOn(2))
    stopped = run("index", *songs, "--db", tmp_path / "db", "--model", model)
    assert "keeps the 2 songs stored so far" in interrupted_line(stopped)
    monkeypatch.undo()
    with Database.open(tmp_path / "db") as db:
        assert len(db.songs) == 2 and db.rows == sum(s.count for s in db.songs)


class _JsonStoppingOn:
    """`json`, whose `dumps` sends SIGTERM on its `number`-th call."""

    def __init__(self, number: int) -> None:
        self.dumps = on_call(number, json.dumps, signal.SIGTERM)

    def __getattr__(self, name: str) -> object:
        return getattr(json, name)


@pytest.mark.parametrize("stop", STOPS)
def test_search_writes_each_result_as_found_and_stops_at_130(
    tmp_path: Path, setup, monkeypatch: pytest.MonkeyPatch, stop: int
) -> None:
    model, songs = setup
    assert run("index", *songs, "--db", tmp_path / "db", "--model", model).exit_code == 0
    clips = [write_audio(tmp_path / f"c{i}.wav", excerpt(make_song(SONG_S, RATE, i), 3.0, 3.0), RATE) for i in range(3)]
    real = Searcher.search_file
    written: list[int] = []

    def search_file(self: Searcher, path: str | Path):  # type: ignore[no-untyped-def]
        written.append(sys.stdout.buffer.getvalue().count(b"\n"))  # what a reader of the pipe has already
        if len(written) == 4:
            os.kill(os.getpid(), stop)
        return real(self, path)

    monkeypatch.setattr(Searcher, "search_file", search_file)
    stopped = run("search", "-", "--db", tmp_path / "db", "--format", "jsonl", stdin="\n".join(map(str, clips * 2)))
    assert "interrupted after 3 of 6 queries" in interrupted_line(stopped)
    assert written == [0, 1, 2, 3]
    assert [json.loads(line)["match"] for line in stopped.stdout.splitlines()] == [str(s) for s in songs]

    written.clear()
    listed = run("search", *clips, "--db", tmp_path / "db", "--format", "csv")
    assert listed.exit_code == 0 and written == [1, 2, 3]  # after the header, a row per query


def test_eval_stops_at_130_keeping_the_songs_it_indexed(tmp_path: Path, setup, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = setup
    monkeypatch.setattr(fpkit.evaluation.run, "cut", on_call(2, fpkit.evaluation.run.cut, signal.SIGTERM))
    stopped = run(
        "eval", "--songs", tmp_path / "songs", "--db", tmp_path / "db", "--model", model,
        "--lengths", "2", "--queries", "2", "--out", tmp_path / "report",
    )  # fmt: skip
    assert "no report written" in interrupted_line(stopped)
    assert not (tmp_path / "report" / "report.json").exists()
    with Database.open(tmp_path / "db") as db:
        assert len(db.songs) == 3
