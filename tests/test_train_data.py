from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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


def white_noise_batch(config: Config, tmp_path: Path, **augment_changes: Any) -> tuple[np.ndarray, np.ndarray]:
    """PairBatches' first batch (4 anchors, their replicas) from 20 s of white noise, no noise or gain added."""
    rate = config.audio.sample_rate
    wave = np.random.default_rng(0).standard_normal(20 * rate).astype(np.float16)
    np.save(tmp_path / "noise.npy", wave)
    song = Song(str(tmp_path / "noise.wav"), str(tmp_path / "noise.npy"), len(wave))
    augment = dataclasses.replace(config.augment, noise_prob=0.0, gain_db=[0.0, 0.0], **augment_changes)
    degrader = Degrader.from_folders(augment, rate, None, None, seed=0)
    framing = build_model(config).frontend.framing
    anchors, replicas = PairBatches([song], config.audio, framing, augment, degrader, 4, seed=0)[0]
    return anchors.numpy(), replicas.numpy()


def test_eq_colours_replicas_and_leaves_anchors(tiny_config: Config, tmp_path: Path) -> None:
    flat_anchors, flat_replicas = white_noise_batch(tiny_config, tmp_path, eq_db=0.0, ir_prob=0.0)
    anchors, replicas = white_noise_batch(tiny_config, tmp_path, eq_db=12.0, ir_prob=0.0)
    np.testing.assert_array_equal(anchors, flat_anchors)
    # The same music (the offsets are drawn first), each replica with its own timbre.
    level = 20 * np.log10(np.abs(np.fft.rfft(replicas, axis=1)) / np.abs(np.fft.rfft(flat_replicas, axis=1)) + 1e-9)
    bands = level[:, : level.shape[1] // 2].reshape(4, 8, -1).mean(axis=2)  # up to rate / 4
    assert np.abs(bands).max() > 3 and not np.allclose(bands[0], bands[1], atol=1)


def test_simulated_rooms_reverberate_replicas_and_leave_anchors(tiny_config: Config, tmp_path: Path) -> None:
    bank_anchors, bank_replicas = white_noise_batch(tiny_config, tmp_path, simulated_rooms=0.0)
    anchors, replicas = white_noise_batch(tiny_config, tmp_path, simulated_rooms=1.0)
    np.testing.assert_array_equal(anchors, bank_anchors)
    assert replicas.shape == bank_replicas.shape and not np.allclose(replicas, bank_replicas, atol=1e-3)


def test_tail_silence_zeroes_a_replica_end_as_a_short_querys_padding(tiny_config: Config, tmp_path: Path) -> None:
    plain_anchors, plain_replicas = white_noise_batch(tiny_config, tmp_path, ir_prob=0.0)
    anchors, replicas = white_noise_batch(tiny_config, tmp_path, ir_prob=0.0, tail_silence=1.0, tail_silence_max_s=0.25)
    np.testing.assert_array_equal(anchors, plain_anchors)
    right = build_model(tiny_config).frontend.framing.right
    longest = round(0.25 * tiny_config.audio.sample_rate) + right
    for replica, plain in zip(replicas, plain_replicas, strict=True):
        zeros = len(replica) - np.flatnonzero(replica)[-1] - 1  # the run of zeros at the end
        assert right < zeros <= longest
        np.testing.assert_array_equal(replica[: len(replica) - zeros], plain[: len(replica) - zeros])
