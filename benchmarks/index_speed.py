"""End-to-end indexing speed and memory of `fpkit index` on a folder of audio.

Runs `fpkit index FOLDER --db TMP` as a fresh process (start-up, decoding, resampling,
fingerprinting, storing and building the index all count) a few times and prints, for each
run, the wall time, the real-time factor (seconds of audio indexed per second) and the peak
resident memory of the process tree (sampled from /proc every 20 ms). The machine's float32
and bfloat16 matmul rates are measured in the same run, so figures from different machines
can be compared as ratios. The peak of a process that only imports torch and torchaudio is
printed beside it: the floor under any fpkit command on this torch build (a CUDA build of torch
maps its GPU libraries even on a CPU and costs several hundred MB more than a CPU build).

With `--parts`, the two halves of the work are also timed on one core, file by file: decoding,
mixing and resampling, then fingerprinting the decoded audio (front end, network, blank
detection). With every core busy on one or the other, their combined rate bounds `fpkit index`
before its start-up and the index build.

    python benchmarks/index_speed.py FOLDER [--runs 3] [--parts] [--model M.pt] [--set inference.batch_size=32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from throughput import matmul_gflops  # the same baseline as make bench (this script's folder is on the path)

from fpkit.audio import audio_info, find_audio_files, iter_audio_blocks
from fpkit.config import run_overrides
from fpkit.fingerprint import fingerprint_song
from fpkit.model import load_model


@dataclass(frozen=True)
class Run:
    wall_s: float
    peak_rss_mb: float


def tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent pid
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # fields[21] is rss in pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_sampled(command: list[str], stderr: int | IO[bytes] | None = None) -> tuple[int, float, float]:
    """Run `command` to completion: (exit code, wall seconds, peak MB of its process tree, every 20 ms)."""
    peak = 0
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return code, wall, peak / 2**20


def index_once(folder: str, extra: list[str]) -> Run:
    db = Path(tempfile.mkdtemp(prefix="fpkit-bench-")) / "db"
    command = [sys.executable, "-m", "fpkit", "--quiet", "index", folder, "--db", str(db), *extra]
    code, wall, peak_mb = run_sampled(command)
    shutil.rmtree(db.parent)
    if code != 0:
        raise SystemExit(f"fpkit index exited {code}")
    return Run(wall, peak_mb)


def import_floor_mb() -> float:
    """Peak resident memory of a fresh interpreter that only imports torch and torchaudio."""
    probe = "import resource, torch, torchaudio; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    return int(subprocess.check_output([sys.executable, "-c", probe], text=True)) / 1024  # ru_maxrss is in KiB


def part_rates(files: list[Path], model_path: str | None, overrides: list[str]) -> tuple[float, float]:
    """Real-time factors on one thread of (decoding, mixing and resampling; fingerprinting decoded audio)."""
    loaded = load_model(model_path)
    config = run_overrides(loaded.config, overrides)  # the --set that fpkit index accepts
    loaded.model.set_precision(config.inference.precision)
    rate = config.audio.sample_rate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    decode_s = fingerprint_s = audio_s = 0.0
    try:
        for path in files:
            start = time.perf_counter()
            blocks = list(iter_audio_blocks(path, rate))
            decoded = time.perf_counter()
            fingerprint_song(blocks, str(path), loaded.model, config.audio, config.inference.batch_size)
            decode_s += decoded - start
            fingerprint_s += time.perf_counter() - decoded
            audio_s += sum(len(b) for b in blocks) / rate
    finally:
        torch.set_num_threads(threads)
    return audio_s / decode_s, audio_s / fingerprint_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--set", action="append", default=[], help="config override passed to fpkit index")
    parser.add_argument("--parts", action="store_true", help="also time decoding and fingerprinting on one core")
    args = parser.parse_args()

    files = find_audio_files([args.folder])
    infos = [audio_info(p) for p in files]
    hours = sum(i.duration_s for i in infos) / 3600
    rates = sorted({i.sample_rate for i in infos})
    channels = sorted({i.channels for i in infos})
    extra = (["--model", args.model] if args.model else []) + [x for s in args.set for x in ("--set", s)]
    print(f"{len(files)} files, {hours:.2f} h, sample rates {rates} Hz, channels {channels}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    print(f"matmul 2048x2048: float32 {matmul_gflops():.0f} GFLOP/s, ", end="")
    # Small and short: on a CPU without native bfloat16 it is emulated and very slow.
    print(f"bfloat16 {matmul_gflops(size=512, repeats=3, dtype=torch.bfloat16):.0f} GFLOP/s")
    runs = []
    for k in range(args.runs):
        run = index_once(args.folder, extra)
        runs.append(run)
        speed = hours * 3600 / run.wall_s
        print(f"run {k + 1}: {run.wall_s:.1f} s, {speed:.0f}x real time, peak RSS {run.peak_rss_mb:.0f} MB")
    wall = statistics.median(r.wall_s for r in runs)
    peak = max(r.peak_rss_mb for r in runs)
    floor = import_floor_mb()
    print(f"median: {wall:.1f} s, {hours * 3600 / wall:.0f}x real time; largest peak RSS {peak:.0f} MB")
    print(f"importing torch and torchaudio alone: {floor:.0f} MB; fpkit's own share: {peak - floor:.0f} MB")
    if args.parts:
        decode, fingerprint = part_rates(files, args.model, args.set)
        cores = os.cpu_count() or 1
        bound = cores / (1 / decode + 1 / fingerprint)
        print(f"one core: decoding, mixing and resampling {decode:.0f}x real time, fingerprinting {fingerprint:.0f}x")
        print(f"{cores} cores busy with both: at most {bound:.0f}x before start-up and the index build")


if __name__ == "__main__":
    main()
