"""Choosing the torch device from a user's `auto`, `cpu`, `cuda` or `cuda:N`, and the precision it computes in."""

from __future__ import annotations

import torch

from fpkit.errors import FpkitError


class DeviceError(FpkitError):
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


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware; emulated bfloat16 is many times slower than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` ("auto", "float32", "bfloat16") on `device`; None is float32."""
    if precision == "bfloat16" or (precision == "auto" and native_bfloat16(device)):
        return torch.bfloat16
    return None
