"""How close candidate encodings of a database's fingerprints stay to them: what chose `index.rescore=opq32`.

Every encoding is trained on the same 65,536 stored rows (as the database trains opq32), then
encodes all rows; decoded rows are made unit length again, blank ones staying zero, as
`fpkit.db.rescore` decodes opq32. For 2,000 stored rows, noisy copies (cosine about 0.75 to the
row, like a degraded query's fingerprint) are scored against the decoded rows. Printed per encoding:
bytes per fingerprint; mean cosine of decoded to stored rows; the mean change of a noisy copy's
similarity to its own row (what a match's score loses) and the mean absolute change against random
other rows; and how often an IVF256,PQ64x4fs index built from the decoded rows (as one is rebuilt
once a database holds codes) finds a noisy copy's own row among its 20 nearest, with nprobe 32.

    python benchmarks/rescore_codes.py --db DB     # a float16 database: the evaluation one, say
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from fpkit.db import Database
from fpkit.db.rescore import TRAIN_ROWS, train_codes

Encoding = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (training rows, all rows) -> decoded rows


def faiss_codec(factory: str) -> Encoding:
    def run(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
        index = faiss.index_factory(rows.shape[1], factory)
        index.train(train)
        index.add(rows)
        decoded: np.ndarray = index.reconstruct_n(0, len(rows))
        return decoded

    return run


def opq(width: int) -> Encoding:
    def run(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
        codes = train_codes(train, width)
        return codes.decode(codes.encode(rows))

    return run


def unit(rows: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.where(length > 0.5, rows / np.maximum(length, 0.5), 0.0).astype(np.float32)


def recall(decoded: np.ndarray, queries: np.ndarray, own: np.ndarray, rng: np.random.Generator) -> float:
    index = faiss.index_factory(decoded.shape[1], "IVF256,PQ64x4fs", faiss.METRIC_INNER_PRODUCT)
    index.train(decoded[np.sort(rng.choice(len(decoded), 16384, replace=False))])
    index.add(decoded)
    faiss.extract_index_ivf(index).nprobe = 32
    _, found = index.search(queries, 20)
    return float(np.mean(np.any(found == own[:, None], axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="a database that keeps float16 fingerprints")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    with Database.open(args.db) as db:
        rows = np.array(db.vectors[:], dtype=np.float32)
    rng = np.random.default_rng(0)
    train = rows[np.sort(rng.choice(len(rows), min(len(rows), TRAIN_ROWS), replace=False))]
    stored = np.flatnonzero(np.linalg.norm(rows, axis=1) > 0.5)  # blank segments are zero rows
    own = rng.choice(stored, 2000, replace=False)
    noisy = unit(rows[own] + 0.075 * rng.standard_normal((len(own), rows.shape[1])).astype(np.float32))
    other = rng.choice(stored, len(own))
    print(f"{len(rows)} rows of {args.db}; noisy copies at cosine {np.mean(np.sum(noisy * rows[own], 1)):.2f}")
    print(f"{'encoding':>10} {'bytes':>5} {'cosine':>7} {'own sim.':>9} {'other |.|':>9} {'index recall':>12} {'s':>5}")
    encodings: list[tuple[str, int, Encoding | None]] = [
        ("float16", 256, None),
        ("SQ8", 128, faiss_codec("SQ8")),
        ("SQ4", 64, faiss_codec("SQ4")),
        ("PQ64x4", 32, faiss_codec("PQ64x4np")),
        ("PQ32", 32, faiss_codec("PQ32np")),
        ("OPQ32", 32, opq(32)),
        ("OPQ16", 16, opq(16)),
    ]
    for name, size, encoding in encodings:
        begin = time.perf_counter()
        decoded = rows if encoding is None else unit(encoding(train, rows))
        seconds = time.perf_counter() - begin
        cosine = np.mean(np.sum(decoded[stored] * rows[stored], 1))
        own_shift = np.mean(np.sum(noisy * decoded[own], 1) - np.sum(noisy * rows[own], 1))
        other_gap = np.mean(np.abs(np.sum(noisy * decoded[other], 1) - np.sum(noisy * rows[other], 1)))
        found = recall(decoded, noisy, own, np.random.default_rng(1))
        print(
            f"{name:>10} {size:>5} {cosine:>7.4f} {own_shift:>+9.4f} {other_gap:>9.4f} {found:>12.3f} {seconds:>5.0f}"
        )


if __name__ == "__main__":
    main()
