"""The paper's log-power mel front end: 1 s at 8 kHz becomes a 256 x 32 spectrogram."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from fpkit.config import AudioConfig, FeaturesConfig

POWER_FLOOR = 1e-10  # keeps log10 finite on digital silence


class LogMelSpectrogram(nn.Module):
    """Batched log-power mel spectrogram, normalised per segment.

    Each segment's values are in dB relative to its own maximum, clipped at
    `-dynamic_range_db` and mapped to [-1, 1], so a gain change leaves the input unchanged.
    Input (B, samples) float32; output (B, n_mels, frames).
    """

    def __init__(self, audio: AudioConfig, features: FeaturesConfig) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=audio.sample_rate,
            n_fft=features.n_fft,
            hop_length=features.stft_hop,
            f_min=features.f_min,
            f_max=features.f_max,
            n_mels=features.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",  # zero padding as in the paper, not reflection
        )
        self.dynamic_range_db = features.dynamic_range_db

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.mel(wave.float())  # (B, F, T)
        db = 10.0 * torch.log10(power.clamp_min(POWER_FLOOR))
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        db = db.clamp_min(-self.dynamic_range_db)
        return db / (self.dynamic_range_db / 2) + 1.0


def n_frames(audio: AudioConfig, features: FeaturesConfig) -> int:
    """STFT frames per segment (centred frames, so one more than whole hops)."""
    return audio.segment_samples // features.stft_hop + 1


def frontend_flops(audio: AudioConfig, features: FeaturesConfig) -> float:
    """Approximate floating point operations of the front end for one segment."""
    frames = n_frames(audio, features)
    n_bins = features.n_fft // 2 + 1
    fft = 5 * features.n_fft * math.log2(features.n_fft)  # complex FFT of a real frame, upper bound
    return frames * (fft + 2 * n_bins * features.n_mels + 4 * n_bins)
