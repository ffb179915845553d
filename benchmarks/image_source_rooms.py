"""Impulse responses of shoebox rooms, to train on and to choose between models.

The real training rooms (`ir/train`) favour a model that trained on them, and the simulated rooms of
`augment.simulated_rooms` favour one that trained on those; shoebox rooms from the image-source method
with a ray-traced tail (pyroomacoustics), drawn with a seed no model trained on, favour neither (the
shipped model trained on seeds 100 and 140, docs/model.md). Four kinds of room take turns: living rooms,
tiled rooms (bathrooms, kitchens), offices and halls, each surface a measured material of its kind
(frequency-dependent absorption), with air absorption, the source 0.8-2 m high and the microphone
0.7-1.8 m, 0.7-6 m apart. Rooms whose RT60 falls outside 0.15-3 s are drawn again. Writes 16 kHz mono
16-bit WAV files, `ism-NN-KIND.wav`.

Needs pyroomacoustics (not an fpkit dependency; tested with 0.10.1), e.g. in a separate environment:

    python -m venv ../rooms-env && ../rooms-env/bin/pip install pyroomacoustics soundfile
    ../rooms-env/bin/python benchmarks/image_source_rooms.py ../extra/unseen-rooms --count 19 --seed 7

(19 rooms took about 20 minutes in one process on a 2-core EPYC: halls are often drawn again,
and each takes seconds to trace).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra
import soundfile as sf
from room_bank import bank_arguments  # this script's folder is on the path

RATE = 16000


@dataclass(frozen=True)
class RoomKind:
    low_m: tuple[float, float, float]  # length, width, height
    high_m: tuple[float, float, float]
    floors: tuple[str, ...]
    walls: tuple[str, ...]
    ceilings: tuple[str, ...]


KINDS = {
    "living": RoomKind(
        (3.5, 3.0, 2.4),
        (7, 5.5, 2.9),
        ("carpet_cotton", "carpet_tufted_9.5mm", "wood_16mm", "linoleum_on_concrete"),
        ("plasterboard", "curtains_cotton_0.5", "glass_window", "wooden_lining", "gypsum_board"),
        ("ceiling_plasterboard", "plasterboard"),
    ),
    "tiled": RoomKind(
        (1.8, 1.5, 2.3),
        (4, 3.5, 2.8),
        ("ceramic_tiles", "marble_floor", "linoleum_on_concrete"),
        ("ceramic_tiles", "glass_3mm", "plasterboard", "hard_surface", "curtains_0.2", "wooden_door"),
        ("plasterboard", "hard_surface"),
    ),
    "office": RoomKind(
        (4, 3.5, 2.6),
        (12, 9, 3.4),
        ("carpet_thin", "carpet_rubber_5mm", "linoleum_on_concrete"),
        ("gypsum_board", "double_glazing_10mm", "panel_fabric_covered_6pcf", "plasterboard"),
        ("ceiling_fibre_absorber", "ceiling_fissured_tile", "ceiling_perforated_gypsum_board"),
    ),
    "hall": RoomKind(
        (10, 8, 4),
        (25, 18, 9),
        ("concrete_floor", "stage_floor", "audience_floor", "audience_1_m2", "chairs_medium_upholstered"),
        ("brickwork", "rough_concrete", "limestone_wall", "wooden_lining", "glass_window"),
        ("rough_concrete", "wood_16mm", "ceiling_metal_panel"),
    ),
}


def room_response(kind: RoomKind, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """One room's impulse response (peak 1), its dimensions and the source-microphone distance."""
    dims = rng.uniform(kind.low_m, kind.high_m)
    surfaces = {"ceiling": str(rng.choice(kind.ceilings)), "floor": str(rng.choice(kind.floors))}
    surfaces |= {side: str(rng.choice(kind.walls)) for side in ("east", "west", "north", "south")}
    materials = pra.make_materials(**surfaces)
    room = pra.ShoeBox(dims, fs=RATE, materials=materials, max_order=3, air_absorption=True, ray_tracing=True)
    room.set_ray_tracing(receiver_radius=0.5, n_rays=4000, energy_thres=1e-6)
    margin = 0.4
    while True:
        source, microphone = rng.uniform(margin, dims - margin), rng.uniform(margin, dims - margin)
        source[2] = rng.uniform(0.8, min(2.0, dims[2] - margin))
        microphone[2] = rng.uniform(0.7, min(1.8, dims[2] - margin))
        distance = float(np.linalg.norm(source - microphone))
        if 0.7 <= distance <= min(6.0, 0.8 * dims[0]):
            break
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float32)
    return response / np.abs(response).max(), dims, distance


def main() -> None:
    args = bank_arguments(__doc__, seed=7)
    rng = np.random.default_rng(args.seed)  # the rooms
    pra.random.seed(args.seed)  # the ray tracer's own generator: the tails
    names = list(KINDS)
    for i in range(args.count):
        name = names[i % len(names)]
        while True:
            response, dims, distance = room_response(KINDS[name], rng)
            rt60 = float(pra.experimental.measure_rt60(response, fs=RATE))
            if 0.15 <= rt60 <= 3.0:
                break
        path = args.out / f"ism-{i:02d}-{name}.wav"
        sf.write(path, response, RATE)
        size = " x ".join(f"{d:.1f}" for d in dims)
        seconds = len(response) / RATE
        print(f"{path}: {size} m, {distance:.1f} m apart, RT60 {rt60:.2f} s, {seconds:.2f} s long", flush=True)


if __name__ == "__main__":
    main()
