from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synth import make_song, write_audio

import fpkit.device
from fpkit.audio import AudioError, crop, load_audio, segment_starts
from fpkit.config import Config, config_with_overrides
from fpkit.device import autocast_dtype
from fpkit.fingerprint import (
    BATCH_GRAIN,
    STREAM_CHUNK,
    SongPrints,
    check_usable,
    content_hash,
    query_prints,
    reference_prints,
)
from fpkit.model import build_model


@pytest.fixture
def model(tiny_config: Config) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_config).eval()


def test_reference_prints_cover_every_hop_and_the_last_half_second(model, tiny_config: Config) -> None:
    audio = tiny_config.audio
    wave = make_song(5.3, audio.sample_rate)
    prints = reference_prints(model, wave, audio, batch_size=4)
    expected = len(segment_starts(len(wave), audio.segment_samples, audio.hop_samples, min_fill=0.5))
    assert prints.shape == (expected, tiny_config.model.emb_dim) == (10, 32)
    assert prints.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(prints, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_fingerprints(model, tiny_config: Config) -> None:
    wave = make_song(4.0, tiny_config.audio.sample_rate)
    one = reference_prints(model, wave, tiny_config.audio, batch_size=1)
    many = reference_prints(model, wave, tiny_config.audio, batch_size=64)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_query_copies_are_shifted_within_one_hop(model, tiny_config: Config) -> None:
    audio = tiny_config.audio
    wave = make_song(3.0, audio.sample_rate)
    q = query_prints(model, wave, audio, shifts=4, batch_size=16)
    np.testing.assert_allclose(q.shifts_s, [0.0, 0.125, 0.25, 0.375])
    assert [p.shape[0] for p in q.prints] == [5, 4, 4, 4]  # whole segments only
    # The unshifted copy equals the stored fingerprints of the same samples.
    stored = reference_prints(model, wave, audio, batch_size=16)
    np.testing.assert_allclose(q.prints[0], stored[:5], atol=1e-5)


def test_a_one_second_query_still_gets_every_shift(model, tiny_config: Config) -> None:
    wave = make_song(1.0, tiny_config.audio.sample_rate)
    q = query_prints(model, wave, tiny_config.audio, shifts=4, batch_size=16)
    assert len(q.shifts_s) == 4 and all(p.shape[0] == 1 for p in q.prints)


@pytest.fixture
def stream_model(tiny_config: Config) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        config_with_overrides(tiny_config.to_dict(), ["features.framing=stream", "features.stft_hop=250"], "<tiny>")
    )


def test_stream_framing_equals_framing_each_window(stream_model, tiny_config: Config) -> None:
    """Segments cut from one framing of the song give the fingerprints of their own windows."""
    audio = tiny_config.audio
    wave = make_song(70.0, audio.sample_rate)  # longer than one framing chunk
    stored = reference_prints(stream_model, wave, audio, batch_size=32)
    f = stream_model.frontend.framing
    starts = segment_starts(len(wave), audio.segment_samples, audio.hop_samples, min_fill=0.5)
    windows = torch.from_numpy(np.stack([crop(wave, int(s) - f.left, f.window) for s in starts]))
    with torch.inference_mode():
        alone = stream_model(windows).numpy()
    np.testing.assert_allclose(stored, alone, atol=1e-5)


def test_stream_framing_shifts_queries_by_whole_frames(stream_model, tiny_config: Config) -> None:
    audio = tiny_config.audio
    wave = make_song(3.0, audio.sample_rate)
    q = query_prints(stream_model, wave, audio, shifts=3, batch_size=16)
    np.testing.assert_allclose(q.shifts_s * audio.sample_rate, [0, 1250, 2750])  # 4000 / 3 rounded to frames
    stored = reference_prints(stream_model, wave, audio, batch_size=16)
    np.testing.assert_allclose(q.prints[0], stored[:5], atol=1e-5)


def test_short_or_silent_input_is_refused_by_name(tiny_config: Config) -> None:
    audio = tiny_config.audio
    with pytest.raises(AudioError, match=r"^clip.wav: too short \(0.50 s"):
        check_usable(make_song(0.5, audio.sample_rate), "clip.wav", audio)
    with pytest.raises(AudioError, match=r"^quiet.wav: silent"):
        check_usable(np.zeros(2 * audio.sample_rate, dtype=np.float32), "quiet.wav", audio)
    check_usable(make_song(1.0, audio.sample_rate), "ok.wav", audio)


def test_content_hash_follows_the_audio_not_the_container(tmp_path: Path) -> None:
    wave = np.round(make_song(2.0, 16000) * 32767).astype(np.int16)  # the same PCM samples in both files
    wav = load_audio(write_audio(tmp_path / "a.wav", wave, 16000), 8000)
    flac = load_audio(write_audio(tmp_path / "b.flac", wave, 16000), 8000)
    other = load_audio(write_audio(tmp_path / "c.wav", make_song(2.0, 16000, seed=1), 16000), 8000)
    # Hashing decoded audio makes a WAV and a FLAC of the same samples one song.
    assert content_hash(wav) == content_hash(flac) != content_hash(other)


@pytest.mark.parametrize("framing", ["segment", "stream"])
def test_song_prints_fed_in_blocks_equal_the_whole_song(tiny_config: Config, framing: str) -> None:
    config = config_with_overrides(tiny_config.to_dict(), [f"features.framing={framing}", "features.stft_hop=250"], "t")
    torch.manual_seed(0)
    model = build_model(config).eval()
    audio = config.audio
    wave = make_song(150.3, audio.sample_rate) + 0.25  # an offset that the level must ignore
    song = SongPrints(model, audio, batch_size=16)
    rng = np.random.default_rng(0)
    first = 0
    while first < len(wave):
        size = int(rng.integers(1, 40000))
        song.feed(wave[first : first + size])
        first += size
    np.testing.assert_allclose(song.finish(), reference_prints(model, wave, audio, batch_size=16), atol=1e-5)
    assert song.sha == content_hash(wave)
    assert song.samples == len(wave)
    assert song.peak == pytest.approx((wave.max() - wave.min()) / 2)
    assert len(song.buffer) < 2 * STREAM_CHUNK * audio.hop_samples  # never the whole song


def test_the_network_gets_whole_batches_however_the_song_arrives(tiny_config: Config) -> None:
    config = config_with_overrides(tiny_config.to_dict(), ["features.framing=stream", "features.stft_hop=250"], "t")
    model = build_model(config).eval()
    sizes: list[int] = []
    embed = model.embed
    model.embed = lambda spec: sizes.append(len(spec)) or embed(spec)  # type: ignore[method-assign]
    song = SongPrints(model, config.audio, batch_size=12)
    wave = make_song(91.0, config.audio.sample_rate)
    for first in range(0, len(wave), 13001):  # blocks that split chunks and batches anywhere
        song.feed(wave[first : first + 13001])
    prints = song.finish()
    # Only a song's very last batch may be short (short batches cost nearly as much as full
    # ones), and it is padded to a multiple of BATCH_GRAIN: few shapes, so bounded memory.
    assert len(prints) % 12 == 2 and set(sizes[:-1]) == {12} and sizes[-1] == BATCH_GRAIN
    assert 12 * len(sizes[:-1]) + 2 == len(prints)
    unpadded = reference_prints(model, wave, config.audio, batch_size=1)  # one segment a call: no padding
    np.testing.assert_allclose(prints, unpadded, atol=1e-5)


def test_a_constant_offset_is_silence(tiny_config: Config) -> None:
    with pytest.raises(AudioError, match="silent"):
        check_usable(np.full(3 * 8000, 0.5, dtype=np.float32), "dc.wav", tiny_config.audio)


def test_bfloat16_fingerprints_stay_close_to_float32(model, tiny_config: Config) -> None:
    wave = make_song(6.0, tiny_config.audio.sample_rate)
    exact = reference_prints(model, wave, tiny_config.audio, batch_size=8)
    model.autocast = torch.bfloat16
    try:
        rough = reference_prints(model, wave, tiny_config.audio, batch_size=8)
    finally:
        model.autocast = None
    assert rough.dtype == np.float32
    assert np.min(np.sum(exact * rough, axis=1)) > 0.99  # cosine of each pair


def test_auto_precision_is_bfloat16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "float32") is None
    assert autocast_dtype(cpu, "bfloat16") is torch.bfloat16
    monkeypatch.setattr(fpkit.device, "native_bfloat16", lambda device: False)
    assert autocast_dtype(cpu, "auto") is None
    monkeypatch.setattr(fpkit.device, "native_bfloat16", lambda device: True)
    assert autocast_dtype(cpu, "auto") is torch.bfloat16
