"""The fingerprinter: log-mel front end, separable-conv encoder, divide-and-encode head.

`Fingerprinter` maps 1 s waveforms (B, samples) to L2-normalised fingerprints (B, d). It is
rebuilt from a checkpoint alone: the file holds the `ModelDims`, the weights and the resolved
config (`save_checkpoint`, `load_model`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fpkit.atomic import atomic_write
from fpkit.config import Config, ConfigError, config_from_dict, config_with_overrides
from fpkit.device import autocast_dtype
from fpkit.errors import FpkitError
from fpkit.features import LogMelSpectrogram, frontend_flops, n_frames

CHECKPOINT_FORMAT = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.pt"  # shipped model
# Fingerprinting runs a block on at most this many bytes of activations at once: the first
# blocks' activations (256 kB a segment for the default model) then stay in cache, where a
# whole batch of them ran 1.3-1.6 times slower on a 2-core EPYC.
CACHE_BYTES = 2**20


@dataclass(frozen=True)
class ModelDims:
    """Everything that fixes the network's shapes; saved inside every checkpoint."""

    n_mels: int
    n_frames: int
    channels: tuple[int, ...]
    strides: tuple[tuple[int, int], ...]  # per block: (freq, time)
    emb_dim: int
    proj_units: int
    activation: str = "elu"

    @classmethod
    def from_config(cls, config: Config) -> ModelDims:
        return cls(
            n_mels=config.features.n_mels,
            n_frames=n_frames(config.audio, config.features),
            channels=tuple(config.model.channels),
            strides=tuple((s[0], s[1]) for s in config.model.strides),
            emb_dim=config.model.emb_dim,
            proj_units=config.model.proj_units,
            activation=config.model.activation,
        )


def _conv_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # kernel 3, padding 1


# In place: the convolution's output is needed by nothing else, and a new tensor per call costs
# a pass over memory.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"elu": F.elu_, "relu": torch.relu_}


def centre_tap(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for a kernel-3 convolution along an axis of extent 1 (input (B, C, F, T)).

    Its outer taps meet only the zero padding, so the convolution is one matrix product with
    the centre tap: a single GEMM where the small late blocks spent most of their time in the
    general convolution (2.5-3.5 ms against 0.4-1.0 ms for a batch of 32).
    """
    b, c, f, t = x.shape
    # (C_out, C_in), the kernel being (1, 3) or (3, 1); copied, as BLAS multiplies a strided matrix 4 times slower.
    weight = conv.weight.flatten(2)[:, :, 1].contiguous()
    y = F.linear(x.reshape(b, c, f * t).transpose(1, 2), weight, conv.bias)  # (B, F*T, C_out)
    return y.transpose(1, 2).reshape(b, -1, f, t)


class SeparableConvBlock(nn.Module):
    """1x3 conv (time) -> ELU -> LayerNorm -> 3x1 conv (frequency) -> ELU -> LayerNorm.

    The layer norms normalise over (C, F, T) with one gain and bias per element, as the
    paper's `layer_norm2d`; `activation` may replace the ELU. Input (B, C_in, F, T); output
    (B, C_out, F', T').
    """

    def __init__(
        self, c_in: int, c_out: int, stride: tuple[int, int], shape_in: tuple[int, int], activation: str = "elu"
    ) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        f_stride, t_stride = stride
        f, t = shape_in
        t1 = _conv_out(t, t_stride)
        f2 = _conv_out(f, f_stride)
        self.conv_time = nn.Conv2d(c_in, c_out, (1, 3), stride=(1, t_stride), padding=(0, 1))
        self.norm_time = nn.LayerNorm([c_out, f, t1])
        self.conv_freq = nn.Conv2d(c_out, c_out, (3, 1), stride=(f_stride, 1), padding=(1, 0))
        self.norm_freq = nn.LayerNorm([c_out, f2, t1])
        self.shape_out = (f2, t1)
        self.activation_bytes = 4 * c_out * f * t1  # per segment in float32, the larger of its two
        self.time_centre = t == 1
        self.freq_centre = f == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = centre_tap(self.conv_time, x) if self.time_centre else self.conv_time(x)
        x = self.norm_time(self.activation(x))
        x = centre_tap(self.conv_freq, x) if self.freq_centre else self.conv_freq(x)
        return self.norm_freq(self.activation(x))


class DivideAndEncode(nn.Module):
    """Split the encoder output into d slices; each goes Linear -> ELU -> Linear to one unit.

    The d small networks run as two batched matrix products. Input (B, h); output (B, d).
    """

    def __init__(self, in_features: int, emb_dim: int, units: int) -> None:
        super().__init__()
        if in_features % emb_dim:
            raise ValueError(f"encoder output {in_features} is not divisible by emb_dim {emb_dim}")
        self.emb_dim = emb_dim
        slice_len = in_features // emb_dim
        self.w1 = nn.Parameter(torch.empty(emb_dim, slice_len, units))
        self.b1 = nn.Parameter(torch.zeros(emb_dim, units))
        self.w2 = nn.Parameter(torch.empty(emb_dim, units))
        self.b2 = nn.Parameter(torch.zeros(emb_dim))
        # Each branch is initialised like an nn.Linear of its own size.
        nn.init.uniform_(self.w1, -(slice_len**-0.5), slice_len**-0.5)
        nn.init.uniform_(self.w2, -(units**-0.5), units**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.emb_dim, -1)  # (B, d, h/d)
        hidden = F.elu(torch.einsum("bds,dsu->bdu", x, self.w1) + self.b1)  # (B, d, u)
        return torch.einsum("bdu,du->bd", hidden, self.w2) + self.b2  # (B, d)


class Fingerprinter(nn.Module):
    """Waveform segments (B, samples) -> unit-norm fingerprints (B, d)."""

    def __init__(self, dims: ModelDims, frontend: LogMelSpectrogram, channels_last: bool = True) -> None:
        super().__init__()
        self.dims = dims
        self.frontend = frontend
        self.channels_last = channels_last
        self.autocast: torch.dtype | None = None  # the encoder's dtype while fingerprinting; None is float32
        blocks = []
        c_in, shape = 1, (dims.n_mels, dims.n_frames)
        for c_out, stride in zip(dims.channels, dims.strides, strict=True):
            block = SeparableConvBlock(c_in, c_out, stride, shape, dims.activation)
            blocks.append(block)
            c_in, shape = c_out, block.shape_out
        self.encoder = nn.Sequential(*blocks)
        self.chunks = [max(1, CACHE_BYTES // block.activation_bytes) for block in blocks]  # segments per call
        self.head = DivideAndEncode(c_in * shape[0] * shape[1], dims.emb_dim, dims.proj_units)
        if channels_last:
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames)."""
        return self.frontend(wave)

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) -> (B, d), L2-normalised."""
        x = spec.unsqueeze(1)  # (B, 1, F, T)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled():
            x = self.encoder(x)  # training keeps every activation for the backward pass anyway
        else:
            for block, chunk in zip(self.encoder, self.chunks, strict=True):
                x = block(x) if len(x) <= chunk else torch.cat([block(part) for part in x.split(chunk)])
        return F.normalize(self.head(x.flatten(1)), dim=1)  # (B, C * F' * T') -> (B, d)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed(self.spectrogram(wave))

    def set_precision(self, precision: str) -> None:
        """Fingerprint at `inference.precision` ("auto", "float32", "bfloat16"), resolved for the model's device."""
        self.autocast = autocast_dtype(next(self.parameters()).device, precision)


def build_model(config: Config) -> Fingerprinter:
    """The one place where a config turns into a network."""
    return Fingerprinter(
        ModelDims.from_config(config),
        LogMelSpectrogram(config.audio, config.features),
        channels_last=config.model.channels_last,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_flops(dims: ModelDims, config: Config) -> float:
    """Floating point operations for one segment: front end, convolutions, head (2 per MAC)."""
    macs = 0
    c_in, f, t = 1, dims.n_mels, dims.n_frames
    for c_out, (f_stride, t_stride) in zip(dims.channels, dims.strides, strict=True):
        t = _conv_out(t, t_stride)
        macs += f * t * c_in * c_out * 3  # 1x3 convolution
        f = _conv_out(f, f_stride)
        macs += f * t * c_out * c_out * 3  # 3x1 convolution
        c_in = c_out
    h = c_in * f * t
    macs += h * dims.proj_units + dims.emb_dim * dims.proj_units  # divide-and-encode
    return 2.0 * macs + frontend_flops(config.audio, config.features)


@dataclass(frozen=True)
class LoadedModel:
    model: Fingerprinter
    config: Config
    model_id: str  # content hash of the weights; databases record it
    path: str
    extra: dict[str, Any]


def weights_id(model: nn.Module) -> str:
    """A short content hash of the weights: same weights, same id, on any machine."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: str | Path, model: Fingerprinter, config: Config, **extra: Any) -> None:
    """Write dims, weights, resolved config and `extra` state atomically (tmp file, then rename)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "dims": asdict(model.dims),
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


class CheckpointError(FpkitError):
    """A model file that cannot be loaded; the message names the file."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model file") from None
    except Exception as err:
        raise CheckpointError(f"{path}: not an fpkit checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an fpkit checkpoint (unknown format)")
    return payload


def stored_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """The config saved in a checkpoint, with dotted overrides; keys unknown to this version are dropped."""
    return config_with_overrides(read_checkpoint(path)["config"], overrides, f"{path} (stored config)", strict=False)


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a `Fingerprinter` from a checkpoint file alone, in eval mode on `device`.

    `path=None` loads the default model shipped inside the package.
    """
    if path is None:
        if not DEFAULT_WEIGHTS.exists():
            raise CheckpointError(f"{DEFAULT_WEIGHTS}: no default model is shipped in this install; pass --model")
        path = DEFAULT_WEIGHTS
    payload = read_checkpoint(path)
    try:
        config = config_from_dict(payload["config"], source=f"{path} (stored config)", strict=False)
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    model = build_model(config)
    stored = {"activation": "elu", **payload["dims"]}  # checkpoints before the activation was a choice
    dims = asdict(model.dims)
    if {k: _as_lists(v) for k, v in stored.items()} != {k: _as_lists(v) for k, v in dims.items()}:
        raise CheckpointError(f"{path}: stored dims do not match its config")
    model.load_state_dict(payload["state_dict"])
    model.eval().to(device)
    model.set_precision(config.inference.precision)
    extra = {k: v for k, v in payload.items() if k not in ("format", "dims", "config", "state_dict")}
    return LoadedModel(model, config, weights_id(model), str(path), extra)


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value
