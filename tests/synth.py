"""Small synthetic audio for tests: music-like songs, tones and noise, written to any format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def make_song(seconds: float, sample_rate: int = 8000, seed: int = 0) -> np.ndarray:
    """A music-like mono signal: a random melody of harmonic notes over noise-burst drums.

    Different seeds give clearly different songs; the same seed gives the same samples.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = np.zeros(n, dtype=np.float64)
    note_s = rng.uniform(0.15, 0.4)
    start = 0
    while start < n:
        length = int(note_s * sample_rate * rng.choice([1, 1, 2]))
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        seg = slice(start, min(n, start + length))
        envelope = np.exp(-3.0 * (t[seg] - t[start]) / max(note_s, 1e-3))
        for h, amp in enumerate((1.0, 0.5, 0.3, 0.2), start=1):
            if f0 * h < sample_rate / 2:
                wave[seg] += amp * envelope * np.sin(2 * np.pi * f0 * h * t[seg] + rng.uniform(0, 2 * np.pi))
        start += length
    beat = int(rng.uniform(0.3, 0.6) * sample_rate)
    for b in range(0, n, beat):
        burst = min(n - b, int(0.05 * sample_rate))
        wave[b : b + burst] += 0.5 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / (0.01 * sample_rate))
    wave /= np.abs(wave).max() + 1e-9
    return (0.5 * wave).astype(np.float32)


def tone(freq: float, seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    """A sine tone, shape (samples, channels)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, sample_rate: int) -> Path:
    """Write (samples,) or (samples, channels) audio; the format follows the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sample_rate)
    return path


def write_songs(
    folder: Path, count: int, seconds: float = 20.0, sample_rate: int = 8000, start_seed: int = 0
) -> list[Path]:
    """Write `count` different synthetic songs as WAV files named song_<seed>.wav."""
    return [
        write_audio(folder / f"song_{seed}.wav", make_song(seconds, sample_rate, seed), sample_rate)
        for seed in range(start_seed, start_seed + count)
    ]
