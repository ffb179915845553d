"""A momentum copy of the network (MoCo) whose fingerprints fill the cross-batch memory.

The memory's negatives used to be the trained network's own fingerprints of earlier batches:
fingerprints of an older network, which at lr 1e-3 collapsed a run within 300 steps and pulled a
fine-tune away from what its batches taught (docs/results.md). A copy whose weights follow the
network's as an exponential moving average changes slowly, so the fingerprints it remembers stay
comparable with one another and with the network's current ones (He et al., CVPR 2020).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from fpkit.model import Fingerprinter


class MomentumEncoder:
    """An exponential moving average of a `Fingerprinter`'s weights, used without gradient."""

    def __init__(self, model: Fingerprinter, momentum: float) -> None:
        self.momentum = momentum
        self.model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def follow(self, model: Fingerprinter) -> None:
        """Move every weight `1 - momentum` of the way towards `model`'s."""
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - self.momentum)

    @torch.no_grad()
    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) -> (B, d) fingerprints of the averaged network."""
        return self.model.embed(spec)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
