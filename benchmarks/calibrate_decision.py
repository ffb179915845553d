"""Calibrate the match decision from `benchmarks/decision_data.py` output.

For each candidate `search.lead_weight`, every query's best score is recomputed from its
songs' similarities (`fpkit.db.search.lead_scores`), the threshold at each length is the
score that the given share of unknown queries reaches (the false-positive rate) for each kind
of unknown audio (each `--unknown` folder of the data; the highest counts), and the
share of known queries then accepted with the right song (and with a wrong one) is printed.
Several data files (for example mirrored splits of held-out songs, each half stored in turn
and the other half unknown) are pooled, query by query and kind by kind.
The weight with the most right acceptances over all lengths is printed as `--set` overrides
for `fpkit export`, with `search.reverb_delay_s`: the median of the right-song queries' offset
errors, negated (those placed within `fpkit eval`'s near tolerance, 0.5 s, of the true start;
farther ones found a repeat of the music elsewhere in the song, which no delay explains).

    python benchmarks/calibrate_decision.py decision.npz [more.npz ...] [--fpr 0.01] [--weights 0,0.5,1,1.5,2]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from fpkit.db.search import lead_scores
from fpkit.evaluation.metrics import EXACT_TOLERANCE_S, NEAR_TOLERANCE_S


def best_scores(similarities: np.ndarray, weight: float) -> np.ndarray:
    """(Q, K) best-first song similarities (nan-padded) -> (Q,) lead-weighted best scores."""
    out = np.full(len(similarities), -np.inf)
    for q, row in enumerate(similarities):
        row = row[~np.isnan(row)]
        if len(row):
            out[q] = lead_scores(row, weight)[0]
    return out


def reverb_delay(data: dict[str, np.ndarray], lengths: list[float]) -> float:
    """The delay that centres the right-song offsets of all lengths, rounded to 10 ms; prints its effect."""
    errors = [data[f"offset_error_{i}"] for i in range(len(lengths))]
    near = np.concatenate([e[np.abs(e) <= NEAR_TOLERANCE_S] for e in errors])  # nan compares False: wrong songs drop
    delay = max(0.0, round(-float(np.median(near)), 2))
    for seconds, e in zip(lengths, errors, strict=True):
        e = e[np.isfinite(e)]
        before, after = np.mean(np.abs(e) <= EXACT_TOLERANCE_S), np.mean(np.abs(e + delay) <= EXACT_TOLERANCE_S)
        within = f"right-song offsets within {EXACT_TOLERANCE_S:g} s"
        print(f"  {seconds:>4g} s: {within} {before:.1%}, with the delay {after:.1%}")
    return delay


def pooled(files: list[Any]) -> dict[str, np.ndarray]:
    """Several decision data files as one: the same lengths and kinds, their queries concatenated."""
    first = files[0]
    for other in files[1:]:
        same_kinds = len(other["unknown_kinds"]) == len(first["unknown_kinds"])
        if list(other["lengths"]) != list(first["lengths"]) or not same_kinds:
            raise SystemExit("error: the data files have other lengths or kinds of unknown audio")
    return {
        key: first[key] if key in ("lengths", "unknown_kinds") else np.concatenate([f[key] for f in files])
        for key in first.files
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", help="decision_data.py output files, pooled")
    parser.add_argument("--fpr", type=float, default=0.01, help="share of unknown queries accepted")
    parser.add_argument("--weights", default="0,0.5,1,1.5,2")
    args = parser.parse_args()
    data = pooled([np.load(path) for path in args.data])
    lengths = [float(x) for x in data["lengths"]]
    kinds = len(data["unknown_kinds"])
    results = {}
    for weight in (float(w) for w in args.weights.split(",")):
        curve, right_total = [], 0.0
        print(f"lead_weight {weight:g}")
        for i, seconds in enumerate(lengths):
            known = best_scores(data[f"known_{i}"], weight)
            right = data[f"right_{i}"]
            # The threshold holds for every kind of unknown audio, not only on average.
            threshold = max(
                float(np.quantile(unknown[np.isfinite(unknown)], 1 - args.fpr))
                for unknown in (best_scores(data[f"unknown_{i}_{k}"], weight) for k in range(kinds))
            )
            accepted = known >= threshold
            print(
                f"  {seconds:>4g} s: threshold {threshold:.3f}, known accepted with the right song "
                f"{np.mean(accepted & right):.1%}, with a wrong one {np.mean(accepted & ~right):.1%} "
                f"(top-1 right {right.mean():.1%})"
            )
            curve.append([seconds, round(threshold, 3)])
            right_total += float(np.mean(accepted & right))
        results[weight] = (right_total, curve)
    best = max(results, key=lambda w: results[w][0])
    print(f"best: lead_weight {best:g}")
    settings = f"--set search.lead_weight={best:g} --set 'search.threshold_by_length={json.dumps(results[best][1])}'"
    if "offset_error_0" in data:  # data collected before offsets were kept have none
        delay = reverb_delay(data, lengths)
        print(f"reverb delay: {delay:g} s")
        settings += f" --set search.reverb_delay_s={delay:g}"
    print(settings)


if __name__ == "__main__":
    main()
