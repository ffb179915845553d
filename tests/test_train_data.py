from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fpkit.audio import crop
from fpkit.augment import Degrader
from fpkit.config import Config
from fpkit.model import build_model
from fpkit.train.data import PairBatches, Song, played_faster


def test_played_faster_keeps_the_centre_and_scales_time_around_it() -> None:
    ramp = np.arange(1000, dtype=np.float32)
    faster = played_faster(ramp, centre=500, speed=1.5, first=400, length=200)
    np.testing.assert_allclose(faster, 500 + (np.arange(400, 600) - 500) * 1.5)
    np.testing.assert_array_equal(played_faster(ramp, 500, 1.0, 950, 100), crop(ramp, 950, 100))  # zeros past the end


def anchor_frequency(config: Config, song: Song, speed: list[float]) -> float:
    """The strongest frequency (Hz) of the anchors PairBatches cuts from a pure tone."""
    config.augment = dataclasses.replace(config.augment, speed=speed)
    rate = config.audio.sample_rate
    degrader = Degrader.from_folders(config.augment, rate, None, None, seed=0)
    framing = build_model(config).frontend.framing
    anchors, replicas = PairBatches([song], config.audio, framing, config.augment, degrader, 4, seed=0)[0]
    assert anchors.shape == (4, framing.window) and replicas.shape == anchors.shape
    spectrum = np.abs(np.fft.rfft(anchors.numpy(), axis=1)).sum(axis=0)
    return float(np.argmax(spectrum) * rate / framing.window)


def test_anchors_of_music_played_faster_are_higher(tiny_config: Config, tmp_path: Path) -> None:
    rate = tiny_config.audio.sample_rate
    tone = np.sin(2 * np.pi * 500 * np.arange(20 * rate) / rate).astype(np.float16)
    np.save(tmp_path / "tone.npy", tone)
    song = Song(str(tmp_path / "tone.wav"), str(tmp_path / "tone.npy"), len(tone))
    assert anchor_frequency(tiny_config, song, [1.0, 1.0]) == pytest.approx(500, abs=10)
    assert anchor_frequency(tiny_config, song, [1.5, 1.5]) == pytest.approx(750, abs=10)
