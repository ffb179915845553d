"""Degradations that turn clean music into what a phone hears in a noisy room.

Training replicas and evaluation queries are made with the same building blocks:

* `AudioBank`: background noise clips or room impulse responses, loaded from a folder or
  synthesised (coloured noise; exponentially decaying noise IRs) when none is given.
* `reverberate`, `mix_at_snr`, `colour`: batched operations with explicit parameters.
* `Degrader`: draws the random parameters (SNR, IR, gain) and applies the chain
  reverb -> background noise -> gain, to a batch (training) or one excerpt (queries), and says
  what it drew (`Degradation`).
* `spec_augment`: cutout and frequency-band masks on log-mel spectrograms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fpkit.audio import AudioError, find_audio_files, load_audio
from fpkit.config import AugmentConfig

log = logging.getLogger(__name__)

SYNTH_NOISE_CLIPS = 64
SYNTH_NOISE_S = 10.0
SYNTH_IRS = 64
SIMULATED = -2  # `_Draws.room` of a row whose room was simulated (-1: dry)
# A random colouring's response: gains at this many frequencies, evenly spread over the octaves
# of this band and interpolated in decibels (flat beyond): two thirds of an octave apart, a
# loudspeaker's or microphone's broad tilts and bumps rather than a room's fine comb.
COLOUR_POINTS = 8
COLOUR_BAND_HZ = (150.0, 4000.0)
DEVICE_POINTS = 15  # a simulated room's device response: gains a third of an octave apart over COLOUR_BAND_HZ
COLOUR_PAD = 1024  # samples of zero padding that take the zero-phase filter's ringing


@dataclass
class AudioBank:
    """A list of mono float32 clips at one sample rate (noise recordings or impulse responses)."""

    clips: list[np.ndarray]
    sample_rate: int
    source: str  # folder, or "synthetic"
    names: list[str] | None = None  # each clip's file, relative to `source`; None: numbered

    def __len__(self) -> int:
        return len(self.clips)

    def name(self, clip: int) -> str:
        return self.names[clip] if self.names is not None else f"{self.source}#{clip}"

    def crops(self, count: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`count` random excerpts of `length` samples, looping clips that are shorter; (count, length),
        and the clip each came from (count,)."""
        out = np.empty((count, length), dtype=np.float32)
        chosen = np.empty(count, dtype=np.int64)
        for i in range(count):
            chosen[i] = rng.integers(len(self.clips))
            clip = self.clips[chosen[i]]
            if len(clip) < length:
                clip = np.resize(clip, length + len(clip))  # loops the clip
            start = rng.integers(0, len(clip) - length + 1)
            out[i] = clip[start : start + length]
        return out, chosen

    def pick(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`count` random clips zero-padded to the longest; (count, longest), and which clips (count,)."""
        chosen = rng.integers(len(self.clips), size=count)
        out = np.zeros((count, max(len(self.clips[i]) for i in chosen)), dtype=np.float32)
        for row, i in enumerate(chosen):
            out[row, : len(self.clips[i])] = self.clips[i]
        return out, chosen


def load_noise_bank(folder: str | Path, sample_rate: int) -> AudioBank:
    """All readable audio files under `folder`; unreadable ones are skipped with a warning."""
    loaded = [(c, name) for c, name in _load_clips(folder, sample_rate) if np.abs(c).max() > 0]  # silence is no noise
    return _bank(loaded, sample_rate, folder, "noise")


def load_ir_bank(folder: str | Path, sample_rate: int, max_s: float) -> AudioBank:
    """Impulse responses under `folder`, started at their peak, cut to `max_s`, unit energy."""
    loaded = []
    for ir, name in _load_clips(folder, sample_rate):
        ir = ir[int(np.argmax(np.abs(ir))) :][: max(1, int(max_s * sample_rate))]
        energy = float(np.sqrt(np.sum(ir.astype(np.float64) ** 2)))
        if energy > 0:
            loaded.append(((ir / energy).astype(np.float32), name))
    return _bank(loaded, sample_rate, folder, "impulse response")


def synth_noise_bank(sample_rate: int, seed: int = 0) -> AudioBank:
    """Coloured noise clips with spectral slopes from white (0) to brown (-2) and slow level changes."""
    rng = np.random.default_rng(seed)
    n = int(SYNTH_NOISE_S * sample_rate)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    clips = []
    for _ in range(SYNTH_NOISE_CLIPS):
        slope = rng.uniform(-2.0, 0.0)
        shape = np.maximum(freqs, 20.0) ** (slope / 2)
        spectrum = shape * (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs)))
        clip = np.fft.irfft(spectrum, n)
        clip *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 1.0) * np.arange(n) / sample_rate)
        clips.append((clip / (np.abs(clip).max() + 1e-9)).astype(np.float32))
    return AudioBank(clips, sample_rate, "synthetic")


def synth_ir_bank(sample_rate: int, max_s: float, seed: int = 0) -> AudioBank:
    """Room-like impulse responses: a direct path, then noise decaying with RT60 in 0.1-0.8 s."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(SYNTH_IRS):
        rt60 = rng.uniform(0.1, 0.8)
        n = max(2, int(min(max_s, rt60) * sample_rate))
        t = np.arange(n) / sample_rate
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        ir[0] = rng.uniform(1.0, 4.0) * np.abs(ir[1:]).max()
        clips.append((ir / np.sqrt(np.sum(ir**2))).astype(np.float32))
    return AudioBank(clips, sample_rate, "synthetic")


def interpolation_matrix(where: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear interpolation from values at `points` to `where` as a matrix (points, where): one
    product with gains (rows, points) gives every row's curve (rows, where)."""
    return np.stack([np.interp(where, points, unit) for unit in np.eye(len(points))])


def simulate_rooms(count: int, sample_rate: int, max_s: float, rng: np.random.Generator) -> np.ndarray:
    """`count` random rooms heard through random devices: impulse responses (count, max_s * rate), unit energy.

    The room: a direct path; 2-8 early reflections 0.5-15 ms after it, each of either sign at
    0.1-0.9 of its level (a wall, a table or the phone's own body: the comb filtering that puts
    ripples a few decibels deep and 70-2,000 Hz apart into a recording); a diffuse tail from 3-25 ms
    on, 10 dB above to 10 dB below the direct path and reflections in energy, decaying with an
    RT60 of 0.15-1.2 s (log-uniform) below a crossover at 1-3 kHz and 0.3-0.8 times as fast
    above it, as walls and air absorb high frequencies sooner. The loudspeaker and microphone: a
    tilt of up to +-6 dB per octave about 1 kHz and gains of up to +-4 dB at points a third of an
    octave apart. The 18 real rooms of `ir/train` spread their 1/6-octave levels over 300-4000 Hz
    with a standard deviation of 1.3-8.8 dB (median 2.4); these 2.2-5.3 (10th to 90th
    percentile, median 3.5).
    """
    n = max(2, int(max_s * sample_rate))
    t = np.arange(n) / sample_rate
    early = early_reflections(count, n, sample_rate, rng)
    rt60 = np.exp(rng.uniform(np.log(0.15), np.log(1.2), (count, 1)))
    rt60_high = rt60 * rng.uniform(0.3, 0.8, (count, 1))
    crossover = rng.uniform(1000.0, 3000.0, (count, 1))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    low_share = 1 / (1 + (freqs / crossover) ** 4)  # a smooth split of white noise into two bands
    noise = np.fft.rfft(rng.standard_normal((count, n)), axis=-1)
    low = np.fft.irfft(noise * low_share, n, axis=-1)
    high = np.fft.irfft(noise * (1 - low_share), n, axis=-1)
    onset = rng.uniform(0.003, 0.025, (count, 1))
    after = np.clip(t - onset, 0, None)
    tail = (low * np.exp(-6.9 * after / rt60) + high * np.exp(-6.9 * after / rt60_high)) * (t >= onset)
    ratio_db = rng.uniform(-10.0, 10.0, (count, 1))  # direct and early energy over the tail's
    energy_ratio = np.sum(early**2, axis=1, keepdims=True) / np.sum(tail**2, axis=1, keepdims=True)
    tail *= np.sqrt(energy_ratio / 10 ** (ratio_db / 10))
    device_db = device_gains_db(freqs, count, rng)
    rooms = np.fft.irfft(np.fft.rfft(early + tail, axis=-1) * 10 ** (device_db / 20), n, axis=-1)
    return (rooms / np.sqrt(np.sum(rooms**2, axis=1, keepdims=True))).astype(np.float32)


def early_reflections(count: int, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """`count` direct paths (count, n), each with 2-8 reflections 0.5-15 ms after it of either sign
    at 0.1-0.9 of its level (`simulate_rooms`' early part)."""
    early = np.zeros((count, n))
    early[:, 0] = 1.0
    for row in range(count):
        reflections = int(rng.integers(2, 9))
        delays = np.minimum(n - 1, np.round(rng.uniform(0.0005, 0.015, reflections) * sample_rate).astype(int))
        gains = rng.choice([-1.0, 1.0], reflections) * rng.uniform(0.1, 0.9, reflections)
        np.add.at(early[row], delays, gains)
    return early


def device_gains_db(freqs: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` loudspeaker-and-microphone responses in dB at `freqs` (Hz), (count, len(freqs)): a tilt
    of up to +-6 dB per octave about 1 kHz plus gains of up to +-4 dB a third of an octave apart
    (`simulate_rooms`' device)."""
    octaves = np.log2(np.clip(freqs, *COLOUR_BAND_HZ) / 1000.0)
    points = np.log2(np.geomspace(*COLOUR_BAND_HZ, DEVICE_POINTS) / 1000.0)
    bumps = rng.uniform(-4.0, 4.0, (count, DEVICE_POINTS)) @ interpolation_matrix(octaves, points)
    return rng.uniform(-6.0, 6.0, (count, 1)) * octaves + bumps


def _load_clips(folder: str | Path, sample_rate: int) -> list[tuple[np.ndarray, str]]:
    """Each readable audio file under `folder`, with its path relative to the folder."""
    clips = []
    for path in find_audio_files([folder]):
        try:
            clips.append((load_audio(path, sample_rate), str(path.relative_to(folder))))
        except AudioError as err:
            log.warning("skipped: %s", err)
    return clips


def _bank(loaded: list[tuple[np.ndarray, str]], sample_rate: int, folder: str | Path, kind: str) -> AudioBank:
    if not loaded:
        raise AudioError(f"{folder}: no usable {kind} files found")
    return AudioBank([clip for clip, _ in loaded], sample_rate, str(folder), [name for _, name in loaded])


def reverberate(wave: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Convolve each row of `wave` (B, L) with its impulse response (B, K); output (B, L).

    FFT convolution, keeping the first L samples: the room's tail beyond the excerpt is cut,
    as it is for a recording that starts and stops with the excerpt.
    """
    n = wave.shape[-1] + ir.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    spectrum = torch.fft.rfft(wave, size) * torch.fft.rfft(ir, size)
    return torch.fft.irfft(spectrum, size)[..., : wave.shape[-1]]


def mix_at_snr(wave: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Add `noise` (B, L) to `wave` (B, L) scaled to `snr_db` (B,) decibels below the signal power."""
    signal_power = wave.pow(2).mean(dim=-1).clamp_min(1e-10)
    noise_power = noise.pow(2).mean(dim=-1).clamp_min(1e-10)
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return wave + noise * scale.unsqueeze(-1)


def colour(wave: torch.Tensor, gains_db: np.ndarray, sample_rate: int) -> torch.Tensor:
    """Filter each row of `wave` (B, L) through a smooth zero-phase response; output (B, L).

    Row b's response has gain `gains_db[b, i]` at the i-th of `COLOUR_POINTS` frequencies spread
    evenly over the octaves of `COLOUR_BAND_HZ`, interpolated in decibels over log frequency.
    """
    length = wave.shape[-1]
    size = 1 << (length + COLOUR_PAD - 1).bit_length()
    where = np.log(np.fft.rfftfreq(size, 1 / sample_rate).clip(*COLOUR_BAND_HZ))
    points = np.log(np.geomspace(*COLOUR_BAND_HZ, COLOUR_POINTS))
    weights = torch.from_numpy(interpolation_matrix(where, points).astype(np.float32))
    curves_db = torch.from_numpy(gains_db.astype(np.float32)) @ weights
    response = torch.exp(curves_db * (np.log(10) / 20))
    return torch.fft.irfft(torch.fft.rfft(wave, size) * response, size)[..., :length]


def random_gains_db(batch: int, max_db: float, rng: np.random.Generator) -> np.ndarray:
    """Gains for `colour`, (batch, COLOUR_POINTS), uniform in +-`max_db`."""
    return rng.uniform(-max_db, max_db, (batch, COLOUR_POINTS))


@dataclass(frozen=True)
class Degradation:
    """What `Degrader` drew for one excerpt."""

    room: str | None  # the impulse response (`AudioBank.name`, or "simulated"); None when dry
    noise: str | None  # the background noise recording; None when none was added
    snr_db: float | None  # the excerpt's power over the noise's
    gain_db: float


@dataclass(frozen=True)
class _Draws:
    """What `Degrader` drew for a batch, per row: clip indices (-1: not applied), SNR (nan: none), gain."""

    room: np.ndarray
    noise: np.ndarray
    snr_db: np.ndarray
    gain_db: np.ndarray


class Degrader:
    """Draws and applies reverb -> background noise -> gain, as configured."""

    def __init__(self, config: AugmentConfig, noise: AudioBank, irs: AudioBank) -> None:
        self.config = config
        self.noise = noise
        self.irs = irs

    @classmethod
    def from_folders(
        cls, config: AugmentConfig, sample_rate: int, noise_dir: str | None, ir_dir: str | None, seed: int = 0
    ) -> Degrader:
        """Banks from folders, or synthesised ones for a folder that is None."""
        noise = load_noise_bank(noise_dir, sample_rate) if noise_dir else synth_noise_bank(sample_rate, seed)
        irs = (
            load_ir_bank(ir_dir, sample_rate, config.ir_max_s)
            if ir_dir
            else synth_ir_bank(sample_rate, config.ir_max_s, seed)
        )
        return cls(config, noise, irs)

    def reseeded(self, seed: int) -> Degrader:
        """The same folders' banks (read once, so each unusable file is named once); synthesised ones drawn anew."""
        rate = self.noise.sample_rate
        noise = synth_noise_bank(rate, seed) if self.noise.source == "synthetic" else self.noise
        irs = synth_ir_bank(rate, self.config.ir_max_s, seed) if self.irs.source == "synthetic" else self.irs
        return Degrader(self.config, noise, irs)

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator, simulated_rooms: float = 0.0) -> torch.Tensor:
        """Degrade a batch (B, L) of clean waveforms; returns (B, L).

        `simulated_rooms`: the share of reverberated rows whose room is simulated (`simulate_rooms`)
        instead of drawn from the bank.
        """
        return self._degrade(wave, rng, simulated_rooms)[0]

    def _degrade(
        self, wave: torch.Tensor, rng: np.random.Generator, simulated_rooms: float = 0.0
    ) -> tuple[torch.Tensor, _Draws]:
        """Degrade a batch (B, L) of clean waveforms; returns (B, L) and what each row got."""
        cfg = self.config
        batch, length = wave.shape
        out = wave
        room = np.full(batch, -1)
        noise = np.full(batch, -1)
        snr = np.full(batch, np.nan, dtype=np.float32)
        use_ir = rng.random(batch) < cfg.ir_prob
        if use_ir.any():
            irs, chosen = self.irs.pick(batch, rng)
            if simulated_rooms > 0:  # no draw when off, so that runs without it keep their batches
                irs, chosen = self._with_simulated(irs, chosen, simulated_rooms, rng)
            wet = reverberate(out, torch.from_numpy(irs))
            out = torch.where(torch.from_numpy(use_ir).unsqueeze(-1), wet, out)
            room = np.where(use_ir, chosen, -1)
        use_noise = rng.random(batch) < cfg.noise_prob
        if use_noise.any():
            crops, chosen = self.noise.crops(batch, length, rng)
            drawn = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], batch).astype(np.float32)
            mixed = mix_at_snr(out, torch.from_numpy(crops), torch.from_numpy(drawn))
            out = torch.where(torch.from_numpy(use_noise).unsqueeze(-1), mixed, out)
            noise, snr = np.where(use_noise, chosen, -1), np.where(use_noise, drawn, np.nan)
        gain_db = rng.uniform(cfg.gain_db[0], cfg.gain_db[1], batch).astype(np.float32)
        out = out * torch.from_numpy(10 ** (gain_db / 20)).unsqueeze(-1)
        peak = out.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)  # a recording clips at full scale;
        return out / peak, _Draws(room, noise, snr, gain_db)  # keep within [-1, 1] without clipping

    def _with_simulated(
        self, irs: np.ndarray, chosen: np.ndarray, share: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """`irs` (B, K) with about `share` of its rows replaced by simulated rooms (their `chosen`: SIMULATED)."""
        simulated = rng.random(len(irs)) < share
        rooms = simulate_rooms(int(simulated.sum()), self.irs.sample_rate, self.config.ir_max_s, rng)
        width = max(irs.shape[1], rooms.shape[1])
        out = np.zeros((len(irs), width), dtype=np.float32)
        out[:, : irs.shape[1]] = irs
        out[simulated] = 0.0
        out[simulated, : rooms.shape[1]] = rooms
        return out, np.where(simulated, SIMULATED, chosen)

    def degrade(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade one mono excerpt (samples,) of any length; returns (samples,)."""
        return self.degrade_described(wave, rng)[0]

    def degrade_described(self, wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Degradation]:
        """Degrade one mono excerpt (samples,) of any length; returns (samples,) and what it got."""
        out, draws = self._degrade(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None], rng)
        room, noise, snr = int(draws.room[0]), int(draws.noise[0]), float(draws.snr_db[0])
        applied = Degradation(
            "simulated" if room == SIMULATED else self.irs.name(room) if room >= 0 else None,
            self.noise.name(noise) if noise >= 0 else None,
            snr if noise >= 0 else None,
            float(draws.gain_db[0]),
        )
        return out[0].numpy(), applied


def spec_augment(spec: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Cutout and frequency-band masks on log-mel spectrograms (B, F, T), each item its own.

    Masked cells take the spectrogram's floor value (-1, i.e. silence after normalisation).
    """
    batch, n_freq, n_time = spec.shape
    device = spec.device
    mask = torch.zeros_like(spec, dtype=torch.bool)
    f_idx = torch.arange(n_freq, device=device).view(1, n_freq, 1)
    t_idx = torch.arange(n_time, device=device).view(1, 1, n_time)

    def rand(high: torch.Tensor | int) -> torch.Tensor:
        u = torch.rand(batch, generator=generator).to(device)
        return (u * torch.as_tensor(high, device=device)).long().view(batch, 1, 1)

    def chosen(prob: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) < prob).to(device).view(batch, 1, 1)

    if config.cutout_prob > 0:
        h = 1 + rand(max(1, int(config.cutout_max_frac * n_freq)))
        w = 1 + rand(max(1, int(config.cutout_max_frac * n_time)))
        f0 = rand(n_freq - h.view(-1) + 1)
        t0 = rand(n_time - w.view(-1) + 1)
        hole = (f_idx >= f0) & (f_idx < f0 + h) & (t_idx >= t0) & (t_idx < t0 + w)
        mask |= hole & chosen(config.cutout_prob)
    if config.band_mask_prob > 0 and config.band_mask_max > 0:
        width = rand(min(config.band_mask_max, n_freq) + 1)
        f0 = rand(n_freq - width.view(-1) + 1)
        band = (f_idx >= f0) & (f_idx < f0 + width)
        mask |= band & chosen(config.band_mask_prob)
    return spec.masked_fill(mask, -1.0)
