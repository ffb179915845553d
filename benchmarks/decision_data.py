"""Collect the per-song scores of known and unknown queries, to design and calibrate the match decision.

Known queries are cut from songs stored in the database, unknown ones from audio that is not
(other music, and non-music such as ambience and speech; `--count` queries from each
`--unknown` folder, kept apart so that a threshold can hold for each kind), all degraded with the given noise
and impulse responses. For each query the best alignment score of every song it hit is kept
(best first, the first `--keep`), with whether the best song is the right one and, when it is,
how far its offset lies from the true start (seconds, the search's own placement before
`search.reverb_delay_s`). The result is an .npz file that `benchmarks/calibrate_decision.py` reads.

    python benchmarks/decision_data.py --db DB --known held-out/ --unknown other-music/ --unknown noise/ \\
        --noise noise/ --ir ir/ --lengths 1,2,3,5,10 --count 300 [--unknown-count 1500] --out decision.npz \\
        [--set search.subhop_pooling=mean]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fpkit.audio import AudioError, find_audio_files, load_audio
from fpkit.augment import Degrader
from fpkit.db import Database, Searcher


def collect(
    searcher: Searcher,
    files: list[Path],
    count: int,
    seconds: float,
    degrader: Degrader,
    seed: int,
    keep: int,
    waves: dict[Path, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, keep) best-first song scores (nan where fewer songs were hit), (count,) right-song flags,
    and (count,) offset errors in seconds of the right-song queries (nan for the others).

    `waves` keeps the decoded files from call to call: each length draws from the same files, and
    decoding them again for every length took half of the run."""
    rng = np.random.default_rng(seed)
    rate = searcher.model.config.audio.sample_rate
    stored = {Path(record.path).name for record in searcher.db.songs}
    scores = np.full((count, keep), np.nan)
    right = np.zeros(count, dtype=bool)
    offset_error = np.full(count, np.nan)
    done = 0
    while done < count:
        path = files[int(rng.integers(len(files)))]
        if path not in waves:
            try:
                waves[path] = load_audio(path, rate)
            except AudioError as err:
                print(f"skipped: {err}")
                files.remove(path)
                continue
        wave = waves[path]
        length = int(seconds * rate)
        if len(wave) <= length:
            # Short non-music clips are looped, as a long recording of them would sound.
            wave = np.resize(wave, length + 1)
        start = int(rng.integers(0, len(wave) - length))
        clip = degrader.degrade(wave[start : start + length], rng)
        try:
            found = searcher.align(clip, str(path))
        except AudioError:
            continue  # silent excerpt
        top = [a.score for a in found[:keep]]
        scores[done, : len(top)] = top
        right[done] = bool(found) and Path(searcher.paths[found[0].song]).name == path.name and path.name in stored
        if right[done]:
            offset_error[done] = found[0].offset_s - start / rate
        done += 1
    return scores, right, offset_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--known", required=True, help="folder of songs stored in the database")
    parser.add_argument("--unknown", action="append", required=True, help="folder of audio not in the database")
    parser.add_argument("--noise", required=True)
    parser.add_argument("--ir", required=True)
    parser.add_argument("--lengths", default="1,2,3,5,10")
    parser.add_argument("--count", type=int, default=300, help="known queries per length")
    parser.add_argument(
        "--unknown-count",
        type=int,
        help="queries per length from each unknown folder (default: --count); a 1 %% threshold rests on "
        "the top 1 %% of them, 3 queries of 300",
    )
    parser.add_argument("--keep", type=int, default=20, help="best song scores kept per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE over the model's config")
    args = parser.parse_args()
    lengths = [float(x) for x in args.lengths.split(",")]
    unknown_count = args.unknown_count or args.count
    with Database.open_for(args.db, None, overrides=args.set) as opened:
        config = opened.config
        searcher = Searcher(opened.db, opened.model, config.search, config.inference)
        degrader = Degrader.from_folders(config.augment, config.audio.sample_rate, args.noise, args.ir, seed=args.seed)
        known_files = find_audio_files([args.known])
        unknown_files = [find_audio_files([folder]) for folder in args.unknown]
        arrays: dict[str, np.ndarray] = {"lengths": np.array(lengths), "unknown_kinds": np.array(args.unknown)}
        waves: dict[Path, np.ndarray] = {}
        for i, seconds in enumerate(lengths):
            seed = args.seed * 1000 + 100 * i
            ks, kr, ke = collect(searcher, known_files, args.count, seconds, degrader, seed, args.keep, waves)
            arrays[f"known_{i}"], arrays[f"right_{i}"], arrays[f"offset_error_{i}"] = ks, kr, ke
            report = f"{seconds:g} s: known top-1 right {kr.mean():.1%}, best score p50 {np.nanmedian(ks[:, 0]):.3f}"
            for k, files in enumerate(unknown_files):
                us, _, _ = collect(searcher, files, unknown_count, seconds, degrader, seed + 1 + k, args.keep, waves)
                arrays[f"unknown_{i}_{k}"] = us
                report += f"; unknown {k + 1} p99 {np.nanpercentile(us[:, 0], 99):.3f}"
            print(report, flush=True)
    np.savez(args.out, **arrays)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
