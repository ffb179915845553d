from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synth import make_song, write_audio

from fpkit.audio import AudioError, load_audio
from fpkit.db.decoder import BackgroundDecoder


def test_blocks_arrive_in_file_order_equal_to_decoding_here(tmp_path: Path) -> None:
    paths = [write_audio(tmp_path / f"{i}.wav", make_song(45.0, 22050, seed=i), 22050) for i in range(3)]
    with BackgroundDecoder(paths, 8000) as decoder:
        for path, blocks in decoder.files():
            np.testing.assert_array_equal(np.concatenate(list(blocks)), load_audio(path, 8000))
    assert not decoder.thread.is_alive()


def test_reads_the_file_in_the_same_blocks_as_load_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # libsndfile's MP3 decoder returns other samples after some read boundaries: a file read in
    # other blocks here than by load_audio would get another content hash, and eval would not find it.
    path = write_audio(tmp_path / "song.wav", make_song(45.0, 22050), 22050)
    requested: list[int] = []
    read = sf.SoundFile.read

    def recording_read(self: sf.SoundFile, frames: int = -1, *args: object, **kwargs: object) -> object:
        requested.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", recording_read)
    load_audio(path, 8000)
    by_load_audio, requested[:] = list(requested), []
    with BackgroundDecoder([path], 8000) as decoder:
        for _, blocks in decoder.files():
            list(blocks)
    assert requested == by_load_audio and len(set(by_load_audio)) == 1


def test_a_bad_file_fails_alone(tmp_path: Path) -> None:
    good = write_audio(tmp_path / "good.wav", make_song(3.0, 8000), 8000)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00not audio" * 100)
    with BackgroundDecoder([bad, good], 8000) as decoder:
        files = decoder.files()
        path, blocks = next(files)
        with pytest.raises(AudioError, match=f"^{bad}: "):
            list(blocks)
        path, blocks = next(files)
        assert path == good and sum(len(b) for b in blocks) == 3 * 8000


def test_closing_early_stops_the_thread(tmp_path: Path) -> None:
    paths = [write_audio(tmp_path / f"{i}.wav", make_song(60.0, 8000, seed=i), 8000) for i in range(4)]
    decoder = BackgroundDecoder(paths, 8000)
    _, blocks = next(decoder.files())
    next(blocks)
    decoder.close()
    assert not decoder.thread.is_alive()
