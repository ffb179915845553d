"""Re-encode songs as 44.1 kHz stereo OGG Vorbis and MP3, the kind of files users index.

The shared music is 16 kHz mono; `make bench-index` should time what a user's collection costs
to decode. Each song is resampled to 44.1 kHz, made stereo (the right channel a few samples
late, so the channels differ as real ones do) and written alternately as OGG Vorbis and MP3
(libsndfile's encoders at quality 0.6, about 128-160 kbit/s).

    python benchmarks/hifi_copies.py SONGS OUT [--count 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from fpkit.audio import find_audio_files, load_audio

RATE = 44100
RIGHT_DELAY = 7  # samples: the channels differ, as in a real stereo mix
QUALITY = 0.6  # libsndfile's compression level: 0 best quality, 1 smallest file
WRITE_FRAMES = 65536  # libsndfile's Vorbis encoder crashes on a whole song written at once


def stereo(wave: np.ndarray) -> np.ndarray:
    right = np.concatenate([np.zeros(RIGHT_DELAY, dtype=wave.dtype), wave[:-RIGHT_DELAY]])
    return np.stack([wave, right], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("songs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=40, help="songs to copy, the first in name order")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    songs = find_audio_files([args.songs])[: args.count]
    total_s = 0.0
    for i, path in enumerate(songs):
        wave = stereo(load_audio(path, RATE))
        fmt, subtype, suffix = ("OGG", "VORBIS", ".ogg") if i % 2 == 0 else ("MP3", "MPEG_LAYER_III", ".mp3")
        target = args.out / (path.stem + suffix)
        with sf.SoundFile(target, "w", RATE, 2, subtype, format=fmt, compression_level=QUALITY) as out:
            for start in range(0, len(wave), WRITE_FRAMES):
                out.write(wave[start : start + WRITE_FRAMES])
        total_s += len(wave) / RATE
    print(f"{args.out}: {len(songs)} files, {total_s / 3600:.2f} h of 44.1 kHz stereo")


if __name__ == "__main__":
    main()
