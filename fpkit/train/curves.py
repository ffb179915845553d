"""Training curves as a small PNG: losses and mini-search top-1 against the step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fpkit.atomic import atomic_write

if TYPE_CHECKING:
    from fpkit.train.loop import EpochRecord


def plot_training_curves(history: Sequence[EpochRecord], path: Path) -> None:
    """Write `path` atomically: train/val loss on the left, top-1 by sequence length on the right."""
    # A bare Figure renders with Agg when saved: no display, no pyplot state. Imported here, as every
    # fpkit command imports this module (through the CLI) and matplotlib costs about a second.
    from matplotlib.figure import Figure

    steps = [r.step for r in history]
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax_loss, ax_hit = fig.subplots(1, 2)
    ax_loss.plot(steps, [r.train_loss for r in history], label="train")
    ax_loss.plot(steps, [r.val_loss for r in history], label="validation")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for length in sorted(history[-1].top1) if history else []:
        ax_hit.plot(steps, [r.top1[length] for r in history], marker=".", label=f"{length} seg")
    ax_hit.set_xlabel("step")
    ax_hit.set_ylabel("mini-search top-1")
    ax_hit.set_ylim(0, 1)
    ax_hit.legend(fontsize="small")
    fig.tight_layout()
    with atomic_write(path, ".png") as tmp:
        fig.savefig(tmp)
