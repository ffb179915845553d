from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from synth import make_song, write_audio

from fpkit.audio import AudioError
from fpkit.augment import (
    COLOUR_BAND_HZ,
    COLOUR_POINTS,
    SIMULATED,
    AudioBank,
    Degrader,
    colour,
    load_ir_bank,
    load_noise_bank,
    mix_at_snr,
    random_gains_db,
    reverberate,
    simulate_rooms,
    spec_augment,
    synth_ir_bank,
    synth_noise_bank,
)
from fpkit.config import AugmentConfig

RATE = 8000


def songs(batch: int, seconds: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(np.stack([make_song(seconds, RATE, seed) for seed in range(batch)]))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_mix_at_snr_hits_the_requested_snr(snr: float) -> None:
    wave = songs(3)
    noise = torch.randn(3, RATE, generator=torch.Generator().manual_seed(0)) * torch.tensor([[0.01], [1.0], [5.0]])
    mixed = mix_at_snr(wave, noise, torch.full((3,), snr))
    added = mixed - wave
    measured = 10 * torch.log10(wave.pow(2).mean(dim=1) / added.pow(2).mean(dim=1))
    torch.testing.assert_close(measured, torch.full((3,), snr), atol=0.1, rtol=0)


def test_mix_at_snr_per_item() -> None:
    wave = songs(2)
    noise = torch.randn(2, RATE, generator=torch.Generator().manual_seed(1))
    snr = torch.tensor([0.0, 10.0])
    added = mix_at_snr(wave, noise, snr) - wave
    measured = 10 * torch.log10(wave.pow(2).mean(dim=1) / added.pow(2).mean(dim=1))
    torch.testing.assert_close(measured, snr, atol=0.1, rtol=0)


def test_reverberate_with_a_unit_impulse_is_the_identity() -> None:
    wave = songs(2)
    impulse = torch.zeros(2, 400)
    impulse[:, 0] = 1.0
    out = reverberate(wave, impulse)
    assert out.shape == wave.shape
    torch.testing.assert_close(out, wave, atol=1e-5, rtol=0)


def test_reverberate_with_a_delayed_impulse_shifts() -> None:
    wave = songs(1)
    impulse = torch.zeros(1, 100)
    impulse[0, 37] = 0.5
    out = reverberate(wave, impulse)
    torch.testing.assert_close(out[0, 37:], 0.5 * wave[0, :-37], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, :37], torch.zeros(37), atol=1e-5, rtol=0)


def test_colour_with_zero_gains_is_the_identity() -> None:
    wave = songs(2)
    torch.testing.assert_close(colour(wave, np.zeros((2, COLOUR_POINTS)), RATE), wave, atol=1e-5, rtol=0)


def test_colour_gives_each_row_its_response() -> None:
    """A tone comes out at the gain interpolated in decibels over log frequency, flat beyond the band."""
    tones_hz = [100.0, 300.0, 1000.0, 3000.0]
    t = np.arange(2 * RATE) / RATE
    tones = torch.from_numpy(np.stack([np.sin(2 * np.pi * f * t) for f in tones_hz]).astype(np.float32))
    gains = np.stack([np.linspace(-10, 10, COLOUR_POINTS), np.linspace(6, -6, COLOUR_POINTS)])
    points = np.log(np.geomspace(*COLOUR_BAND_HZ, COLOUR_POINTS))
    for row in gains:
        out = colour(tones, np.tile(row, (len(tones_hz), 1)), RATE)
        middle = slice(RATE // 2, -RATE // 2)  # away from the edges, where the tone starts and stops
        measured = 20 * torch.log10(out[:, middle].pow(2).mean(1).sqrt() / tones[:, middle].pow(2).mean(1).sqrt())
        expected = np.interp(np.log(tones_hz), points, row)
        np.testing.assert_allclose(measured.numpy(), expected, atol=0.05)


def test_random_gains_stay_within_the_bound() -> None:
    gains = random_gains_db(500, 8.0, np.random.default_rng(0))
    assert gains.shape == (500, COLOUR_POINTS)
    assert np.abs(gains).max() <= 8.0 and gains.std() > 4.0


def spectrograms(batch: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 64, 32, generator=generator) * 1.9 - 0.9  # never -1 before masking


def test_spec_augment_only_sets_minus_one() -> None:
    spec = spectrograms()
    out = spec_augment(spec, AugmentConfig(), torch.Generator().manual_seed(0))
    changed = out != spec
    assert changed.any()
    assert (out[changed] == -1.0).all()
    assert out.shape == spec.shape
    assert not torch.equal(changed[0], changed[1])  # each item gets its own masks


def test_spec_augment_probabilities_zero_leave_the_input() -> None:
    config = AugmentConfig(cutout_prob=0.0, band_mask_prob=0.0)
    spec = spectrograms()
    assert torch.equal(spec_augment(spec, config, torch.Generator().manual_seed(0)), spec)


def test_spec_augment_zero_band_width_and_no_cutout() -> None:
    config = AugmentConfig(cutout_prob=0.0, band_mask_max=0)
    spec = spectrograms()
    assert torch.equal(spec_augment(spec, config, torch.Generator().manual_seed(0)), spec)


def test_band_mask_covers_whole_rows() -> None:
    config = AugmentConfig(cutout_prob=0.0, band_mask_prob=1.0, band_mask_max=16)
    spec = spectrograms(32)
    masked = spec_augment(spec, config, torch.Generator().manual_seed(0)) == -1.0  # (B, F, T)
    rows = masked.any(dim=2)
    assert torch.equal(rows, masked.all(dim=2))  # a masked band spans all frames
    widths = rows.sum(dim=1)
    assert widths.max() <= 16 and widths.max() > 0
    for item in rows:  # one contiguous band per item
        idx = item.nonzero().flatten()
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx)


def test_cutout_is_one_rectangle() -> None:
    config = AugmentConfig(cutout_prob=1.0, band_mask_prob=0.0, cutout_max_frac=0.5)
    spec = spectrograms(16)
    masked = spec_augment(spec, config, torch.Generator().manual_seed(3)) == -1.0
    for item in masked:
        f = item.any(dim=1).nonzero().flatten()
        t = item.any(dim=0).nonzero().flatten()
        assert 1 <= len(f) <= 32 and 1 <= len(t) <= 16
        assert item.sum() == len(f) * len(t)  # a full rectangle
        assert item[f[0] : f[-1] + 1, t[0] : t[-1] + 1].all()


def test_spec_augment_is_reproducible() -> None:
    spec = spectrograms()
    a = spec_augment(spec, AugmentConfig(), torch.Generator().manual_seed(5))
    b = spec_augment(spec, AugmentConfig(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_synth_banks() -> None:
    noise = synth_noise_bank(RATE, seed=0)
    assert len(noise) > 1 and noise.source == "synthetic"
    assert all(c.dtype == np.float32 and np.abs(c).max() > 0 for c in noise.clips)
    irs = synth_ir_bank(RATE, max_s=0.5, seed=0)
    for ir in irs.clips:
        assert len(ir) <= 0.5 * RATE
        assert np.sum(ir.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-4)
        assert np.argmax(np.abs(ir)) == 0  # the direct path comes first


def band_levels_db(irs: np.ndarray) -> np.ndarray:
    """Each impulse response's level in sixth-octave bands over 300-4000 Hz, (rooms, bands)."""
    power = np.abs(np.fft.rfft(irs, 8192, axis=1)) ** 2
    freqs = np.fft.rfftfreq(8192, 1 / RATE)
    edges = 300 * 2 ** (np.arange(23) / 6)
    bands = [power[:, (freqs >= low) & (freqs < high)].mean(axis=1) for low, high in itertools.pairwise(edges)]
    return 10 * np.log10(np.stack(bands, axis=1))


def test_simulated_rooms_are_unit_energy_coloured_and_each_its_own() -> None:
    rooms = simulate_rooms(64, RATE, 0.5, np.random.default_rng(0))
    assert rooms.shape == (64, 4000) and rooms.dtype == np.float32
    np.testing.assert_allclose(np.sum(rooms.astype(np.float64) ** 2, axis=1), 1.0, rtol=1e-4)
    spread = band_levels_db(rooms).std(axis=1)
    assert np.median(spread) > 2 and spread.max() > 4  # coloured as real rooms and devices are, or more
    late = np.sum(rooms[:, 400:] ** 2, axis=1)  # energy after 50 ms: every room has a tail
    assert (late > 1e-4).all() and late.max() > 0.3
    assert np.corrcoef(rooms[:2])[0, 1] < 0.5
    np.testing.assert_array_equal(rooms, simulate_rooms(64, RATE, 0.5, np.random.default_rng(0)))
    assert simulate_rooms(0, RATE, 0.5, np.random.default_rng(0)).shape == (0, 4000)


def test_degrader_simulates_the_share_of_rooms_asked_for() -> None:
    wave = songs(6)
    d = degrader(noise_prob=0.0, gain_db=[0.0, 0.0])
    # Off draws nothing more: the bank's rooms, exactly as without the argument.
    assert torch.equal(d(wave, np.random.default_rng(3), 0.0), d(wave, np.random.default_rng(3)))
    simulated = d(wave, np.random.default_rng(3), 1.0)
    assert simulated.shape == wave.shape and torch.isfinite(simulated).all()
    assert not torch.allclose(simulated, d(wave, np.random.default_rng(3)), atol=1e-3)
    _, draws = d._degrade(wave, np.random.default_rng(3), 1.0)
    assert (draws.room == SIMULATED).all()
    _, draws = d._degrade(torch.zeros(400, 800), np.random.default_rng(3), 0.5)
    assert 0.4 < np.mean(draws.room == SIMULATED) < 0.6 and (draws.room >= 0).any()


def test_crops_loop_short_clips() -> None:
    bank = AudioBank([np.arange(1, 101, dtype=np.float32)], RATE, "test")
    crops, chosen = bank.crops(4, 250, np.random.default_rng(0))
    assert crops.shape == (4, 250) and chosen.tolist() == [0, 0, 0, 0]
    # Consecutive samples of a looped 1..100 ramp: each step is +1 or a wrap from 100 to 1.
    steps = np.diff(crops, axis=1)
    assert np.isin(steps, [1.0, -99.0]).all()


def test_pick_pads_to_the_longest() -> None:
    bank = AudioBank([np.ones(3, dtype=np.float32), np.ones(7, dtype=np.float32)], RATE, "test")
    picked, chosen = bank.pick(10, np.random.default_rng(0))
    assert picked.shape[0] == 10 and picked.shape[1] in (3, 7)
    assert picked.sum(axis=1).tolist() == [(3.0, 7.0)[i] for i in chosen]


def degrader(**changes: Any) -> Degrader:
    config = dataclasses.replace(AugmentConfig(), **changes)
    return Degrader.from_folders(config, RATE, None, None, seed=0)


def test_degrader_with_synthesised_banks() -> None:
    wave = songs(4)
    out = degrader()(wave, np.random.default_rng(0))
    assert out.shape == wave.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.abs().max() <= 1.0
    assert not torch.allclose(out, wave, atol=1e-3)


def test_degrader_is_reproducible() -> None:
    wave = songs(2)
    d = degrader()
    assert torch.equal(d(wave, np.random.default_rng(7)), d(wave, np.random.default_rng(7)))


def test_degrader_with_everything_off_is_the_identity() -> None:
    wave = songs(3)
    out = degrader(noise_prob=0.0, ir_prob=0.0, gain_db=[0.0, 0.0])(wave, np.random.default_rng(0))
    torch.testing.assert_close(out, wave)


def test_degrader_gain_only() -> None:
    wave = songs(2) * 0.1  # quiet enough that +6 dB does not reach full scale
    out = degrader(noise_prob=0.0, ir_prob=0.0, gain_db=[6.0, 6.0])(wave, np.random.default_rng(0))
    torch.testing.assert_close(out, wave * 10 ** (6 / 20))


def test_degrader_noise_only_meets_the_snr() -> None:
    wave = songs(4) * 0.1
    out = degrader(ir_prob=0.0, gain_db=[0.0, 0.0], snr_db=[10.0, 10.0])(wave, np.random.default_rng(0))
    measured = 10 * torch.log10(wave.pow(2).mean(dim=1) / (out - wave).pow(2).mean(dim=1))
    torch.testing.assert_close(measured, torch.full((4,), 10.0), atol=0.1, rtol=0)


def test_degrade_one_excerpt() -> None:
    excerpt = make_song(2.3, RATE, seed=4)
    out = degrader().degrade(excerpt, np.random.default_rng(0))
    assert out.shape == excerpt.shape and out.dtype == np.float32


def test_a_degradation_says_what_it_drew(tmp_path: Path) -> None:
    for name, seed in (("rain.wav", 1), ("street/cars.wav", 2)):
        write_audio(tmp_path / "noise" / name, make_song(3.0, RATE, seed=seed), RATE)
    config = dataclasses.replace(AugmentConfig(), ir_prob=0.5, snr_db=[0.0, 10.0])
    d = Degrader.from_folders(config, RATE, str(tmp_path / "noise"), None, seed=0)
    excerpt = make_song(2.0, RATE, seed=4) * 0.1
    seen = set()
    for seed in range(12):
        out, applied = d.degrade_described(excerpt, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, d.degrade(excerpt, np.random.default_rng(seed)))  # the same draws
        assert applied.noise in ("rain.wav", "street/cars.wav") and 0 <= applied.snr_db <= 10
        assert applied.room is None or applied.room.startswith("synthetic#")
        seen.add(applied.room is None)
        assert config.gain_db[0] <= applied.gain_db <= config.gain_db[1]
    assert seen == {True, False}  # some dry, some in a room
    dry = dataclasses.replace(config, ir_prob=0.0, gain_db=[0.0, 0.0])
    out, applied = Degrader(dry, d.noise, d.irs).degrade_described(excerpt, np.random.default_rng(3))
    measured = 10 * np.log10(np.mean(excerpt**2) / np.mean((out - excerpt) ** 2))
    assert applied.snr_db is not None and measured == pytest.approx(applied.snr_db, abs=0.05)
    quiet = dataclasses.replace(config, noise_prob=0.0, ir_prob=0.0)
    _, applied = Degrader(quiet, d.noise, d.irs).degrade_described(excerpt, np.random.default_rng(0))
    assert (applied.room, applied.noise, applied.snr_db) == (None, None, None)


def test_banks_from_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    noise_dir = tmp_path / "noise"
    write_audio(noise_dir / "hum.wav", 0.1 * np.random.default_rng(0).standard_normal(RATE), 16000)
    write_audio(noise_dir / "silence.wav", np.zeros(RATE, dtype=np.float32), RATE)
    (noise_dir / "broken.wav").write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.WARNING, logger="fpkit.augment"):
        noise = load_noise_bank(noise_dir, RATE)
    assert len(noise) == 1  # silence dropped, broken file skipped
    assert "broken.wav" in caplog.text

    ir = np.zeros(RATE, dtype=np.float32)
    ir[100] = 0.9  # starts late: the bank starts it at its peak
    ir[101:2000] = 0.1 * np.exp(-np.arange(1899) / 200.0)
    write_audio(tmp_path / "ir" / "room.wav", ir, RATE)
    bank = load_ir_bank(tmp_path / "ir", RATE, max_s=0.1)
    (clip,) = bank.clips
    assert len(clip) == 800 and np.argmax(np.abs(clip)) == 0
    assert np.sum(clip.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-4)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=f"^{tmp_path}: no usable noise files"):
        load_noise_bank(tmp_path, RATE)
    with pytest.raises(AudioError, match=f"^{tmp_path}: no usable impulse response files"):
        load_ir_bank(tmp_path, RATE, 0.5)
