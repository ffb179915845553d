"""Impulse responses with one part of a room each, to measure what each part costs a model.

Writes four folders of 8 kHz mono float WAV files, 0.5 s long, drawn as `fpkit.augment.simulate_rooms`
draws the same part (its docstring gives the ranges):

- `dry/`: a unit impulse (the control: noise alone);
- `device/`: a loudspeaker and microphone alone (a tilt of up to +-6 dB per octave and gains of up
  to +-4 dB a third of an octave apart);
- `early/`: the direct path and 2-8 early reflections 0.5-15 ms after it (comb filtering);
- `tail/`: the direct path and a diffuse tail from 3-25 ms on (RT60 0.15-1.2 s), 10 dB above to
  10 dB below the direct path in energy, with neither reflections nor device.

Each folder serves as `--ir` of `benchmarks/decision_data.py`; with the same `--seed` there, every
folder degrades the same excerpts with the same noise:

    python benchmarks/room_parts.py ../extra/parts --count 20 --seed 21
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
from room_bank import bank_arguments  # this script's folder is on the path

from fpkit.augment import device_gains_db, early_reflections

RATE = 8000
LENGTH = 4000  # samples: the 0.5 s that `augment.ir_max_s` keeps


def unit_energy(rooms: np.ndarray) -> np.ndarray:
    return (rooms / np.sqrt(np.sum(rooms**2, axis=1, keepdims=True))).astype(np.float32)


def devices(count: int, rng: np.random.Generator) -> np.ndarray:
    gains_db = device_gains_db(np.fft.rfftfreq(LENGTH, 1 / RATE), count, rng)
    return unit_energy(np.fft.irfft(10 ** (gains_db / 20), LENGTH, axis=-1))


def diffuse_tails(count: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(LENGTH) / RATE
    rt60 = np.exp(rng.uniform(np.log(0.15), np.log(1.2), (count, 1)))
    onset = rng.uniform(0.003, 0.025, (count, 1))
    tails = rng.standard_normal((count, LENGTH)) * np.exp(-6.9 * np.clip(t - onset, 0, None) / rt60) * (t >= onset)
    ratio_db = rng.uniform(-10.0, 10.0, (count, 1))  # the direct path's energy over the tail's
    tails /= np.sqrt(np.sum(tails**2, axis=1, keepdims=True) * 10 ** (ratio_db / 10))
    tails[:, 0] += 1.0
    return unit_energy(tails)


def main() -> None:
    args = bank_arguments(__doc__, seed=21)
    rng = np.random.default_rng(args.seed)
    dry = np.zeros((1, LENGTH), dtype=np.float32)
    dry[0, 0] = 1.0
    parts = {"dry": dry, "device": devices(args.count, rng)}
    parts["early"] = unit_energy(early_reflections(args.count, LENGTH, RATE, rng))
    parts["tail"] = diffuse_tails(args.count, rng)
    for name, rooms in parts.items():
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        for i, room in enumerate(rooms):
            sf.write(folder / f"{name}-{i:02d}.wav", room, RATE, subtype="FLOAT")


if __name__ == "__main__":
    main()
