"""Configs, checkpoints and databases written by an older fpkit keep loading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from fpkit.config import Config, ConfigError, IndexConfig, InferenceConfig, config_from_dict, load_config
from fpkit.db import Database
from fpkit.model import DEFAULT_WEIGHTS, load_model, read_checkpoint


def test_checkpoint_with_a_key_unknown_to_this_version_still_loads(
    tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = read_checkpoint(tiny_checkpoint)
    payload["config"]["index"]["retired_option"] = 3
    torch.save(payload, tiny_checkpoint)
    with caplog.at_level(logging.WARNING, logger="fpkit"):
        loaded = load_model(tiny_checkpoint)
    assert "index.retired_option" in caplog.text
    assert loaded.model.dims.emb_dim == 32


def test_user_configs_stay_strict(tiny_config: Config) -> None:
    data = tiny_config.to_dict()
    data["index"]["retired_option"] = 3
    with pytest.raises(ConfigError, match=r"index\.retired_option: unknown key"):
        config_from_dict(data, "user.yaml")
    assert config_from_dict(data, "stored", strict=False) == tiny_config  # a stored config drops the key


def test_the_shipped_model_keeps_its_batch_size_in_the_inference_section() -> None:
    stored = read_checkpoint(DEFAULT_WEIGHTS)["config"]  # re-exported after the key moved
    assert stored["inference"]["batch_size"] == 32 and "batch_size" not in stored["index"]
    config = load_model().config
    assert config.inference.batch_size == 32 and config.inference.precision == "auto"


def test_a_database_made_before_the_move_runs_with_its_models_settings(tmp_path: Path, tiny_checkpoint: Path) -> None:
    payload = read_checkpoint(tiny_checkpoint)
    payload["config"]["index"].update(batch_size=7, precision="float32")  # as fpkit wrote them then
    del payload["config"]["inference"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    Database.open_for(tmp_path / "db", old, writable=True).db.close()
    with Database.open_for(tmp_path / "db", None, overrides=["search.top_k=3"]) as opened:
        assert opened.config.inference == InferenceConfig(batch_size=7, precision="float32")
        assert opened.model.config.index == IndexConfig()
    with Database.open_for(tmp_path / "db", None, overrides=["index.batch_size=9"]) as opened:
        assert opened.config.inference.batch_size == 9  # an old name on the command line still works


def test_a_config_file_with_the_old_key_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("index:\n  batch_size: 16\n  pq_m: 32\n")
    with caplog.at_level(logging.WARNING, logger="fpkit"):
        config = load_config(path, ["index.precision=bfloat16"])
    assert config.inference == InferenceConfig(batch_size=16, precision="bfloat16") and config.index.pq_m == 32
    assert f"{path}: index.batch_size is now called inference.batch_size" in caplog.text
    assert "--set: index.precision is now called inference.precision" in caplog.text
