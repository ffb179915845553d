"""The command line shared by the scripts that write a bank of room impulse responses."""

from __future__ import annotations

import argparse
from pathlib import Path


def bank_arguments(doc: str | None, seed: int) -> argparse.Namespace:
    """`OUT [--count N] [--seed S]`, with OUT created: where, how many rooms, and which draw."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=19)
    parser.add_argument("--seed", type=int, default=seed)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args
