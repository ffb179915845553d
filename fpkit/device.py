"""Choosing the torch device from a user's `auto`, `cpu`, `cuda` or `cuda:N`."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A requested device that this machine does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} requested but CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
