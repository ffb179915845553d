"""Fingerprinting throughput on this CPU, end to end from decoded audio to embeddings.

For each config: segments per second (framing, log-mel front end, encoder, head), the
achieved GFLOP/s, and its ratio to a large float32 matmul timed in the same run, plus the
real-time factor (seconds of audio fingerprinted per second at the config's hop).

    python benchmarks/throughput.py                       # paper and default configs
    python benchmarks/throughput.py --configs configs/default.yaml --seconds 60 --bf16
    python benchmarks/throughput.py --configs configs/paper.yaml --compile
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fpkit.config import load_config
from fpkit.fingerprint import reference_prints
from fpkit.model import build_model, count_parameters, model_flops

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    name: str
    parameters: int
    gflop_per_segment: float
    segments_per_s: float
    realtime_factor: float
    gflops: float


def matmul_gflops(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """The machine's matrix-product rate in GFLOP/s: the baseline other figures are divided by."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def measure(config_path: Path, seconds: float, batch_size: int, bf16: bool, compile_model: bool) -> Result:
    config = load_config(config_path)
    model = build_model(config).eval()
    if compile_model:  # fuses the elementwise work (ELU, layer norm) around the convolutions
        model.encoder = torch.compile(model.encoder, dynamic=False)  # type: ignore[assignment]
    audio = config.audio
    # One long decoded signal: noise-like music stand-in at the model rate.
    wave = (torch.randn(int(seconds * audio.sample_rate)) * 0.1).numpy()

    def run() -> int:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return len(reference_prints(model, wave, audio, batch_size))

    run()  # warm-up: allocator, oneDNN kernels, compilation
    begin = time.perf_counter()
    n = run()
    elapsed = time.perf_counter() - begin
    flops = model_flops(model.dims, config)
    return Result(
        name=config_path.stem + (" (bf16)" if bf16 else "") + (" (compiled)" if compile_model else ""),
        parameters=count_parameters(model),
        gflop_per_segment=flops / 1e9,
        segments_per_s=n / elapsed,
        realtime_factor=seconds / elapsed,
        gflops=n * flops / elapsed / 1e9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs", nargs="+", type=Path, default=[ROOT / "configs/paper.yaml", ROOT / "configs/default.yaml"]
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="audio fingerprinted per config")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--bf16", action="store_true", help="also measure under CPU bfloat16 autocast")
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile (slow to start)")
    args = parser.parse_args()

    baseline = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"float32 2048x2048 matmul: {baseline:.1f} GFLOP/s (baseline)")
    header = f"{'config':<22}{'params':>12}{'GFLOP/seg':>11}{'seg/s':>9}{'x realtime':>12}{'GFLOP/s':>9}{'/matmul':>9}"
    print(header)
    for path in args.configs:
        variants = [(False, False)] + [(True, False)] * args.bf16 + [(False, True)] * args.compile
        for bf16, compile_model in variants:
            r = measure(path, args.seconds, args.batch_size, bf16, compile_model)
            print(
                f"{r.name:<22}{r.parameters:>12,}{r.gflop_per_segment:>11.4f}{r.segments_per_s:>9.1f}"
                f"{r.realtime_factor:>12.1f}{r.gflops:>9.1f}{r.gflops / baseline:>9.2f}"
            )


if __name__ == "__main__":
    main()
