"""`--set` on the database commands: what the model fixes is refused, the rest reaches the work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, save_model
from synth import write_songs
from typer.testing import CliRunner, Result

import fpkit.db.search
import fpkit.model
from fpkit.cli.app import app
from fpkit.errors import FpkitError

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[list[Path], Path]:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 2, SONG_S, RATE)
    db = tmp_path / "db"
    done = runner.invoke(app, ["index", *map(str, songs), "--db", str(db), "--model", str(model)])
    assert done.exit_code == 0, done.output
    return songs, db


def one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("command", "setting", "fixed"),
    [
        ("index", "audio.hop_s=0.25", "audio.hop_s=0.5"),
        ("index", "model.emb_dim=16", "model.emb_dim=32"),
        ("generate", "features.n_mels=32", "features.n_mels=64"),
        ("search", "features.n_mels=32", "features.n_mels=64"),
    ],
)
def test_a_setting_fixed_by_the_model_is_refused_and_nothing_written(
    tmp_path: Path, indexed: tuple[list[Path], Path], command: str, setting: str, fixed: str
) -> None:
    songs, db = indexed
    more = write_songs(tmp_path / "more", 1, SONG_S, RATE, start_seed=7)
    before = {p.name: p.stat().st_mtime_ns for p in db.iterdir()}
    args = {
        "index": ["index", str(more[0]), "--db", str(db)],
        "generate": ["generate", str(more[0]), "--out", str(tmp_path / "part"), "--model", str(db / "model.pt")],
        "search": ["search", str(songs[0]), "--db", str(db)],
    }[command]
    refused = runner.invoke(app, [*args, "--set", setting])
    assert refused.exit_code == 1
    line = one_line(refused)
    assert f"--set {setting.split('=')[0]}: fixed by the model ({fixed})" in line
    assert refused.stdout == ""
    assert {p.name: p.stat().st_mtime_ns for p in db.iterdir()} == before
    assert not (tmp_path / "part").exists()


def test_search_uses_the_batch_size_set_on_its_command_line(
    indexed: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, db = indexed
    sizes: list[int] = []
    real = fpkit.db.search.query_prints

    def spy(*args, **kwargs):
        sizes.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(fpkit.db.search, "query_prints", spy)
    found = runner.invoke(app, ["search", str(songs[0]), "--db", str(db), "--set", "inference.batch_size=3"])
    assert found.exit_code == 0, found.output
    assert sizes == [3]
    renamed = runner.invoke(app, ["search", str(songs[0]), "--db", str(db), "--set", "index.batch_size=5"])
    assert renamed.exit_code == 0, renamed.output
    assert sizes == [3, 5] and "index.batch_size is now called inference.batch_size" in renamed.stderr


def test_an_unusable_index_factory_is_one_line(tmp_path: Path, indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    refused = runner.invoke(
        app, ["index", "--db", str(db), "--set", "index.factory=Bogus", "--set", "index.exact_below=0"]
    )
    assert refused.exit_code == 1
    assert "index.factory='Bogus': not a FAISS index" in one_line(refused)


def test_a_factory_faiss_cannot_build_for_this_database_is_one_line(tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 2, SONG_S, RATE)
    args = ["index", *map(str, songs), "--db", str(tmp_path / "db"), "--model", str(model)]
    refused = runner.invoke(app, [*args, "--set", "index.factory=IVF1024,Flat", "--set", "index.exact_below=0"])
    assert refused.exit_code == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "cannot build the index: index 'IVF1024,Flat' over 80 rows" in line
    assert "Traceback" not in refused.stderr


def test_any_fpkit_error_a_command_meets_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise FpkitError("somewhere.yaml: something the command did not expect")

    monkeypatch.setattr(fpkit.model, "build_model", broken)
    refused = runner.invoke(app, ["info"])
    assert refused.exit_code == 1
    assert refused.stderr == "error: somewhere.yaml: something the command did not expect\n"
