from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from fpkit.config import LossConfig
from fpkit.loss import Memory, contrastive_loss, ntxent_loss, semihard_triplet_loss


def unit(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator), dim=-1)


def pair(n: int, d: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit anchors and replicas `spread` away from them in a random direction."""
    anchors = unit(n, d, seed=seed)
    return anchors, F.normalize(anchors + spread * unit(n, d, seed=seed + 1), dim=-1)


def ntxent_reference(anchors: torch.Tensor, replicas: torch.Tensor, tau: float) -> float:
    """SimCLR's NT-Xent written out: for each of the 2n items, -log softmax of its positive."""
    z = [v.double() for v in torch.cat([anchors, replicas])]
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2  # the other view of the same segment
        sim = [float(z[i] @ z[k]) / tau for k in range(n2)]
        denominator = sum(math.exp(sim[k]) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim[j]) / denominator)
    return total / n2


def triplet_reference(anchors: torch.Tensor, replicas: torch.Tensor, margin: float) -> float:
    """FaceNet's semi-hard triplet loss written out, squared L2 distances."""
    z = [v.double() for v in torch.cat([anchors, replicas])]
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        p = (i + n) % n2
        d_ap = float(((z[i] - z[p]) ** 2).sum())
        d_neg = [float(((z[i] - z[k]) ** 2).sum()) for k in range(n2) if k % n != i % n]
        farther = [d for d in d_neg if d > d_ap]
        d_an = min(farther) if farther else max(d_neg)  # semi-hard, else the hardest
        total += max(0.0, d_ap - d_an + margin)
    return total / n2


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5])
@pytest.mark.parametrize(("n", "spread"), [(2, 0.5), (5, 1.0), (8, 0.2)])
def test_ntxent_equals_reference(n: int, spread: float, tau: float) -> None:
    anchors, replicas = pair(n, 16, spread, seed=n)
    loss = ntxent_loss(anchors, replicas, tau)
    assert loss.shape == ()
    # float32 logits of up to 1/tau: near-zero losses agree to about 1e-6 absolute.
    assert loss.item() == pytest.approx(ntxent_reference(anchors, replicas, tau), rel=1e-5, abs=1e-5)


def test_ntxent_falls_as_positives_move_closer() -> None:
    # A warm temperature keeps the loss away from float32 saturation at every step.
    losses = [ntxent_loss(*pair(16, 32, spread, seed=0), 0.5).item() for spread in (2.0, 1.0, 0.5, 0.25, 0.0)]
    assert all(a > b for a, b in itertools.pairwise(losses))


def test_ntxent_of_identical_orthogonal_views_is_near_zero() -> None:
    anchors = torch.eye(8)[:4]
    assert ntxent_loss(anchors, anchors.clone(), 0.05).item() < 1e-6


def test_ntxent_gradients_are_finite() -> None:
    anchors, replicas = pair(6, 16, 0.5, seed=2)
    anchors.requires_grad_()
    replicas.requires_grad_()
    ntxent_loss(anchors, replicas, 0.05).backward()
    assert anchors.grad is not None and replicas.grad is not None
    assert torch.isfinite(anchors.grad).all() and torch.isfinite(replicas.grad).all()
    assert anchors.grad.abs().sum() > 0


@pytest.mark.parametrize("margin", [0.1, 0.5, 2.0])
@pytest.mark.parametrize(("n", "spread"), [(2, 0.5), (5, 1.0), (8, 0.3), (6, 3.0)])
def test_triplet_equals_reference(n: int, spread: float, margin: float) -> None:
    anchors, replicas = pair(n, 8, spread, seed=10 + n)
    loss = semihard_triplet_loss(anchors, replicas, margin)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(triplet_reference(anchors, replicas, margin), rel=1e-5, abs=1e-6)


def test_triplet_is_zero_when_classes_are_far_apart() -> None:
    anchors = torch.eye(8)[:4]
    assert semihard_triplet_loss(anchors, anchors.clone(), 0.5).item() == 0.0


def test_triplet_falls_as_positives_move_closer() -> None:
    losses = [semihard_triplet_loss(*pair(16, 32, spread, seed=0), 0.5).item() for spread in (2.0, 1.0, 0.5)]
    assert losses[0] > losses[1] > losses[2] == 0.0


def test_triplet_gradients_are_finite() -> None:
    anchors, replicas = pair(6, 16, 0.0, seed=3)  # zero positive distances: the awkward case
    anchors.requires_grad_()
    replicas.requires_grad_()
    semihard_triplet_loss(anchors, replicas, 0.5).backward()
    assert anchors.grad is not None and torch.isfinite(anchors.grad).all()


def test_contrastive_loss_follows_the_config() -> None:
    anchors, replicas = pair(4, 16, 0.7, seed=5)
    ntxent = contrastive_loss(anchors, replicas, LossConfig(kind="ntxent", tau=0.1))
    triplet = contrastive_loss(anchors, replicas, LossConfig(kind="triplet", margin=0.3))
    assert ntxent.item() == pytest.approx(ntxent_loss(anchors, replicas, 0.1).item())
    assert triplet.item() == pytest.approx(semihard_triplet_loss(anchors, replicas, 0.3).item())


def test_memory_adds_negatives_without_gradient() -> None:
    anchors, replicas = pair(8, 16, 0.5, seed=0)
    memory = F.normalize(torch.randn(20, 16), dim=1)
    plain = ntxent_loss(anchors, replicas, 0.1)
    with_memory = ntxent_loss(anchors, replicas, 0.1, memory)
    assert with_memory.item() > plain.item()  # more negatives, harder choice
    # A memory holding copies of the batch's own items is the same as the batch twice over.
    z = torch.cat([anchors, replicas])
    logits = z @ torch.cat([z, z]).T / 0.1
    logits[:, :16].fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(8, 16), torch.arange(0, 8)])
    expected = F.cross_entropy(logits, positives)
    assert ntxent_loss(anchors, replicas, 0.1, z).item() == pytest.approx(expected.item(), rel=1e-5)


def test_memory_keeps_the_newest_items_first() -> None:
    memory = Memory(size=5, dim=2)
    memory.push(torch.ones(3, 2))
    memory.push(torch.full((3, 2), 2.0))
    assert memory.items.shape == (5, 2)
    assert memory.items[:3].eq(2).all() and memory.items[3:].eq(1).all()


def test_a_smaller_memory_keeps_only_the_newest_restored_items() -> None:
    restored = torch.arange(10.0).view(5, 2)
    assert Memory(size=2, dim=2, items=restored).items.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert Memory(size=0, dim=2, items=restored).items.shape == (0, 2)  # memory turned off on resume
