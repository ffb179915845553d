"""Silence, DC and other non-music: refused or never a match (issue 12, defect 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synth import make_song, write_audio

from fpkit.audio import AudioError
from fpkit.config import AudioConfig, Config
from fpkit.db import Database, Searcher
from fpkit.fingerprint import blank_segments, check_usable, query_prints, reference_prints
from fpkit.model import LoadedModel, build_model, load_model

RATE = 8000
AUDIO = AudioConfig()


def hops(seconds: float) -> np.ndarray:
    """Start samples of the segments of a signal of `seconds`, every half second."""
    return np.arange(0, round((seconds - 1) * RATE) + 1, RATE // 2)


def clicks(seconds: float, every_s: float = 0.7) -> np.ndarray:
    wave = np.zeros(round(seconds * RATE), dtype=np.float32)
    wave[50 :: round(every_s * RATE)] = 0.8
    return wave


def test_dc_and_sparse_clicks_are_silence_music_is_not() -> None:
    song = make_song(5.0, RATE)
    assert not blank_segments(song, hops(5.0), AUDIO).any()
    assert not blank_segments(song + 0.3, hops(5.0), AUDIO).any()  # an offset changes nothing
    dc = np.full(5 * RATE, 0.3, dtype=np.float32)
    assert blank_segments(dc, hops(5.0), AUDIO).all()
    assert blank_segments(clicks(5.0), hops(5.0), AUDIO).all()
    half = np.concatenate([dc[:RATE], song[: 3 * RATE]])  # 1 s of DC, then music
    blank = blank_segments(half, hops(4.0), AUDIO)
    assert blank.tolist() == [True, True, False, False, False, False, False]  # half silence is blank too
    assert not blank_segments(half, hops(4.0) + 320, AUDIO)[1]  # 0.46 s of silence is not
    last = blank_segments(song[: 3 * RATE // 2], np.array([RATE]), AUDIO)[0]  # half music, half past the end
    assert not last  # kept, as a song's last segment is
    for first in (1000, 1234):  # a piece of the song, as a song fingerprinted block by block holds
        piece = half[first:]
        np.testing.assert_array_equal(blank_segments(piece, hops(4.0)[2:] - first, AUDIO, first), blank[2:])


def test_dc_faint_noise_and_clicks_are_refused_by_name() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(AudioError, match=r"^dc.wav: silent"):
        check_usable(np.full(3 * RATE, 0.3, dtype=np.float32), "dc.wav", AUDIO)
    faint = (0.3 + 2e-5 * rng.standard_normal(3 * RATE)).astype(np.float32)  # -94 dBFS of noise on DC
    with pytest.raises(AudioError, match=r"^faint.wav: (nearly )?silent"):
        check_usable(faint, "faint.wav", AUDIO)
    with pytest.raises(AudioError, match=r"^clicks.wav: nearly silent"):
        check_usable(clicks(3.0), "clicks.wav", AUDIO)
    check_usable(make_song(3.0, RATE) - 0.4, "offset.wav", AUDIO)


def test_blank_segments_get_zero_fingerprints_and_dc_is_ignored(tiny_config: Config) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config)
    song = make_song(4.0, RATE)
    padded = np.concatenate([np.zeros(RATE, dtype=np.float32), song, np.zeros(2 * RATE, dtype=np.float32)])
    prints = reference_prints(model, padded, AUDIO, batch_size=16)
    norms = np.linalg.norm(prints, axis=1)
    # Segments every 0.5 s: the first and the last four are silence, and the two at the music's
    # edges half silence, which is as featureless once normalised.
    assert norms[:2].tolist() == [0.0, 0.0] and norms[-5:].tolist() == [0.0] * 5
    np.testing.assert_allclose(norms[2:-5], 1.0, atol=1e-5)
    song -= song.mean()
    plain = query_prints(model, song, AUDIO, shifts=2, batch_size=16)
    offset = query_prints(model, song + 0.25, AUDIO, shifts=2, batch_size=16)
    for a, b in zip(plain.prints, offset.prints, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


# ---- the shipped model against a small database of synthetic songs ------------------------


def _song(seed: int) -> np.ndarray:
    """A synthetic song; odd seeds start with a second of digital silence and fade out into three."""
    wave = make_song(20.0, RATE, seed)
    if seed % 2:
        wave[-4 * RATE :] *= np.linspace(1.0, 0.0, 4 * RATE, dtype=np.float32) ** 2
        wave = np.concatenate([np.zeros(RATE, np.float32), wave, np.zeros(3 * RATE, np.float32)])
    return wave


def _speech_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Voiced syllables: a gliding 120 Hz harmonic series through three formants, four syllables a second, pauses."""
    t = np.arange(n) / RATE
    f0 = 120.0 * (1 + 0.15 * np.sin(2 * np.pi * 0.8 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = np.zeros(n)
    for k in range(1, 33):
        formants = sum(np.exp(-0.5 * ((k * f0 - fc) / bw) ** 2) for fc, bw in ((700, 130), (1200, 150), (2600, 250)))
        voice += formants / np.sqrt(k) * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.5 * t) > -0.5)
    return 0.3 * voice / np.abs(voice).max() * syllables + 0.003 * rng.standard_normal(n)


def _non_music(kind: str, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(round(seconds))
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    signals = {
        "dc": lambda: np.full(n, 0.3),
        "dc+noise at -60 dB": lambda: 0.3 + 1e-3 * rng.standard_normal(n),
        "dc+noise at -80 dB": lambda: -0.2 + 1e-4 * rng.standard_normal(n),
        "50 Hz hum": lambda: sum(0.2 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8)),
        "60 Hz hum on DC": lambda: 0.05 + sum(0.2 / k * np.sin(2 * np.pi * 60 * k * t) for k in (1, 2, 3, 5)),
        "sparse clicks": lambda: clicks(seconds),
        "white noise": lambda: 0.1 * rng.standard_normal(n),
        "faint white noise": lambda: 1e-3 * rng.standard_normal(n),
        "speech-like": lambda: _speech_like(n, rng),
    }
    return signals[kind]().astype(np.float32)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Searcher, LoadedModel]:
    # The untrained tiny model places everything near everything; the shipped one makes the point.
    model = load_model()
    folder = tmp_path_factory.mktemp("songs")
    paths = [write_audio(folder / f"song_{seed}.wav", _song(seed), RATE) for seed in range(6)]
    db = Database.open_or_create(folder / "db", model)
    db.add_files(paths, model)
    db.update_index(model.config.index)
    return Searcher(db, model), model


@pytest.mark.parametrize(
    "kind",
    [
        "dc",
        "dc+noise at -60 dB",
        "dc+noise at -80 dB",
        "50 Hz hum",
        "60 Hz hum on DC",
        "sparse clicks",
        "white noise",
        "faint white noise",
        "speech-like",
    ],
)
def test_non_music_is_never_a_match(shipped: tuple[Searcher, LoadedModel], kind: str) -> None:
    searcher, _ = shipped
    for seconds in (1.0, 3.0, 10.0):
        try:
            result = searcher.search_wave(_non_music(kind, seconds), kind)
        except AudioError as err:
            assert "silent" in str(err)  # refused, by name, as nothing to fingerprint
            continue
        assert result.match is None, f"{kind}, {seconds:g} s: matched {result.match}"


def test_the_same_database_finds_its_songs(shipped: tuple[Searcher, LoadedModel]) -> None:
    searcher, _ = shipped
    for seed in range(6):
        start = 6.0 + seed
        result = searcher.search_wave(_song(seed)[round(start * RATE) : round((start + 3) * RATE)], f"song {seed}")
        assert result.match is not None and Path(result.match.ref).name == f"song_{seed}.wav"
        assert abs(result.match.offset_s - start) < 0.25
