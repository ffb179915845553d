"""Contrastive losses on a batch laid out as [anchors (N/2); replicas (N/2)]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fpkit.config import LossConfig


def ntxent_loss(
    anchors: torch.Tensor, replicas: torch.Tensor, tau: float, memory: torch.Tensor | None = None
) -> torch.Tensor:
    """NT-Xent (SimCLR) loss of the paper, optionally with extra negatives from a memory.

    `anchors` and `replicas` are (n, d) and unit-norm; row i of each is a positive pair, and
    every other item of the 2n-item batch is a negative, as is every row of `memory` (m, d)
    (fingerprints of earlier batches, no gradient). The loss is the mean over all 2n items of
    the cross-entropy of picking the positive among the 2n - 1 + m others at temperature `tau`.
    """
    n = anchors.shape[0]
    z = torch.cat([anchors, replicas], dim=0)  # (2n, d)
    logits = z @ z.T / tau  # (2n, 2n)
    logits.fill_diagonal_(float("-inf"))  # an item is never its own positive or negative
    if memory is not None and memory.shape[0]:
        logits = torch.cat([logits, z @ memory.to(z.dtype).T / tau], dim=1)  # (2n, 2n + m)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits.float(), positives)


def semihard_triplet_loss(anchors: torch.Tensor, replicas: torch.Tensor, margin: float) -> torch.Tensor:
    """Online semi-hard triplet loss (FaceNet), the Now-playing baseline.

    Items 2i and its replica share label i. For each (anchor, positive) pair the negative is
    the closest one farther than the positive; when none is, the farthest negative closer
    than the positive. Distances are squared L2.
    """
    n = anchors.shape[0]
    z = torch.cat([anchors, replicas], dim=0).float()  # (2n, d)
    labels = torch.arange(n, device=z.device).repeat(2)  # (2n,)
    dist = torch.cdist(z, z).pow(2)  # (2n, 2n)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    pos_mask = same & ~eye
    neg_mask = ~same

    d_ap = dist[pos_mask].view(2 * n, 1)  # each item has exactly one positive
    d_an = dist.masked_fill(~neg_mask, float("nan"))  # (2n, 2n)
    farther = neg_mask & (d_an > d_ap)
    inf = torch.tensor(float("inf"), device=z.device)
    semi_hard = torch.where(farther, d_an, inf).amin(dim=1)  # (2n,)
    closer = torch.where(neg_mask & ~farther, d_an, -inf).amax(dim=1)  # (2n,)
    d_neg = torch.where(torch.isinf(semi_hard), closer, semi_hard)
    return F.relu(d_ap.squeeze(1) - d_neg + margin).mean()


def contrastive_loss(
    anchors: torch.Tensor, replicas: torch.Tensor, config: LossConfig, memory: torch.Tensor | None = None
) -> torch.Tensor:
    if config.kind == "ntxent":
        return ntxent_loss(anchors, replicas, config.tau, memory)
    return semihard_triplet_loss(anchors, replicas, config.margin)


class Memory:
    """A first-in first-out store of the last `size` fingerprints (m, d), kept without gradient."""

    def __init__(self, size: int, dim: int, items: torch.Tensor | None = None) -> None:
        self.size = size
        self.items = items[:size] if items is not None else torch.zeros(0, dim)

    def push(self, z: torch.Tensor) -> None:
        self.items = torch.cat([z.detach().float(), self.items.to(z.device)])[: self.size]
