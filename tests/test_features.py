from __future__ import annotations

import numpy as np
import pytest
import torch
from synth import make_song, tone

from fpkit.config import CONFIG_DIR, Config, ConfigError, load_config
from fpkit.features import LogMelSpectrogram, framing, frontend_flops, n_frames


def songs(batch: int, samples: int = 8000) -> torch.Tensor:
    return torch.from_numpy(np.stack([make_song(samples / 8000, 8000, seed)[:samples] for seed in range(batch)]))


def frontend(config: Config) -> LogMelSpectrogram:
    return LogMelSpectrogram(config.audio, config.features)


def windows(config: Config, batch: int) -> torch.Tensor:
    return songs(batch, framing(config.audio, config.features).window)


@pytest.mark.parametrize(("name", "n_mels"), [("paper", 256), ("default", 128)])
@pytest.mark.parametrize("batch", [1, 3])
def test_shape_and_range(name: str, n_mels: int, batch: int) -> None:
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    spec = frontend(config)(windows(config, batch))
    assert spec.shape == (batch, n_mels, 32)
    assert spec.dtype == torch.float32
    assert spec.min().item() >= -1.0 and spec.max().item() <= 1.0
    # Each segment is normalised to its own maximum, and the 80 dB range reaches the floor.
    assert torch.allclose(spec.amax(dim=(1, 2)), torch.ones(batch))
    assert (spec == -1.0).any()


@pytest.mark.parametrize("shape", [(2 * 8000,), (3, 8774), (2, 2, 8774)])
def test_log_mel_is_torchaudios_mel_power_in_db(shape: tuple[int, ...]) -> None:
    mel = frontend(load_config(CONFIG_DIR / "default.yaml"))
    wave = torch.randn(shape)
    expected = 10.0 * torch.log10(mel.mel(wave).clamp_min(1e-10))  # torchaudio's |X| ** 2, filterbank, dB
    torch.testing.assert_close(mel.log_mel(wave), expected, atol=1e-4, rtol=0)


def test_frames_per_segment() -> None:
    config = Config()
    assert n_frames(config.audio, config.features) == 32
    two_s = load_config(None, ["audio.segment_s=2.0"])
    assert n_frames(two_s.audio, two_s.features) == 63
    stream = load_config(CONFIG_DIR / "default.yaml")
    assert n_frames(stream.audio, stream.features) == 32


def test_segment_framing_hears_only_the_segment() -> None:
    """The paper's framing: the window's context is replaced by zeros, as centred frames pad."""
    config = Config()
    mel = frontend(config)
    wave = windows(config, 2)
    f = mel.framing
    blanked = wave.clone()
    blanked[:, : f.left] = 0
    blanked[:, f.left + f.segment :] = 0
    torch.testing.assert_close(mel(wave), mel(blanked), atol=0, rtol=0)


def test_stream_framing_cuts_segments_from_one_framing_of_the_song() -> None:
    """Frames of a whole signal, cut per segment, equal each segment's window on its own."""
    config = load_config(CONFIG_DIR / "default.yaml")
    mel = frontend(config)
    f = mel.framing
    song = songs(1, 10 * 8000)[0]
    starts = torch.arange(0, len(song) - f.window + 1, 4000)
    alone = mel(torch.stack([song[s : s + f.window] for s in starts]))
    cut = mel.segment_frames(mel.log_mel(song), starts // f.stft_hop)
    torch.testing.assert_close(cut, alone, atol=1e-5, rtol=0)


def test_stream_framing_needs_whole_frames_per_hop() -> None:
    with pytest.raises(ConfigError, match="stft_hop"):
        load_config(CONFIG_DIR / "default.yaml", ["features.stft_hop=256"])


@pytest.mark.parametrize("gain", [0.01, 0.3, 2.0])
def test_gain_invariance(gain: float) -> None:
    mel = frontend(Config())
    wave = windows(Config(), 2)
    torch.testing.assert_close(mel(wave * gain), mel(wave), atol=1e-4, rtol=0)


def test_items_are_independent() -> None:
    mel = frontend(Config())
    wave = windows(Config(), 3)
    torch.testing.assert_close(mel(wave)[1:2], mel(wave[1:2]), atol=1e-5, rtol=0)


def test_silence_stays_finite() -> None:
    spec = frontend(Config())(torch.zeros(2, framing(Config().audio, Config().features).window))
    assert torch.isfinite(spec).all()


def test_a_higher_tone_lands_in_a_higher_band() -> None:
    mel = frontend(Config())
    peaks = []
    for freq in (400.0, 1000.0, 2000.0, 3500.0):
        spec = mel(torch.from_numpy(tone(freq, 1.2, 8000)[: mel.framing.window, 0])[None])
        peaks.append(int(spec[0].mean(dim=1).argmax()))
    assert peaks == sorted(peaks) and len(set(peaks)) == 4
    assert peaks[0] > 0 and peaks[-1] < 255


def test_frontend_flops_is_positive_and_grows_with_length() -> None:
    one = Config()
    two = load_config(None, ["audio.segment_s=2.0"])
    assert 0 < frontend_flops(one.audio, one.features) < frontend_flops(two.audio, two.features)
