"""Database scale figures on synthetic fingerprints: build time, search latency, recall, bytes.

Songs are random walks on the unit sphere (consecutive fingerprints of a song are similar, as
real ones are); a query is a run of a song's fingerprints with noise added (cosine ~0.8 to the
stored ones) at 4 sub-hop copies, as `fpkit search` makes them. Everything goes through the real
code: a `Store` on disk, `update_index` with the default config, `sequence_search`.

Printed per database size: index build time; then at the largest size, search latency p50/p95
for 1, 3 and 10 s queries on one core (excluding and including query embedding with the
default model), top-1 agreement with exact search over the same rows, bytes per hour of
audio, and re-scoring with float32 / float16 vectors / opq32 codes (`index.rescore`).

    python benchmarks/index_search.py                    # 10k, 100k, 1M; ~3 minutes
    python benchmarks/index_search.py --sizes 10000 100000 --queries 50
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from fpkit.config import AudioConfig, IndexConfig, load_config
from fpkit.db.index import read_index, set_nprobe, update_index
from fpkit.db.rescore import TRAIN_ROWS, Fingerprints, StoredRows, train_codes
from fpkit.db.search import SongTable, sequence_search
from fpkit.db.store import Store
from fpkit.fingerprint import QueryPrints, query_prints
from fpkit.model import build_model

ROOT = Path(__file__).resolve().parent.parent
DIM = 128
SONG_ROWS = 480  # a 4-minute song at a 0.5 s hop
SHIFTS = 4
HOP_S = 0.5


@dataclass
class Collection:
    vectors: np.ndarray  # (rows, d) float32, unit norm
    songs: SongTable


def synthetic_collection(rows: int, rng: np.random.Generator) -> Collection:
    steps = rng.standard_normal((rows, DIM)).astype(np.float32)
    vectors = np.empty_like(steps)
    for a in range(0, rows, SONG_ROWS):
        walk = steps[a : a + SONG_ROWS].copy()
        for t in range(1, len(walk)):  # each fingerprint keeps ~0.6 of the previous one's direction
            walk[t] = 0.6 * walk[t - 1] / np.linalg.norm(walk[t - 1]) * np.sqrt(DIM) + 0.8 * walk[t]
        vectors[a : a + SONG_ROWS] = walk
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first = np.arange(0, rows, SONG_ROWS)
    return Collection(vectors, SongTable(first, np.minimum(SONG_ROWS, rows - first)))


def synthetic_query(c: Collection, seconds: float, rng: np.random.Generator) -> tuple[int, float, QueryPrints]:
    """(song, true offset, query): SHIFTS noisy copies of a run of stored rows."""
    n = int((seconds - 1.0) / HOP_S) + 1
    song = int(rng.integers(len(c.songs.first_rows)))
    start = int(rng.integers(0, c.songs.counts[song] - n - 1))
    rows = c.vectors[c.songs.first_rows[song] + start :][: n + 1]
    copies = []
    for k in range(SHIFTS):  # a copy shifted by k/S of a hop lies between consecutive stored rows
        shifted = (1 - k / SHIFTS) * rows[:n] + k / SHIFTS * rows[1:]
        noisy = shifted / np.linalg.norm(shifted, axis=1, keepdims=True)
        noisy += 0.045 * rng.standard_normal(noisy.shape).astype(np.float32)
        copies.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return song, start * HOP_S, QueryPrints(np.arange(SHIFTS) * HOP_S / SHIFTS, copies)


def build_store(root: Path, c: Collection) -> Store:
    model = root / "model.pt"
    model.write_bytes(b"synthetic")
    store = Store.create(root / "db", model, "synthetic", AudioConfig(), DIM)
    first, counts = c.songs.first_rows, c.songs.counts
    for song, (a, n) in enumerate(zip(first, counts, strict=True)):
        store.append(f"song{song}", n * HOP_S, f"{song}", 0, 0, c.vectors[a : a + n])
    store.commit()
    return store


def embed_ms(seconds: float, repeats: int) -> float:
    """Median time to fingerprint a query at SHIFTS sub-hop copies with the default model, one thread.

    Through `query_prints`, as `fpkit search` does: the default model frames a segment with the
    audio around it, so segments alone are not its input.
    """
    config = load_config(ROOT / "configs" / "default.yaml")
    model = build_model(config).eval()
    wave = 0.1 * np.random.default_rng(0).standard_normal(round(seconds * config.audio.sample_rate))
    times = []
    for _ in range(repeats + 1):
        begin = time.perf_counter()
        query_prints(model, wave.astype(np.float32), config.audio, SHIFTS, config.inference.batch_size)
        times.append(time.perf_counter() - begin)
    return 1000 * float(np.median(times[1:]))


def latency(
    index: faiss.Index, vectors: Fingerprints, c: Collection, seconds: float, queries: int, refine_top: int
) -> np.ndarray:
    """Search times (ms) of `queries` queries; `refine_top` candidates re-placed (`search.refine_offsets`)."""
    rng = np.random.default_rng(1)
    times = []
    for _ in range(queries):
        _, _, q = synthetic_query(c, seconds, rng)
        begin = time.perf_counter()
        sequence_search(index, vectors, c.songs, q, HOP_S, segment_k=20, max_candidates=64, refine_top=refine_top)
        times.append(time.perf_counter() - begin)
    return 1000 * np.array(times)


def agreement(
    a: faiss.Index, av: Fingerprints, b: faiss.Index, bv: Fingerprints, c: Collection, n: int
) -> tuple[float, float, float]:
    """Share of queries whose top-1 (song, offset) is the same with a and b; a's accuracy; max score gap."""
    rng = np.random.default_rng(2)
    same = correct = 0
    gap = 0.0
    for _ in range(n):
        song, start, q = synthetic_query(c, 3.0, rng)
        x = sequence_search(a, av, c.songs, q, HOP_S, 20, 64)[0]
        y = sequence_search(b, bv, c.songs, q, HOP_S, 20, 64)[0]
        same += (x.song, x.offset_s) == (y.song, y.offset_s)
        correct += x.song == song and abs(x.offset_s - start) < 0.25
        gap = max(gap, abs(x.score - y.score))
    return same / n, correct / n, gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="queries per latency figure")
    parser.add_argument("--exact-queries", type=int, default=100, help="queries compared with exact search")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    config = IndexConfig()
    print(f"faiss {faiss.__version__}, one thread; default index config: {config}")
    print(f"{'rows':>10} {'index':>22} {'build s':>8} {'index B/row':>12} {'MB/hour':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.sizes:
            c = synthetic_collection(rows, rng)
            root = Path(tmp) / str(rows)
            root.mkdir()
            store = build_store(root, c)
            begin = time.perf_counter()
            meta = update_index(store, config)
            built = time.perf_counter() - begin
            index_bytes = sum((store.root / f).stat().st_size for f in meta["files"])
            per_hour = 3600 / HOP_S * (index_bytes / rows + DIM * 2)  # index + float16 store
            print(f"{rows:>10} {meta['factory']:>22} {built:>8.2f} {index_bytes / rows:>12.1f} {per_hour / 1e6:>8.2f}")
        index = read_index(store.root, meta)
        set_nprobe(index, 32)
        vectors = store.vectors
        print(f"\nsearch at {rows} rows, {meta['factory']}, nprobe 32, segment_k 20, {SHIFTS} sub-hop copies")
        print("(refined: the shipped model's search, which re-places its 5 reported candidates)")
        print(f"{'query':>6} {'p50 ms':>8} {'p95 ms':>8} {'refined p50':>12} {'embed ms':>9} {'p50 total':>10}")
        for seconds in (1.0, 3.0, 10.0):
            t = latency(index, vectors, c, seconds, args.queries, refine_top=0)
            refined = float(np.percentile(latency(index, vectors, c, seconds, args.queries, refine_top=5), 50))
            e = embed_ms(seconds, 5)
            p50, p95 = np.percentile(t, [50, 95])
            print(f"{seconds:>5.0f}s {p50:>8.2f} {p95:>8.2f} {refined:>12.2f} {e:>9.1f} {refined + e:>10.1f}")
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # the exact reference is not timed
        exact = faiss.IndexFlatIP(DIM)
        exact.add(c.vectors)
        same, correct, _ = agreement(index, vectors, exact, c.vectors, c, args.exact_queries)
        print(
            f"\ntop-1 agreement with exact search: {same:.1%} ({args.exact_queries} queries of 3 s); "
            f"IVF-PQ top-1 correct: {correct:.1%}"
        )
        print("\nre-scoring precision (exact candidates, 3 s queries): top-1 agreement with float32, max score gap")
        sample = np.sort(rng.choice(rows, size=min(rows, TRAIN_ROWS), replace=False))
        codes = train_codes(c.vectors[sample], 32)
        for name, stored, row_bytes in (
            ("float16", vectors, DIM * 2),
            ("opq32", StoredRows(codes.encode(c.vectors), codes, DIM), codes.width),
        ):
            same, _, gap = agreement(exact, stored, exact, c.vectors, c, args.exact_queries)
            mb_per_hour = row_bytes * 3600 / HOP_S / 1e6
            print(f"{name:>8}: {same:.1%} agreement, max |score gap| {gap:.4f}, {mb_per_hour:.2f} MB/hour")
        store.close()


if __name__ == "__main__":
    main()
