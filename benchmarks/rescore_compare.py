"""The same queries searched in databases that keep their fingerprints differently (`index.rescore`).

Queries are degraded excerpts (noise and reverb as `fpkit eval` makes them) of `--songs`, which
the databases store, and of `--unknown` audio, which they do not; each is fingerprinted once with
the first database's model and searched in every database in turn, so that a busy machine slows
all of them alike. Printed per query length and database: the mean and p95 milliseconds of
`sequence_search` (index search and re-scoring, no embedding), how often the best song and offset
agree with the first database's, and how far the best score (lead-weighted, what the threshold
applies to) moves from the first database's, on average, for known and for unknown queries.

    python benchmarks/rescore_compare.py --db float16-db --db opq32-db --songs songs/ --unknown noise/ \\
        --noise noise/ --ir ir/
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fpkit.audio import find_audio_files, load_audio
from fpkit.augment import Degrader
from fpkit.db import Database, Searcher
from fpkit.db.search import lead_scores, sequence_search
from fpkit.fingerprint import QueryPrints, SilentAudio, check_usable, query_prints


def excerpts(folder: Path, seconds: float, count: int, searcher: Searcher, degrader: Degrader) -> list[QueryPrints]:
    """Fingerprints of `count` degraded excerpts of `seconds` from the audio files in `folder`."""
    model, audio = searcher.model, searcher.model.config.audio
    waves = [load_audio(path, audio.sample_rate) for path in find_audio_files([folder])]
    rng = np.random.default_rng(0)
    length = round(seconds * audio.sample_rate)
    prints: list[QueryPrints] = []
    while len(prints) < count:
        wave = np.resize(waves[int(rng.integers(len(waves)))], length + 1)  # short recordings loop
        start = int(rng.integers(0, len(wave) - length))
        clip = degrader.degrade(wave[start : start + length], rng)
        try:
            check_usable(clip, str(folder), audio)
        except SilentAudio:
            continue  # `fpkit search` answers it without searching
        prints.append(
            query_prints(model.model, clip, audio, searcher.config.subhop_shifts, model.config.inference.batch_size)
        )
    return prints


def compare(searchers: list[Searcher], queries: list[QueryPrints]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per database and query: search milliseconds, top-1 (song, offset) as in the first, best score."""
    ms = np.zeros((len(searchers), len(queries)))
    same = np.zeros_like(ms, dtype=bool)
    score = np.full_like(ms, np.nan)
    for q, prints in enumerate(queries):
        first = None
        for i, s in enumerate(searchers):
            cfg, hop_s = s.config, s.model.config.audio.hop_s
            begin = time.perf_counter()
            found = sequence_search(s.index, s.vectors, s.songs, prints, hop_s, cfg.segment_k, cfg.max_candidates)
            ms[i, q] = 1000 * (time.perf_counter() - begin)
            best = (found[0].song, found[0].offset_s) if found else None
            first = best if i == 0 else first
            same[i, q] = best == first
            if found:
                score[i, q] = lead_scores(np.array([a.score for a in found]), cfg.lead_weight)[0]
    return ms, same, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, action="append", required=True, help="database (repeat)")
    parser.add_argument("--songs", type=Path, required=True, help="stored songs: the known queries")
    parser.add_argument("--unknown", type=Path, required=True, help="audio not stored: the unknown queries")
    parser.add_argument("--noise", help="background noise folder (default: synthesised)")
    parser.add_argument("--ir", help="impulse response folder (default: synthesised)")
    parser.add_argument("--lengths", default="1,3,10", help="query lengths, seconds")
    parser.add_argument("--queries", type=int, default=100, help="known and unknown queries per length")
    args = parser.parse_args()

    databases = [Database.open(db) for db in args.db]
    searchers = [Searcher(db, db.load_model()) for db in databases]
    first = searchers[0]
    degrader = Degrader.from_folders(
        first.model.config.augment, first.model.config.audio.sample_rate, args.noise, args.ir
    )
    print("per database: search ms mean / p95, top-1 as in the first, best score minus the first's (known, unknown)")
    for db in databases:
        print(f"  {db.root}: {db.rows} rows kept as {db.kept_as}")
    for seconds in (float(s) for s in args.lengths.split(",")):
        known = compare(searchers, excerpts(args.songs, seconds, args.queries, first, degrader))
        unknown = compare(searchers, excerpts(args.unknown, seconds, args.queries, first, degrader))
        cells = []
        for i in range(len(searchers)):
            ms = np.concatenate([known[0][i], unknown[0][i]])
            shift = [np.nanmean(part[2][i] - part[2][0]) for part in (known, unknown)]
            cells.append(
                f"{ms.mean():6.1f} / {np.percentile(ms, 95):6.1f} ms, {known[1][i].mean():4.0%} same, "
                f"{shift[0]:+.3f} / {shift[1]:+.3f}"
            )
        print(f"{seconds:4.0f} s  " + "   |   ".join(cells))
    for db in databases:
        db.close()


if __name__ == "__main__":
    main()
