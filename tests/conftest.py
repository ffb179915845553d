from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fpkit.config import Config, config_from_dict
from fpkit.model import build_model, save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))  # lets test modules `import synth`

# Two cores: one intra-op thread per test process keeps runs predictable.
torch.set_num_threads(1)

TINY = {
    "features": {"n_mels": 64},
    "model": {
        "channels": [8, 8, 16, 16, 32, 32, 64, 64],
        "emb_dim": 32,
        "proj_units": 8,
        "channels_last": False,
    },
    "train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 5, "workers": 0, "val_segments": 20},
}


@pytest.fixture
def tiny_config() -> Config:
    """A fast model (a few thousand parameters) with the paper's audio settings."""
    return config_from_dict(TINY, "<tiny>")


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_config: Config) -> Path:
    """An untrained tiny model saved as a checkpoint file."""
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, build_model(tiny_config), tiny_config)
    return path
