"""Calibrate `search.threshold`: score distributions of known and unknown queries.

Cuts random excerpts from songs that are in the database (known) and from songs that are not
(unknown), optionally degraded, searches them all, and prints both score distributions and,
for a few false-positive rates, the threshold that gives it and the share of known queries
still matched at that threshold. Put the chosen value in the model's config (search.threshold).

    python benchmarks/calibrate_threshold.py --db fpkit-db --known songs/ --unknown other/ --seconds 5 --noisy
"""

from __future__ import annotations

import argparse

import numpy as np

from fpkit.audio import AudioError, find_audio_files, load_audio
from fpkit.augment import Degrader
from fpkit.db import Database, Searcher


def best_scores(searcher: Searcher, folder: str, count: int, seconds: float, noisy: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    config = searcher.model.config
    rate = config.audio.sample_rate
    degrader = Degrader.from_folders(config.augment, rate, config.train.noise, config.train.ir) if noisy else None
    files = find_audio_files([folder])
    scores = []
    # Several excerpts per file when there are fewer files than queries.
    for path in rng.choice(np.array(files, dtype=object), size=count, replace=count > len(files)):
        try:
            wave = load_audio(path, rate)
        except AudioError as err:
            print(f"skipped: {err}")
            continue
        length = int(seconds * rate)
        if len(wave) <= length:
            continue
        start = int(rng.integers(0, len(wave) - length))
        clip = wave[start : start + length]
        if degrader is not None:
            clip = degrader.degrade(clip, rng)
        result = searcher.search_wave(clip, str(path))
        scores.append(result.candidates[0].score if result.candidates else -1.0)
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--known", required=True, help="folder of songs stored in the database")
    parser.add_argument("--unknown", required=True, help="folder of songs not in the database")
    parser.add_argument("--count", type=int, default=200, help="queries per side")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--noisy", action="store_true", help="degrade queries as in training")
    args = parser.parse_args()
    with Database.open(args.db) as db:
        searcher = Searcher(db, db.load_model())
        known = best_scores(searcher, args.known, args.count, args.seconds, args.noisy, seed=0)
        unknown = best_scores(searcher, args.unknown, args.count, args.seconds, args.noisy, seed=1)
    quantiles = [0, 1, 5, 50, 95, 99, 100]
    for name, scores in (("known", known), ("unknown", unknown)):
        print(f"{name:>8} ({len(scores)}): " + "  ".join(f"p{q}={np.percentile(scores, q):.3f}" for q in quantiles))
    for rate in (0.05, 0.01, 0.001):
        threshold = float(np.quantile(unknown, 1 - rate))
        print(f"false positives {rate:.1%}: threshold {threshold:.3f}, known matched {np.mean(known >= threshold):.1%}")


if __name__ == "__main__":
    main()
