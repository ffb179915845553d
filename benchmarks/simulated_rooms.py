"""Impulse responses of simulated rooms as files: a fixed judging set of the family training draws anew.

`augment.simulated_rooms` gives each training replica a room drawn by `fpkit.augment.simulate_rooms`
(reflections, a two-band tail and a device response), never the same twice. To judge what a
model learnt from that family, this writes a fixed draw of it as a folder that `--ir` reads,
for example `benchmarks/decision_data.py --ir`: the rooms are of the family a model trained
with simulated rooms has heard, but not these rooms. Writes 8 kHz (the model rate) mono float
WAV files, `sim-NN.wav`, 0.5 s long (`augment.ir_max_s`), unit energy.

    python benchmarks/simulated_rooms.py ../extra/sim-rooms --count 19 --seed 7
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
from room_bank import bank_arguments  # this script's folder is on the path

from fpkit.augment import simulate_rooms
from fpkit.config import AudioConfig, AugmentConfig


def main() -> None:
    args = bank_arguments(__doc__, seed=7)
    rate, length_s = AudioConfig().sample_rate, AugmentConfig().ir_max_s
    rooms = simulate_rooms(args.count, rate, length_s, np.random.default_rng(args.seed))
    for i, ir in enumerate(rooms):
        path = args.out / f"sim-{i:02d}.wav"
        sf.write(path, ir.astype(np.float32), rate, subtype="FLOAT")
        print(path)


if __name__ == "__main__":
    main()
