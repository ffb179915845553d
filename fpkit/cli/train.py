"""`fpkit train`: contrastive training from a folder of music, resumable at any point."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from fpkit.cli.common import INTERRUPTED, OverrideOption, err_console, fail, resolve_config

if TYPE_CHECKING:  # imported where used: `fpkit --help` stays instant
    from fpkit.config import Config
    from fpkit.train.loop import EpochRecord

FolderOption = Annotated[Path | None, typer.Option(file_okay=False, help="Folder of audio files.")]


class RichObserver:
    """Progress bars and one line per epoch on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def caching(self, total: int) -> Callable[[], None]:
        task = self.progress.add_task("decoding songs", total=total, loss="")
        return lambda: self.progress.advance(task)

    def step(self, step: int, total: int, loss: float) -> None:
        if self.task is None:
            self.task = self.progress.add_task("training", total=total, completed=step - 1, loss="")
        self.progress.update(self.task, completed=step, loss=f"loss {loss:.3f}")

    def epoch(self, record: EpochRecord) -> None:
        hits = "  ".join(f"{k} seg {v:.3f}" for k, v in record.top1.items())
        self.progress.console.print(
            f"epoch {record.epoch:>3}  step {record.step:>7}  train {record.train_loss:.4f}  "
            f"val {record.val_loss:.4f}  top-1 {hits}  {record.steps_per_s:.2f} steps/s"
        )


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
    device: Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")] = None,
) -> None:
    """Train a fingerprint model; checkpoints, log.jsonl and curves.png go to the run directory."""
    from fpkit.train.loop import train as run_training

    cfg = _resolve(config, overrides, data, val, noise, ir, out, device, resume)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            result = run_training(cfg, resume=resume, observer=RichObserver(progress))
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
    options = {"data": data, "val": val, "noise": noise, "ir": ir, "out": out, "device": device}
    given = {k: str(v) for k, v in options.items() if v is not None}
    merged = dataclasses.asdict(cfg)
    merged["train"].update(given)
    return config_from_dict(merged, "command line")
