"""Impulse responses of algorithmic reverbs heard through a band-limited device: a fourth family of rooms.

The model's training rooms (`ir/train`), the simulated rooms of `augment.simulated_rooms` and the
shoebox rooms of `benchmarks/image_source_rooms.py` each favour a model that trained on them; this
family, made another way, favours none of them, so a model trained on all three can be judged on
it. Each response is a direct path, a pre-delay of 0-30 ms and a Schroeder-Moorer reverb (eight
parallel comb filters with a low-pass in their feedback, the highs dying 1.5-4 times sooner,
then four all-passes; delays scaled by a random room size, RT60 0.5-3 s log-uniform) mixed at
a direct-to-reverberant ratio of -10 to +4 dB (a wet room: the microphone as far from the source
as a room lets it be), then band-limited as a small device would hear it
(a second-order high-pass at 80-400 Hz and low-pass at 2.5-7 kHz). Writes 16 kHz mono 16-bit
WAV files, `algo-NN.wav`, 1 s long.

Needs scipy (not an fpkit dependency), e.g. in the environment `image_source_rooms.py` uses:

    ../rooms-env/bin/python benchmarks/algorithmic_rooms.py ../extra/algo-rooms --count 19 --seed 11
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
from room_bank import bank_arguments  # this script's folder is on the path
from scipy import signal

RATE = 16000
LENGTH_S = 1.0
COMB_S = np.array([1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617]) / 44100  # Freeverb's tunings
ALLPASS_S = np.array([556, 441, 341, 225]) / 44100


def comb(x: np.ndarray, delay: int, gain: float, damping: float) -> np.ndarray:
    """y[n] = x[n - D] + gain * lowpass(y)[n - D], the low-pass being (1 - damping) / (1 - damping z^-1)."""
    b = np.zeros(delay + 2)
    b[delay], b[delay + 1] = 1.0, -damping
    a = np.zeros(delay + 1)
    a[0], a[1] = 1.0, -damping
    a[delay] -= gain * (1 - damping)
    return signal.lfilter(b, a, x)


def allpass(x: np.ndarray, delay: int, gain: float = 0.5) -> np.ndarray:
    b = np.zeros(delay + 1)
    b[0], b[delay] = -gain, 1.0
    a = np.zeros(delay + 1)
    a[0], a[delay] = 1.0, -gain
    return signal.lfilter(b, a, x)


def room_response(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    n = int(LENGTH_S * RATE)
    rt60 = float(np.exp(rng.uniform(np.log(0.5), np.log(3.0))))
    size = rng.uniform(0.6, 1.6)
    damping = rng.uniform(0.1, 0.6)  # the comb low-pass: more damping, faster-dying highs
    pre = int(rng.uniform(0.0, 0.03) * RATE)
    impulse = np.zeros(n)
    impulse[pre] = 1.0
    wet = np.zeros(n)
    for seconds in COMB_S * size:
        delay = max(2, int(seconds * RATE * rng.uniform(0.97, 1.03)))
        gain = 10 ** (-3 * delay / (rt60 * RATE))  # -60 dB after rt60 seconds
        wet += comb(impulse, delay, gain, damping)
    for seconds in ALLPASS_S * size:
        wet = allpass(wet, max(1, int(seconds * RATE)))
    drr_db = rng.uniform(-10.0, 4.0)
    direct = np.zeros(n)
    direct[0] = 1.0
    ir = direct * np.sqrt(np.sum(wet**2)) * 10 ** (drr_db / 20) + wet
    low_hz, high_hz = rng.uniform(80, 400), rng.uniform(2500, 7000)
    ir = signal.sosfilt(signal.butter(2, [low_hz, high_hz], btype="bandpass", fs=RATE, output="sos"), ir)
    note = f"RT60 {rt60:.2f} s, size {size:.2f}, damping {damping:.2f}, DRR {drr_db:+.1f} dB"
    note += f", {low_hz:.0f}-{high_hz:.0f} Hz"
    return ir / np.max(np.abs(ir)) * 0.9, note


def main() -> None:
    args = bank_arguments(__doc__, seed=11)
    rng = np.random.default_rng(args.seed)
    for i in range(args.count):
        ir, note = room_response(rng)
        path = args.out / f"algo-{i:02d}.wav"
        sf.write(path, ir.astype(np.float32), RATE, subtype="PCM_16")
        print(f"{path}: {note}")


if __name__ == "__main__":
    main()
