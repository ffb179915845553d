"""`fpkit export`: a training checkpoint becomes a model file with weights, config and provenance only."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from fpkit.cli.app import app
from fpkit.config import Config
from fpkit.model import build_model, load_model, read_checkpoint, save_checkpoint

runner = CliRunner()


def training_checkpoint(path: Path, config: Config) -> Path:
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters())
    history = [{"epoch": 0, "step": 5}, {"epoch": 1, "step": 10}]
    save_checkpoint(path, model, config, step=10, optimizer=optimizer.state_dict(), history=history)
    return path


def test_export_keeps_the_weights_drops_the_optimizer_and_applies_set(tmp_path: Path, tiny_config: Config) -> None:
    checkpoint = training_checkpoint(tmp_path / "best.pt", tiny_config)
    out = tmp_path / "weights" / "mine.pt"
    done = runner.invoke(app, ["export", str(checkpoint), str(out), "--set", "search.threshold=0.7"])
    assert done.exit_code == 0, done.output
    exported = load_model(out)
    assert exported.model_id == load_model(checkpoint).model_id
    assert exported.config.search.threshold == 0.7
    assert exported.extra == {"provenance": {"source": "best.pt", "step": 10, "last_epoch": {"epoch": 1, "step": 10}}}
    assert "optimizer" not in read_checkpoint(out)
    assert done.stdout == "" and f"model {exported.model_id}" in done.stderr

    # Recalibrating an exported model: the new threshold lands, the provenance stays the training run's.
    again = tmp_path / "recalibrated.pt"
    assert runner.invoke(app, ["export", str(out), str(again), "--set", "search.threshold=0.8"]).exit_code == 0
    recalibrated = load_model(again)
    assert recalibrated.config.search.threshold == 0.8 and recalibrated.model_id == exported.model_id
    assert recalibrated.extra == exported.extra


def test_export_refuses_in_one_line(tmp_path: Path, tiny_config: Config) -> None:
    checkpoint = training_checkpoint(tmp_path / "best.pt", tiny_config)
    out = tmp_path / "out.pt"
    for args, message in (
        ([str(tmp_path / "missing.pt"), str(out)], "missing.pt: no such model file"),
        ([str(checkpoint), str(out), "--set", "model.emb_dim=16"], "--set model.emb_dim: fixed by the model"),
        ([str(checkpoint), str(out), "--set", "search.threshold=2"], "--set: search.threshold: must be"),
    ):
        refused = runner.invoke(app, ["export", *args])
        assert refused.exit_code == 1
        assert refused.stderr.startswith("error: ") and message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not out.exists()
