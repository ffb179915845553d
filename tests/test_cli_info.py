from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner, Result

from fpkit import __version__
from fpkit.cli.app import app
from fpkit.config import CONFIG_DIR, Config, load_config

PAPER = str(CONFIG_DIR / "paper.yaml")
DEFAULT = str(CONFIG_DIR / "default.yaml")

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"fpkit {__version__}\n"


def test_help_lists_info() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.stdout


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "info" in result.output


def test_info_prints_config_on_stdout_and_size_on_stderr() -> None:
    result = runner.invoke(app, ["info", "--config", PAPER])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == Config().to_dict()
    assert "parameters: 16,939,008" in result.stderr
    assert "GFLOP/segment" in result.stderr
    assert "parameters" not in result.stdout


def test_info_json() -> None:
    result = runner.invoke(app, ["info", "--config", DEFAULT, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["config"] == load_config(DEFAULT).to_dict()
    assert summary["parameters"] < 16_939_008
    assert summary["gflop_per_segment"] > 0
    assert summary["device"] in ("cpu", "cuda")
    assert summary["torch"] == torch.__version__
    assert result.stderr == ""


def test_info_with_overrides() -> None:
    result = runner.invoke(
        app, ["info", "-c", DEFAULT, "--set", "model.emb_dim=64", "--set", "train.batch_size=32", "--json"]
    )
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert config["model"]["emb_dim"] == 64 and config["train"]["batch_size"] == 32


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    # A long path: the error line must not be wrapped at the terminal width.
    path = tmp_path / ("very_long_directory_name_" * 4) / "bad.yaml"
    path.parent.mkdir()
    path.write_text("model:\n  emb_dim: lots\n")
    one_line_error(runner.invoke(app, ["info", "--config", str(path)]), str(path), "model.emb_dim")


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    one_line_error(runner.invoke(app, ["info", "--config", str(path)]), str(path))


def test_bad_override() -> None:
    one_line_error(runner.invoke(app, ["info", "--set", "train.batch_size=big"]), "train.batch_size")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device() -> None:
    one_line_error(runner.invoke(app, ["info", "-c", DEFAULT, "--set", "train.device=cuda"]), "CUDA")
