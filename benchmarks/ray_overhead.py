"""What Ray costs on one machine: `fpkit generate --engine ray` on a local Ray against the plain local path.

Each run is a fresh process over FOLDER with the shipped model: `fpkit generate FOLDER --out TMP`
(the local path), then, for each `--cpus N`, the Ray engine on a local Ray of N CPUs (one actor
per CPU), started in its own process as `--engine ray` starts one. Prints the wall time (start-up
and, for Ray, starting the cluster and its actors included), the real-time factor, the peak
resident memory of the process tree (a local Ray's processes are its descendants), and checks
that every Ray output stores the local one's songs and fingerprints.

    OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py FOLDER [--cpus 1 2] [--runs 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import soundfile as sf
from index_speed import run_sampled  # this script's folder is on the path

from fpkit.audio import find_audio_files
from fpkit.db import Database
from fpkit.model import load_model
from fpkit.ray_engine import RayEngine


@dataclass(frozen=True)
class Run:
    name: str
    wall_s: float
    peak_rss_mb: float
    out: Path


def timed(name: str, command: list[str], out: Path) -> Run:
    """Run `command` to completion, sampling the resident memory of its process tree every 20 ms."""
    log = out.with_name(out.name + ".log")
    with open(log, "wb") as err:
        code, wall, peak_mb = run_sampled(command, err)
    if code != 0:
        raise SystemExit(f"{name} exited {code}: {' '.join(command)}\n{log.read_text()[-3000:]}")
    return Run(name, wall, peak_mb, out)


def generate_on_ray(folder: str, out: str, cpus: int) -> None:
    """The body of a Ray run (this script re-run with --on-ray): a local Ray of `cpus` CPUs, the shipped model."""
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    model = load_model(None)
    with Database.open_or_create(out, model) as db:
        RayEngine("cpu").add_files(db, [folder], model)  # the model's own inference settings
    ray.shutdown()


def same_fingerprints(a: Path, b: Path) -> str:
    with Database.open(a) as x, Database.open(b) as y:
        if [(s.path, s.sha, s.count) for s in x.songs] != [(s.path, s.sha, s.count) for s in y.songs]:
            return "songs DIFFER"
        gap = float(np.max(np.abs(np.asarray(x.vectors[:], np.float32) - y.vectors[:]), initial=0.0))
        return "identical fingerprints" if gap == 0 else f"max fingerprint difference {gap:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="sizes of the local Ray (its actors)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--on-ray", nargs=2, metavar=("OUT", "CPUS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.on_ray:
        generate_on_ray(args.folder, args.on_ray[0], int(args.on_ray[1]))
        return

    files = find_audio_files([args.folder])
    seconds = sum(sf.info(str(p)).duration for p in files)
    threads = os.getenv("OMP_NUM_THREADS", "unset")
    print(f"{len(files)} files, {seconds / 3600:.2f} h; {os.cpu_count()} cores, OMP_NUM_THREADS {threads}")
    scratch = Path(tempfile.mkdtemp(prefix="fpkit-ray-bench-"))
    try:
        for k in range(args.runs):  # interleaved, so a change in the machine's load hits every variant
            out = scratch / f"local-{k}"
            local = [sys.executable, "-m", "fpkit", "generate", args.folder, "--out", str(out)]
            runs = [timed("local", local, out)]
            for cpus in args.cpus:
                out = scratch / f"ray{cpus}-{k}"
                command = [sys.executable, __file__, args.folder, "--on-ray", str(out), str(cpus)]
                runs.append(timed(f"ray, {cpus} CPU{'s' * (cpus > 1)}", command, out))
            for run in runs:
                check = "" if run is runs[0] else f"; {same_fingerprints(runs[0].out, run.out)}"
                ratio = run.wall_s / runs[0].wall_s
                print(
                    f"run {k + 1} {run.name:<11} {run.wall_s:6.1f} s {seconds / run.wall_s:6.0f}x real time "
                    f"{ratio:5.2f}x the local time, peak RSS {run.peak_rss_mb:5.0f} MB{check}"
                )
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
