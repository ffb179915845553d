"""`fpkit train` on the command line: stopping by signal, and what a resume may not change (issue 12)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import synth
import yaml
from conftest import TINY
from typer.testing import CliRunner

import fpkit.train.loop
from fpkit.cli.app import app
from fpkit.model import read_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("songs")
    synth.write_songs(folder, 8, seconds=12.0)
    return folder


@pytest.fixture
def config(tmp_path: Path) -> Path:
    data = {**TINY, "train": {**TINY["train"], "epochs": 2, "steps_per_epoch": 3, "device": "cpu"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def sigint_ignored() -> Iterator[None]:
    """As in a job a script starts in the background: Python then leaves SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def run(*args: str | Path):
    return runner.invoke(app, ["train", *map(str, args)])


def one_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT-inherited-as-ignored", "SIGTERM"])
def test_a_signal_saves_the_step_and_resume_finishes(
    tmp_path: Path, songs: Path, config: Path, monkeypatch: pytest.MonkeyPatch, stop: int
) -> None:
    real, calls = fpkit.train.loop.contrastive_loss, []

    def loss(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), stop)
        return real(*args, **kwargs)

    monkeypatch.setattr(fpkit.train.loop, "contrastive_loss", loss)
    stopped = run("--config", config, "--data", songs, "--out", tmp_path / "run")
    assert stopped.exit_code == 130 and "Traceback" not in stopped.output
    (line,) = [line for line in stopped.stderr.splitlines() if "interrupted" in line]
    assert f"interrupted at step 2; saved {tmp_path / 'run' / 'last.pt'} (continue with --resume)" in line
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    monkeypatch.undo()
    resumed = run("--out", tmp_path / "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 6


def test_resume_refuses_other_shapes_or_data_before_any_work(
    tmp_path: Path, songs: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    assert run("--config", config, "--data", songs, "--out", run_dir, "--set", "train.epochs=1").exit_code == 0
    other = tmp_path / "other"
    synth.write_songs(other, 2, seconds=12.0)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("songs were decoded")

    monkeypatch.setattr(fpkit.train.loop, "cache_songs", no_decoding)
    for args, message in (
        (["--set", "model.emb_dim=16"], "model.emb_dim: {run} was trained with 32, not 16"),
        (["--set", "features.n_mels=32"], "features.n_mels: {run} was trained with 64, not 32"),
        (["--set", "audio.hop_s=0.25"], "audio.hop_s: {run} was trained with 0.5, not 0.25"),
        (["--data", str(other)], "--data {other}: {run} trains on {songs}; resume without --data"),
    ):
        refused = run("--out", run_dir, "--resume", "--set", "train.epochs=2", *args)
        assert message.format(run=run_dir, other=other, songs=songs) in one_error(refused)
    assert read_checkpoint(run_dir / "last.pt")["step"] == 3
