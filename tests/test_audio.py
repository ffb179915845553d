from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from synth import make_song, tone, write_audio

import fpkit.audio
from fpkit.audio import (
    AudioError,
    audio_info,
    crop,
    find_audio_files,
    iter_audio_blocks,
    iter_raw_blocks,
    load_audio,
    mix_to_mono,
    read_ahead,
    segment_starts,
)

MODEL_RATE = 8000


def peak_hz(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum)) * sample_rate / len(wave)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_decodes_44k_stereo_to_8k_mono(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"tone{suffix}", tone(440.0, 2.0, 44100, channels=2), 44100)
    wave = load_audio(path, MODEL_RATE)
    assert wave.dtype == np.float32 and wave.ndim == 1
    lossless = suffix in (".wav", ".flac")
    if lossless:
        assert len(wave) == 2 * MODEL_RATE
    else:  # codecs may pad by up to a frame
        assert abs(len(wave) - 2 * MODEL_RATE) < 0.05 * MODEL_RATE
    body = wave[MODEL_RATE // 4 : -MODEL_RATE // 4]  # away from codec and resampler edges
    assert abs(peak_hz(body, MODEL_RATE) - 440.0) <= MODEL_RATE / len(body)
    rms = float(np.sqrt(np.mean(body**2)))
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=1e-3 if lossless else 0.1)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 16000, 11025, 8000])
def test_streaming_resampler_equals_whole_signal(tmp_path: Path, rate: int) -> None:
    rng = np.random.default_rng(rate)
    n = int(21.37 * rate) + 3  # not a whole number of blocks, 10 s chunks or resampling periods
    source = (0.3 * rng.standard_normal(n)).astype(np.float32)
    path = write_audio(tmp_path / "noise.wav", source, rate)
    sf_data, _ = sf.read(str(path), dtype="float32")  # what the decoder hands the resampler

    blocks = list(iter_audio_blocks(path, MODEL_RATE, block_s=0.1))
    assert len(blocks) >= 3
    streamed = np.concatenate(blocks)
    whole = AF.resample(torch.from_numpy(sf_data), rate, MODEL_RATE).numpy()
    assert len(streamed) == len(whole) == math.ceil(n * MODEL_RATE / rate)
    np.testing.assert_allclose(streamed, whole, atol=5e-5)  # a filter made once rounds a little differently


@pytest.mark.parametrize(("source_rate", "target_rate"), [(8000, 16000), (12345, 8000), (44100, 22050)])
def test_streaming_resampler_other_rate_pairs(tmp_path: Path, source_rate: int, target_rate: int) -> None:
    rng = np.random.default_rng(0)
    source = (0.3 * rng.standard_normal(int(10.9 * source_rate) + 1)).astype(np.float32)
    path = write_audio(tmp_path / "noise.wav", source, source_rate)
    sf_data, _ = sf.read(str(path), dtype="float32")
    streamed = np.concatenate(list(iter_audio_blocks(path, target_rate, block_s=0.05)))
    whole = AF.resample(torch.from_numpy(sf_data), source_rate, target_rate).numpy()
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=5e-5)  # a filter made once rounds a little differently


class Trickle(io.RawIOBase):
    """A pipe that hands out at most `most` bytes per read, as a live stream does."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most = data, most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.most, len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


@pytest.mark.parametrize("source_rate", [8000, 16000, 44100])
def test_raw_stream_equals_resampling_the_whole_signal(source_rate: int) -> None:
    rng = np.random.default_rng(source_rate)
    source = (0.3 * rng.standard_normal(int(4.3 * source_rate) + 1)).astype("<f4")
    stream = Trickle(source.tobytes(), most=1001)  # reads end inside samples
    blocks = list(iter_raw_blocks(stream, source_rate, MODEL_RATE, "live", block_s=0.25))
    assert len(blocks) >= 4
    whole = AF.resample(torch.from_numpy(source.astype(np.float32)), source_rate, MODEL_RATE).numpy()
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=5e-5)


def test_raw_stream_that_is_not_f32le_is_named() -> None:
    with pytest.raises(AudioError, match="live: ends inside a sample"):
        list(iter_raw_blocks(io.BytesIO(np.zeros(100, "<f4").tobytes() + b"xy"), 8000, 8000, "live"))
    with pytest.raises(AudioError, match="live: samples that are not finite"):
        list(iter_raw_blocks(io.BytesIO(np.full(100, np.nan, "<f4").tobytes()), 8000, 8000, "live"))
    assert list(iter_raw_blocks(io.BytesIO(b""), 8000, 8000)) == []


def test_read_ahead_keeps_order_and_raises_where_reading_failed() -> None:
    def blocks():
        for i in range(5):
            yield np.full(3, i, np.float32)
        raise AudioError("x.wav: truncated")

    got = []
    with pytest.raises(AudioError, match="truncated"):
        for block in read_ahead(blocks(), depth=2):
            got.append(int(block[0]))
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stops_reading_when_the_consumer_stops() -> None:
    produced = []

    def blocks():
        for i in range(1000):
            produced.append(i)
            yield np.zeros(1, np.float32)

    ahead = read_ahead(blocks(), depth=1)
    next(ahead)
    ahead.close()
    time.sleep(0.5)
    assert len(produced) < 10


def test_default_blocks_equal_small_blocks_bit_for_bit(tmp_path: Path) -> None:
    # The song's content hash, its identity in a database, must not depend on how it was read.
    path = write_audio(tmp_path / "song.flac", make_song(23.3, 44100), 44100)
    small = np.concatenate(list(iter_audio_blocks(path, MODEL_RATE, block_s=0.2)))
    odd = np.concatenate(list(iter_audio_blocks(path, MODEL_RATE, block_s=2.9)))
    np.testing.assert_array_equal(load_audio(path, MODEL_RATE), small)
    np.testing.assert_array_equal(odd, small)


@pytest.mark.parametrize(("suffix", "channels", "rate"), [(".wav", 3, 44100), (".wav", 6, 48000), (".flac", 3, 22050)])
def test_odd_channel_counts_are_averaged(tmp_path: Path, suffix: str, channels: int, rate: int) -> None:
    rng = np.random.default_rng(channels)
    song = make_song(1.5, rate)
    # Each channel its own gain and its own noise: the result must be their average.
    multi = np.stack([g * song for g in np.linspace(0.2, 1.0, channels)], axis=1)
    multi += 0.05 * rng.standard_normal(multi.shape)
    multi = multi.astype(np.float32)
    path = write_audio(tmp_path / f"multi{suffix}", multi, rate)
    assert audio_info(path).channels == channels
    sf_data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    expected = AF.resample(torch.from_numpy(sf_data.mean(axis=1)), rate, MODEL_RATE).numpy()
    np.testing.assert_allclose(load_audio(path, MODEL_RATE), expected, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_mix_to_mono_is_the_channel_mean_bit_for_bit(channels: int) -> None:
    # Song hashes are taken from the mixed samples: the fast mix must not move a single bit.
    data = np.random.default_rng(channels).standard_normal((9001, channels)).astype(np.float32)
    np.testing.assert_array_equal(mix_to_mono(data), data.mean(axis=1))


@pytest.mark.parametrize("rate", [7350, 12345, 37800, 96000])
def test_odd_rates_keep_the_pitch(tmp_path: Path, rate: int) -> None:
    path = write_audio(tmp_path / "tone.wav", tone(440.0, 1.0, rate), rate)
    wave = load_audio(path, MODEL_RATE)
    assert len(wave) == math.ceil(rate * MODEL_RATE / rate)
    body = wave[1000:-1000]
    assert abs(peak_hz(body, MODEL_RATE) - 440.0) <= MODEL_RATE / len(body)


def test_model_rate_passes_through(tmp_path: Path) -> None:
    song = make_song(1.0, MODEL_RATE)
    path = write_audio(tmp_path / "song.wav", song, MODEL_RATE)
    sf.write(str(path), song, MODEL_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, MODEL_RATE), song)


def test_audio_info(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.flac", tone(440.0, 1.5, 22050, channels=2), 22050)
    info = audio_info(path)
    assert (info.path, info.sample_rate, info.channels, info.frames) == (str(path), 22050, 2, 33075)
    assert info.duration_s == pytest.approx(1.5)
    assert info.format == "FLAC"


# Each builder writes one broken file and returns its path.
def random_bytes(suffix: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / f"corrupt{suffix}"
        path.write_bytes(np.random.default_rng(1).bytes(20000))
        return path

    return build


def empty_file(folder: Path) -> Path:
    path = folder / "empty.wav"
    path.write_bytes(b"")
    return path


def header_only_wav(folder: Path) -> Path:
    path = folder / "header_only.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), 44100)
    assert path.stat().st_size == 44
    return path


def truncated_wav(folder: Path) -> Path:
    path = write_audio(folder / "truncated.wav", tone(440.0, 2.0, 44100, channels=2), 44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def truncated_flac(folder: Path) -> Path:
    path = write_audio(folder / "truncated.flac", make_song(3.0, 44100), 44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def text_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("these are not the samples you are looking for\n" * 50)
    return path


def text_named_wav(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("RIFF? no, just text\n" * 50)
    return path


def missing_file(folder: Path) -> Path:
    return folder / "does_not_exist.wav"


BROKEN = [
    random_bytes(".wav"),
    random_bytes(".mp3"),
    random_bytes(".flac"),
    empty_file,
    header_only_wav,
    truncated_wav,
    truncated_flac,
    text_file,
    text_named_wav,
    missing_file,
]


@pytest.mark.parametrize("build", BROKEN, ids=lambda b: getattr(b, "__name__", "?"))
def test_broken_file_gives_audio_error_naming_it(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    path = build(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path, MODEL_RATE)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_truncated_wav_says_so(tmp_path: Path) -> None:
    path = truncated_wav(tmp_path)
    with pytest.raises(AudioError, match=r"truncated \(header says 2\.00 s"):
        load_audio(path, MODEL_RATE)


def test_unfinished_streamed_wav_is_read(tmp_path: Path) -> None:
    # Streaming writers leave 0xFFFFFFFF as the data size; that is not a truncation.
    path = write_audio(tmp_path / "stream.wav", tone(440.0, 1.0, 16000), 16000)
    data = bytearray(path.read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert len(load_audio(path, MODEL_RATE)) == MODEL_RATE


def test_cut_mp3_gives_what_it_holds(tmp_path: Path) -> None:
    # An MP3's length in its header is an estimate, so a short MP3 is not an error.
    path = write_audio(tmp_path / "cut.mp3", tone(440.0, 2.0, 44100), 44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    wave = load_audio(path, MODEL_RATE)
    assert 0.5 * MODEL_RATE < len(wave) < 1.5 * MODEL_RATE


@pytest.mark.parametrize("build", [random_bytes(".wav"), text_file, missing_file], ids=lambda b: b.__name__)
def test_audio_info_on_broken_file(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    path = build(tmp_path)
    with pytest.raises(AudioError, match=f"^{path}: "):
        audio_info(path)


def test_segment_starts_whole_segments() -> None:
    np.testing.assert_array_equal(segment_starts(24000, 8000, 4000), [0, 4000, 8000, 12000, 16000])
    np.testing.assert_array_equal(segment_starts(8000, 8000, 4000), [0])
    np.testing.assert_array_equal(segment_starts(27999, 8000, 4000), [0, 4000, 8000, 12000, 16000])


def test_segment_starts_half_filled_last_segment() -> None:
    # 3.5 s: the segment at 3.0 s (half real audio) is kept with min_fill 0.5, not with 1.0.
    assert segment_starts(28000, 8000, 4000, min_fill=1.0)[-1] == 20000
    assert segment_starts(28000, 8000, 4000, min_fill=0.5)[-1] == 24000


@pytest.mark.parametrize(("n", "min_fill", "count"), [(7999, 1.0, 0), (0, 1.0, 0), (4000, 0.5, 1), (3999, 0.5, 0)])
def test_segment_starts_shorter_than_a_segment(n: int, min_fill: float, count: int) -> None:
    starts = segment_starts(n, 8000, 4000, min_fill)
    assert starts.dtype == np.int64 and len(starts) == count


def test_crop_pads_both_ends() -> None:
    wave = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(crop(wave, -2, 5), [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(crop(wave, 8, 4), [9, 10, 0, 0])
    np.testing.assert_array_equal(crop(wave, 20, 2), [0, 0])


def test_find_audio_files(tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "b" / "one.wav", tone(440.0, 0.1, 8000), 8000)
    flac = write_audio(tmp_path / "a" / "deep" / "two.FLAC", tone(440.0, 0.1, 8000), 8000)
    (tmp_path / "a" / "readme.txt").write_text("not audio")
    single = tmp_path / "explicit.xyz"
    assert find_audio_files([tmp_path]) == [flac, wav]
    assert find_audio_files([single, tmp_path / "b"]) == [single, wav]


def test_find_audio_files_follows_linked_folders_once(tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "music" / "one.wav", tone(440.0, 0.1, 8000), 8000)
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "music").symlink_to(tmp_path / "music")
    (tmp_path / "music" / "loop").symlink_to(tmp_path / "music")  # a cycle must not recurse forever
    assert find_audio_files([tmp_path / "all"]) == [tmp_path / "all" / "music" / wav.name]


def test_an_ogg_a_few_samples_short_of_its_header_is_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_audio(tmp_path / "song.ogg", make_song(3.0, 16000), 16000)
    real = fpkit.audio._declared_frames
    monkeypatch.setattr(fpkit.audio, "_declared_frames", lambda f: real(f) + 160)  # 10 ms more than decodes
    assert len(load_audio(path, 8000)) == pytest.approx(3.0 * 8000, abs=2)
    monkeypatch.setattr(fpkit.audio, "_declared_frames", lambda f: real(f) + 16000)  # a second missing
    with pytest.raises(AudioError, match="truncated"):
        load_audio(path, 8000)
