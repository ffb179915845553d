"""`fpkit generate --engine ray` on a local Ray of 2 CPUs: the same folder as the local path, mergeable, resumable."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from dbhelpers import RATE, db_config, save_model, search_finds
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app
from fpkit.db import Database
from fpkit.model import load_model

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from fpkit.ray_engine import RayEngine  # noqa: E402 - needs Ray, skipped above without it

SONG_S = 12.0
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One small local Ray for the module: the engine uses a Ray already initialised and leaves it running."""
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A tiny model, 3 songs, a copy of one of them under another name and a file that is not audio."""
    root = tmp_path_factory.mktemp("ray")
    model = save_model(root / "tiny.pt", db_config(TINY))
    songs = write_songs(root / "songs", 3, SONG_S, RATE)
    write_audio(root / "songs" / "z_copy.wav", make_song(SONG_S, RATE, 1), RATE)
    (root / "songs" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    return model, songs


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def table(folder: Path) -> list[dict]:
    with Database.open(folder) as db:
        return [dataclasses.asdict(song) for song in db.songs]


def vectors(folder: Path) -> np.ndarray:
    with Database.open(folder) as db:
        return np.array(db.vectors[:])


def test_ray_writes_the_fingerprints_the_local_path_writes(tmp_path: Path, setup) -> None:
    model, songs = setup
    local = run("generate", songs[0].parent, "--out", tmp_path / "local", "--model", model)
    on_ray = run("generate", songs[0].parent, "--out", tmp_path / "ray", "--model", model, "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 3, on_ray.output  # the broken file, reported, skipped
    assert "broken.wav: not readable as audio" in on_ray.stderr
    assert "stored 3 new songs" in on_ray.stderr and "skipped 1 already stored, 1 failed" in on_ray.stderr
    assert table(tmp_path / "ray") == table(tmp_path / "local")  # same songs, order, rows, hashes
    np.testing.assert_array_equal(vectors(tmp_path / "ray"), vectors(tmp_path / "local"))  # float16 both


def test_ray_output_merges_into_a_searchable_database(tmp_path: Path, setup) -> None:
    model, songs = setup
    for i, part in enumerate((songs[:2], songs[2:])):
        assert (
            run("generate", *part, "--out", tmp_path / f"part{i}", "--model", model, "--engine", "ray").exit_code == 0
        )
    db = tmp_path / "db"
    merged = run("index", "--db", db, "--merge", tmp_path / "part0", "--merge", tmp_path / "part1")
    assert merged.exit_code == 0, merged.output
    search_finds(db, songs[2], 2, SONG_S, 4.0, tmp_path)


def test_an_interrupted_run_keeps_its_songs_and_resumes(tmp_path: Path, setup) -> None:
    model_path, songs = setup
    model = load_model(model_path)

    class StopAfterTwo:
        def start(self, phase: str, total: float | None) -> None:
            self.done = 0.0

        def advance(self, steps: float = 1, note: str = "") -> None:
            self.done += steps
            if self.done == 2:
                raise KeyboardInterrupt

    with Database.open_or_create(tmp_path / "out", model) as db:
        with pytest.raises(KeyboardInterrupt):
            RayEngine("cpu").add_files(db, songs, model, progress=StopAfterTwo())
        db.commit()  # as the command does when stopped (`interrupted_adding`)
    assert [song["path"] for song in table(tmp_path / "out")] == [str(s) for s in songs[:2]]
    with Database.open_or_create(tmp_path / "out", model) as db:
        again = RayEngine("cpu").add_files(db, songs, model)
    assert [s.path for s in again.skipped] == [str(s) for s in songs[:2]]  # unread: same size and time
    assert [r.path for r in again.stored] == [str(songs[2])]


def test_an_unknown_device_is_one_line(tmp_path: Path, setup) -> None:
    model, songs = setup
    done = run("generate", songs[0], "--out", tmp_path / "out", "--model", model, "--engine", "ray", "--device", "tpu")
    assert done.exit_code == 1 and "unknown device 'tpu'" in done.stderr and not (tmp_path / "out").exists()


def test_gpu_actors_on_a_cluster_without_gpus_are_one_line(tmp_path: Path, setup) -> None:
    model, songs = setup
    done = run("generate", songs[0], "--out", tmp_path / "out", "--model", model, "--engine", "ray", "--device", "cuda")
    assert done.exit_code == 1 and "the Ray cluster has no GPUs" in done.stderr


def test_without_ray_the_engine_is_one_line_saying_how_to_install_it(
    tmp_path: Path, setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, songs = setup
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.delitem(sys.modules, "fpkit.ray_engine")
    done = run("generate", songs[0], "--out", tmp_path / "out", "--model", model, "--engine", "ray")
    assert done.exit_code == 1 and "pip install 'fpkit[ray]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
