"""`fpkit train`: contrastive training from a folder of music, resumable at any point."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fpkit.cli.common import INTERRUPTED, OverrideOption, RichBars, err_console, fail, resolve_config

if TYPE_CHECKING:  # imported where used: `fpkit --help` stays instant
    from fpkit.config import Config


def train(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            dir_okay=False,
            help="YAML config (default: configs/default.yaml, fpkit's default network; "
            "configs/paper.yaml is the paper's, 20 times slower).",
        ),
    ] = None,
    overrides: OverrideOption = None,
    data: Annotated[Path | None, typer.Option("--data", file_okay=False, help="Training music folder.")] = None,
    val: Annotated[Path | None, typer.Option("--val", file_okay=False, help="Validation music folder.")] = None,
    noise: Annotated[Path | None, typer.Option("--noise", file_okay=False, help="Background noise folder.")] = None,
    ir: Annotated[Path | None, typer.Option("--ir", file_okay=False, help="Impulse response folder.")] = None,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, help="Run directory.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out at its last step.")] = False,
    init: Annotated[
        Path | None,
        typer.Option("--init", dir_okay=False, help="Start from this model's weights (fine-tuning)."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")] = None,
) -> None:
    """Train a fingerprint model; checkpoints, log.jsonl and curves.png go to the run directory.

    Progress and one line per epoch go to stderr.
    """
    from fpkit.train.loop import train as run_training

    cfg = _resolve(config, overrides, data, val, noise, ir, out, init, device, resume)
    try:
        with RichBars() as bars:
            result = run_training(cfg, resume=resume, progress=bars)
    except KeyboardInterrupt:  # before the first step: there is nothing to save yet
        fail("interrupted before the first step; no checkpoint was written", INTERRUPTED)
    if result.interrupted:
        err_console.print(
            f"interrupted at step {result.step}; saved {result.run_dir / 'last.pt'} (continue with --resume)",
            soft_wrap=True,
        )
        raise typer.Exit(code=INTERRUPTED)
    err_console.print(f"done: {result.step} steps; best model {result.run_dir / 'best.pt'}")


def _resolve(
    config: Path | None,
    overrides: list[str] | None,
    data: Path | None,
    val: Path | None,
    noise: Path | None,
    ir: Path | None,
    out: Path | None,
    init: Path | None,
    device: str | None,
    resume: bool,
) -> Config:
    """Config from the file (or, resuming, from the run's checkpoint), then --set, then options."""
    from fpkit.config import CONFIG_DIR, config_from_dict
    from fpkit.train.loop import TrainError, resume_config

    cfg = resolve_config(config if config is not None else CONFIG_DIR / "default.yaml", overrides)
    if resume:
        run_dir = out or (Path(cfg.train.out) if cfg.train.out else None)
        if run_dir is None:
            raise TrainError("--resume needs the run directory: pass --out")
        cfg = resume_config(run_dir, overrides)
    options = {"data": data, "val": val, "noise": noise, "ir": ir, "out": out, "init": init, "device": device}
    given = {k: str(v) for k, v in options.items() if v is not None}
    merged = dataclasses.asdict(cfg)
    merged["train"].update(given)
    return config_from_dict(merged, "command line")
