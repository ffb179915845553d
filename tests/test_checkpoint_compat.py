from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from fpkit.config import Config, ConfigError, config_from_dict
from fpkit.model import load_model, read_checkpoint


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
