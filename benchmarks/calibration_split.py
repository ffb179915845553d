"""Folders for calibrating the match decision: a training run's held-out songs in two halves.

The held-out (validation) songs are the ones `fpkit train` splits off the training folder with
`train.val_fraction` and `train.seed`; they are split again into two halves, and a number of
the training songs are picked as the songs stored beside either half. Each folder holds links
to the songs (named `<parent>__<file>`, so equal file names from two collections stay apart):

    OUT/half-a/  OUT/half-b/  OUT/dummy/

Store `half-a` and `dummy` in one database and `half-b` and `dummy` in another, then collect
decision data with `benchmarks/decision_data.py` (docs/results.md, "The match decision").

    python benchmarks/calibration_split.py ../extra/train-all --out ../extra/cal
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from fpkit.audio import find_audio_files
from fpkit.train.data import split_songs


def link_all(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        link = folder / f"{path.parent.name}__{path.name}"
        if not link.exists():
            os.symlink(path.resolve(), link)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="the training run's --data folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--val-fraction", type=float, default=0.08, help="the run's train.val_fraction")
    parser.add_argument("--seed", type=int, default=0, help="the run's train.seed")
    parser.add_argument("--dummy", type=int, default=210, help="training songs stored beside each half")
    parser.add_argument("--halves-seed", type=int, default=7)
    parser.add_argument("--dummy-seed", type=int, default=8)
    args = parser.parse_args()
    train, held_out = split_songs(find_audio_files([args.data]), args.val_fraction, args.seed)
    order = np.random.default_rng(args.halves_seed).permutation(len(held_out))
    half = len(held_out) // 2
    picked = np.random.default_rng(args.dummy_seed).permutation(len(train))[: args.dummy]
    folders = {
        "half-a": [held_out[i] for i in order[:half]],
        "half-b": [held_out[i] for i in order[half:]],
        "dummy": [train[i] for i in sorted(picked)],
    }
    for name, paths in folders.items():
        link_all(paths, args.out / name)
        print(f"{args.out / name}: {len(paths)} songs")


if __name__ == "__main__":
    main()
