"""Shared setup for the database tests: a tiny untrained model and a small indexed database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from synth import make_song, write_audio
from typer.testing import CliRunner

from fpkit.cli.app import app
from fpkit.config import Config, config_from_dict
from fpkit.db import Database
from fpkit.model import LoadedModel, build_model, load_model, save_checkpoint

SONG_S = 20.0
RATE = 8000

# Untrained nets are sensitive to misalignment: 8 shifts (62.5 ms grid) keep every query within
# 31 ms of a stored alignment. The threshold sits between the scores measured for this model on
# synthetic songs: 3-6 s clean excerpts of stored songs scored 0.79-1.0 (36 queries), 4 s
# unknown songs 0.56-0.77 (40 queries). A trained model separates them far more widely. The monitor's
# path level sits above the 0.5-0.6 at which this model hears unknown songs at any alignment (a trained
# one hears them at about 0.1).
SEARCH = {"subhop_shifts": 8, "threshold": 0.78, "monitor_level": 0.65}


def db_config(tiny: dict) -> Config:
    return config_from_dict({**tiny, "search": SEARCH}, "<tiny-db>")


def save_model(path: Path, config: Config, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(config), config)
    return path


def indexed_db(root: Path, songs: list[Path], model: LoadedModel) -> Database:
    db = Database.open_or_create(root, model)
    db.add_files(songs, model)
    db.update_index(model.config.index)
    return db


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length, as float32 fingerprints."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def excerpt(wave: np.ndarray, start_s: float, length_s: float) -> np.ndarray:
    a = round(start_s * RATE)
    return wave[a : a + round(length_s * RATE)]


def loaded(path: Path) -> LoadedModel:
    return load_model(path)


def search_finds(db: Path, song: Path, seed: int, song_s: float, start_s: float, folder: Path) -> None:
    """`fpkit search` places a 5 s excerpt from `start_s` of synthetic song `seed`, stored as `song`, in `db`."""
    clip = write_audio(folder / "clip.wav", excerpt(make_song(song_s, RATE, seed), start_s, 5.0), RATE)
    found = CliRunner().invoke(app, ["search", str(clip), "--db", str(db), "--format", "jsonl"])
    line = json.loads(found.stdout)
    assert line["match"] == str(song) and abs(line["offset_s"] - start_s) < 0.25
