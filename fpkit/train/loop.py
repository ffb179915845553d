"""Contrastive training, top to bottom: data, model, loop, validation, checkpoints.

A run lives in one folder (`train.out`): `cache/` (decoded songs), `last.pt` (written every
epoch, every `checkpoint_minutes` and on interruption), `epoch-NNNN.pt` (the last
`keep_last`), `best.pt` (best mini-search top-1 at one segment), `log.jsonl` and
`curves.png`. Every checkpoint is a loadable model (`fpkit.load_model`) that also carries
the optimizer state, the step and the history, so `resume=True` continues at the exact step
with the same batches.

Data-parallel training: run under `torchrun --nproc_per_node N`; each process makes its
share of the batch and the NT-Xent negatives are gathered across processes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fpkit.augment import Degrader, spec_augment
from fpkit.config import Config
from fpkit.device import autocast_dtype, resolve_device
from fpkit.errors import FpkitError
from fpkit.heap import keep_freed_memory
from fpkit.loss import Memory, contrastive_loss
from fpkit.model import Fingerprinter, build_model, load_model, read_checkpoint, save_checkpoint, stored_config
from fpkit.progress import SILENT, Progress
from fpkit.train.curves import plot_training_curves
from fpkit.train.data import PairBatches, Song, StepSampler, cache_songs, list_audio, split_songs
from fpkit.train.momentum import MomentumEncoder
from fpkit.train.optim import learning_rate, make_optimizer
from fpkit.train.validation import make_validation_set, validate

log = logging.getLogger(__name__)


RESUME_KEEPS = ("audio", "features", "model")  # config sections a resumed run cannot change
RESUME_MAY_CHANGE = {"model.channels_last"}  # memory layout only


class TrainError(FpkitError):
    """A run that cannot start: bad folders, an occupied run directory, nothing to resume."""


@dataclass
class EpochRecord:
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    top1: dict[int, float]  # mini-search hit rate by sequence length (segments)
    lr: float
    steps_per_s: float
    elapsed_s: float


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    history: list[EpochRecord] = field(default_factory=list)
    interrupted: bool = False


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class SpecEncoder(nn.Module):
    """The trainable part as one module, spectrogram in, fingerprint out, so DDP can wrap it."""

    def __init__(self, model: Fingerprinter) -> None:
        super().__init__()
        self.model = model

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.model.embed(spec)


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The config stored in a run's last checkpoint, with dotted `section.key=value` overrides."""
    path = Path(run_dir) / "last.pt"
    if not path.exists():
        raise TrainError(f"{run_dir}: no last.pt to resume from")
    return stored_config(path, overrides)


def check_resume(config: Config, run_dir: str | Path) -> None:
    """Refuse, naming the setting, to resume `run_dir` with another network, front end or data.

    The checkpoint's weights only fit the shapes they were trained with, and a run that
    switched its songs or validation songs midway would report curves of neither.
    """
    stored = resume_config(run_dir)
    start_anew = "start a new run with another --out to change it"
    _require_same_model(stored, config, f"{run_dir} was trained with", f"a resumed run keeps its model ({start_anew})")
    for key in ("data", "val"):
        before, now = getattr(stored.train, key), getattr(config.train, key)
        if (before is None) != (now is None) or (before and now and os.path.realpath(before) != os.path.realpath(now)):
            raise TrainError(f"--{key} {now}: {run_dir} trains on {before}; resume without --{key}, or {start_anew}")


def _require_same_model(stored: Config, config: Config, whose: str, hint: str) -> None:
    """Refuse, naming the first setting that differs, weights trained for another network or front end."""
    for section in RESUME_KEEPS:
        before, now = asdict(getattr(stored, section)), asdict(getattr(config, section))
        for key, value in before.items():
            if now[key] != value and f"{section}.{key}" not in RESUME_MAY_CHANGE:
                raise TrainError(f"{section}.{key}: {whose} {value!r}, not {now[key]!r}; {hint}")


def initial_weights(path: str, config: Config) -> dict[str, torch.Tensor]:
    """The weights of the model at `path` (`train.init`), checked to fit the network and front end `config` trains."""
    loaded = load_model(path)
    hint = "fine-tuning keeps the network and front end"
    _require_same_model(loaded.config, config, f"--init {path} was trained with", hint)
    return loaded.model.state_dict()


def train(config: Config, resume: bool = False, progress: Progress | None = None) -> TrainResult:
    """Run (or with `resume`, continue) the training `config` describes; see the module docstring.

    `progress` counts songs decoded (one phase per song set) and then optimiser steps, each with
    the latest loss as its note; every epoch's figures are also logged.
    """
    progress = progress or SILENT
    tc = config.train
    if not tc.out:
        raise TrainError("no run directory: pass --out or set train.out")
    if not tc.data:
        raise TrainError("no training data: pass --data or set train.data")
    run_dir = Path(tc.out)
    if not resume and (run_dir / "last.pt").exists():
        raise TrainError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
    if resume:
        check_resume(config, run_dir)
    # Checked before any song is decoded.
    init_state = initial_weights(tc.init, config) if tc.init and not resume else None
    ddp = _init_distributed()
    device = resolve_device(tc.device)
    if device.type == "cuda" and ddp.world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", ddp.rank)))
        torch.cuda.set_device(device)
    anchors_per_rank, remainder = divmod(tc.batch_size // 2, ddp.world)
    if remainder:
        raise TrainError(f"train.batch_size/2 = {tc.batch_size // 2} anchors do not split over {ddp.world} processes")
    torch.manual_seed(tc.seed)
    run_dir.mkdir(parents=True, exist_ok=True)

    # Data: decode every song once into the run's cache (the main process first, then the others reuse it).
    train_songs, val_songs = _prepare_songs(config, run_dir, ddp, progress)
    degrader = Degrader.from_folders(config.augment, config.audio.sample_rate, tc.noise, tc.ir, seed=tc.seed)
    val_degrader = degrader.reseeded(tc.seed + 1)
    val_set = make_validation_set(val_songs, config, val_degrader, tc.seed)

    # Model and optimiser, restored from last.pt when resuming.
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    encoder: nn.Module = SpecEncoder(model)
    if ddp.world > 1:
        encoder = nn.parallel.DistributedDataParallel(encoder, device_ids=[device] if device.type == "cuda" else None)
    optimizer = make_optimizer(model.parameters(), tc)
    step, history, best = 0, [], float("-inf")
    memory = Memory(config.loss.memory, config.model.emb_dim)
    momentum: MomentumEncoder | None = None
    if resume:
        state = read_checkpoint(run_dir / "last.pt")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = int(state["step"]), float(state["best"])
        history = [_record_from_dict(r) for r in state["history"]]
        memory = Memory(config.loss.memory, config.model.emb_dim, state.get("memory"))
        log.info("resuming %s at step %d", run_dir, step)
    if config.loss.memory and config.loss.momentum:
        momentum = MomentumEncoder(model, config.loss.momentum)  # a resume that turns it on starts it here
        if resume and "momentum_state" in state:
            momentum.load_state_dict(state["momentum_state"])

    total_steps = tc.epochs * tc.steps_per_epoch
    batch_seed = tc.seed if tc.batch_seed is None else tc.batch_seed
    batches = PairBatches(
        train_songs,
        config.audio,
        model.frontend.framing,
        config.augment,
        degrader,
        anchors_per_rank,
        batch_seed,
        ddp.rank,
    )
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=StepSampler(step, total_steps),
        num_workers=tc.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if tc.workers else None,
    )
    step_dtype = amp_dtype(device, tc.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=step_dtype == torch.float16)
    mixed_precision = partial(
        torch.autocast, device.type, dtype=step_dtype or torch.float32, enabled=step_dtype is not None
    )  # the network and its momentum copy alike
    spec_generator = torch.Generator()
    log_path = run_dir / "log.jsonl"
    result = TrainResult(run_dir, step, history)
    losses: list[float] = []
    epoch_start, last_save = time.monotonic(), time.monotonic()
    steps_at_epoch_start = step
    progress.start("training", total_steps)
    progress.advance(step)  # where a resumed run stands

    def save(path_name: str) -> None:
        if ddp.is_main:
            save_checkpoint(
                run_dir / path_name,
                model,
                config,
                step=step,
                optimizer=optimizer.state_dict(),
                memory=memory.items.cpu(),
                **({"momentum_state": momentum.state_dict()} if momentum else {}),
                best=best,
                history=[asdict(r) for r in history],
            )

    try:
        steps = iter(loader)  # forks the data workers
        if device.type == "cpu" and tc.workers > 0:
            # The training process allocates the same large tensors every step: reusing freed
            # memory instead of faulting in fresh pages took batch-7,680 steps from 15-20 s to
            # 10 s (docs/training.md). Not before the fork: a data worker's heap grew 4-fold.
            keep_freed_memory()
        for anchors, replicas in steps:
            model.train()
            lr = learning_rate(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            anchors = anchors.to(device, non_blocking=True)
            replicas = replicas.to(device, non_blocking=True)
            # The spectrogram masks are drawn per step too, so a resumed run repeats them exactly.
            spec_generator.manual_seed(batch_seed * 1_000_003 + step * 17 + ddp.rank)
            with torch.no_grad():
                spec_anchor = model.spectrogram(anchors)
                spec_replica = spec_augment(model.spectrogram(replicas), config.augment, spec_generator)
            with mixed_precision():
                emb = encoder(torch.cat([spec_anchor, spec_replica]))  # (2n, d)
            emb_anchor, emb_replica = _gather(emb.float(), ddp).chunk(2)
            negatives = memory.items if step >= config.loss.memory_start else None
            loss = contrastive_loss(emb_anchor, emb_replica, config.loss, negatives)
            if config.loss.memory and not momentum:
                memory.push(torch.cat([emb_anchor, emb_replica]))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if momentum:
                momentum.follow(model)
                with mixed_precision():
                    keys = momentum.embed(torch.cat([spec_anchor, spec_replica])).float()
                memory.push(_gather(keys, ddp))
            step += 1
            result.step = step
            losses.append(loss.item())
            progress.advance(note=f"loss {losses[-1]:.3f}")
            if ddp.is_main and step % tc.log_every == 0:
                _append_jsonl(log_path, {"step": step, "train_loss": float(np.mean(losses[-tc.log_every :])), "lr": lr})

            if step % tc.steps_per_epoch == 0:
                elapsed = time.monotonic() - epoch_start
                record = _end_of_epoch(model, val_set, config, device, step, losses, lr, elapsed, steps_at_epoch_start)
                history.append(record)
                if ddp.is_main:
                    _append_jsonl(log_path, {"epoch_end": asdict(record)})
                    plot_training_curves(history, run_dir / "curves.png")
                    name = f"epoch-{record.epoch:04d}.pt"
                    improved = record.top1[1] > best
                    best = max(best, record.top1[1])
                    save(name)
                    save("last.pt")
                    if improved:
                        save("best.pt")
                    _prune_epochs(run_dir, tc.keep_last)
                log.info("%s", _epoch_line(record))
                losses, epoch_start, steps_at_epoch_start = [], time.monotonic(), step
                last_save = time.monotonic()
            elif time.monotonic() - last_save > tc.checkpoint_minutes * 60:
                save("last.pt")
                last_save = time.monotonic()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM under the CLI (fpkit.interrupt); the caller reports it
        save("last.pt")
        result.interrupted = True
    if ddp.world > 1:
        dist.barrier()
    return result


def _epoch_line(record: EpochRecord) -> str:
    hits = "  ".join(f"{k} seg {v:.3f}" for k, v in record.top1.items())
    return (
        f"epoch {record.epoch:>3}  step {record.step:>7}  train {record.train_loss:.4f}  "
        f"val {record.val_loss:.4f}  top-1 {hits}  {record.steps_per_s:.2f} steps/s"
    )


def _prepare_songs(
    config: Config, run_dir: Path, ddp: Distributed, progress: Progress
) -> tuple[list[Song], list[Song]]:
    tc = config.train
    assert tc.data is not None
    files = list_audio(tc.data)
    if tc.val:
        train_files, val_files = files, list_audio(tc.val)
    else:
        train_files, val_files = split_songs(files, tc.val_fraction, tc.seed)
    min_samples = config.audio.segment_samples + 2 * round(config.augment.offset_s * config.audio.sample_rate)
    songs: dict[str, list[Song]] = {}
    for turn in range(2 if ddp.world > 1 else 1):
        if (turn == 0) == ddp.is_main:
            for name, paths in (("train", train_files), ("val", val_files)):
                progress.start(f"decoding {name} songs", len(paths))
                report = cache_songs(
                    paths, run_dir / "cache", config.audio.sample_rate, min_samples, tc.workers, progress
                )
                songs[name] = report.songs
        if ddp.world > 1:
            dist.barrier()
    if not songs["train"]:
        raise TrainError(f"{tc.data}: no usable training songs (every file was unreadable or too short)")
    if not songs["val"]:
        raise TrainError(f"{tc.val or tc.data}: no usable validation songs")
    return songs["train"], songs["val"]


def _end_of_epoch(
    model: Fingerprinter,
    val_set: Any,
    config: Config,
    device: torch.device,
    step: int,
    losses: list[float],
    lr: float,
    elapsed: float,
    steps_at_start: int,
) -> EpochRecord:
    result = validate(model, val_set, config, device)
    return EpochRecord(
        epoch=step // config.train.steps_per_epoch,
        step=step,
        train_loss=float(np.mean(losses)) if losses else float("nan"),
        val_loss=result.loss,
        top1=result.top1,
        lr=lr,
        steps_per_s=(step - steps_at_start) / max(elapsed, 1e-9),
        elapsed_s=elapsed,
    )


def _record_from_dict(data: dict[str, Any]) -> EpochRecord:
    data = dict(data)
    data["top1"] = {int(k): float(v) for k, v in data["top1"].items()}
    return EpochRecord(**data)


def _prune_epochs(run_dir: Path, keep: int) -> None:
    for old in sorted(run_dir.glob("epoch-*.pt"))[:-keep]:
        old.unlink()


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The training steps' autocast dtype: `inference.precision`'s rule, but float16 on CUDA without bfloat16."""
    if device.type == "cuda" and precision == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return autocast_dtype(device, precision)


def _init_distributed() -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return Distributed(rank=dist.get_rank(), world=dist.get_world_size())


def _gather(x: torch.Tensor, ddp: Distributed) -> torch.Tensor:
    """Concatenate (anchors; replicas) halves across processes, keeping gradients.

    Each process holds [its anchors; its replicas]; the result is [all anchors; all
    replicas] so that row i of the two halves is still a positive pair; one process holds them all.
    """
    if ddp.world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    anchors, replicas = x.chunk(2)
    return torch.cat([torch.cat(all_gather(anchors)), torch.cat(all_gather(replicas))])
