"""`Database.open_for`: the one place that decides which model goes with which database, and the run's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, save_model
from synth import write_songs

from fpkit.config import ConfigError, InferenceConfig
from fpkit.db import Database, ModelMismatch, Searcher
from fpkit.model import load_model


def test_the_model_given_or_the_databases_own_and_never_another(tmp_path: Path) -> None:
    mine = save_model(tmp_path / "mine.pt", db_config(TINY), seed=0)
    other = save_model(tmp_path / "other.pt", db_config(TINY), seed=1)
    folder = tmp_path / "db"
    with Database.open_for(folder, mine, writable=True) as created:  # a new database, made with `mine`
        assert created.model.model_id == load_model(mine).model_id == created.db.model_id
    with Database.open_for(folder, None) as opened:
        assert opened.model.model_id == opened.db.model_id
        assert Path(opened.model.path) == folder / "model.pt"  # its own copy
    with pytest.raises(ModelMismatch, match="built with model"):
        Database.open_for(folder, other, writable=True)
    with Database.open_for(folder, mine, writable=True) as again:  # the refused open let go of the lock
        assert again.model.model_id == again.db.model_id


def test_the_runs_settings_are_resolved_before_anything_is_made_and_reach_the_network(tmp_path: Path) -> None:
    mine = save_model(tmp_path / "mine.pt", db_config(TINY))
    songs = write_songs(tmp_path / "songs", 1, SONG_S, RATE)
    folder = tmp_path / "db"
    with pytest.raises(ConfigError, match="fixed by the model"):
        Database.open_for(folder, mine, writable=True, overrides=["audio.hop_s=0.25"])
    assert not folder.exists()
    run = ["inference.precision=bfloat16", "search.nprobe=3"]
    with Database.open_for(folder, mine, writable=True, overrides=run) as opened:
        assert opened.config.search.nprobe == 3 and opened.model.config.search.nprobe == 32
        opened.db.add_files(songs, opened.model, opened.config.inference)
        assert opened.model.model.autocast is torch.bfloat16  # fingerprinted in bfloat16
        opened.db.update_index(opened.config.index)
        Searcher(opened.db, opened.model, inference=InferenceConfig(precision="float32"))
        assert opened.model.model.autocast is None
