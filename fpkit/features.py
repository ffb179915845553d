"""The paper's log-power mel front end: 1 s at 8 kHz becomes an n_mels x 32 spectrogram.

A segment reaches the front end as a *window*: the segment's samples with `context` samples of
the surrounding audio on each side (`Framing`). How the window is framed depends on
`features.framing`:

* ``segment`` (the paper, and fpkit 0.1 models): every segment is framed on its own, with
  centred frames over zero padding; the context is blanked, so nothing outside the segment is
  heard. Frames per segment: segment // stft_hop + 1.
* ``stream``: frames lie inside the segment and read the real audio around it. A song is then
  framed once and each frame serves every segment that contains it (`LogMelSpectrogram.log_mel`
  on a long signal, cut with `segment_frames`), which halves the front end's work at a 0.5 s hop.
  Frames per segment: segment // stft_hop; the hop and segment must be whole numbers of frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from fpkit.config import AudioConfig, FeaturesConfig

POWER_FLOOR = 1e-10  # keeps log10 finite on digital silence


@dataclass(frozen=True)
class Framing:
    """How a segment's window is laid out around it, in samples at the model rate."""

    left: int  # context samples before the segment
    right: int  # context samples after it
    segment: int
    frames: int  # STFT frames per segment
    stft_hop: int
    streams: bool  # frames can be shared between segments (stream framing)

    @property
    def window(self) -> int:
        return self.left + self.segment + self.right


def framing(audio: AudioConfig, features: FeaturesConfig) -> Framing:
    seg, n_fft, hop = audio.segment_samples, features.n_fft, features.stft_hop
    if features.framing == "segment":
        return Framing(n_fft // 2, n_fft // 2, seg, seg // hop + 1, hop, streams=False)
    left = (n_fft - hop) // 2  # frame j is centred on sample (j + 1/2) * hop of the segment
    return Framing(left, n_fft - hop - left, seg, seg // hop, hop, streams=True)


class LogMelSpectrogram(nn.Module):
    """Batched log-power mel spectrogram of segment windows, normalised per segment.

    Each segment's values are in dB relative to its own maximum, clipped at
    `-dynamic_range_db` and mapped to [-1, 1], so a gain change leaves the input unchanged.
    Input (B, framing.window) float32; output (B, n_mels, framing.frames).
    """

    def __init__(self, audio: AudioConfig, features: FeaturesConfig) -> None:
        super().__init__()
        self.framing = framing(audio, features)
        # Holds the window and filterbank (checkpoints name them so); frames are never centred
        # here because the windows carry their own padding or context.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=audio.sample_rate,
            n_fft=features.n_fft,
            hop_length=features.stft_hop,
            f_min=features.f_min,
            f_max=features.f_max,
            n_mels=features.n_mels,
            power=2.0,
            center=False,
        )
        self.dynamic_range_db = features.dynamic_range_db

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> un-normalised log-mel power in dB (..., n_mels, frames), uncentred frames.

        The STFT, window and filterbank are torchaudio's; the power is re^2 + im^2, which equals
        torchaudio's `abs() ** 2` to 2.4e-7 without its square root: that took as long as the STFT.
        """
        stft = self.mel.spectrogram
        spec = torch.stft(
            wave.float().reshape(-1, wave.shape[-1]),
            stft.n_fft,
            stft.hop_length,
            stft.win_length,
            window=stft.window,
            center=False,
            return_complex=True,
        )
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)
        mel = self.mel.mel_scale(power.reshape(wave.shape[:-1] + power.shape[-2:]))
        return 10.0 * torch.log10(mel.clamp_min(POWER_FLOOR))

    def normalise(self, db: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) dB -> [-1, 1] relative to each item's maximum."""
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        return db.clamp_min(-self.dynamic_range_db) / (self.dynamic_range_db / 2) + 1.0

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        f = self.framing
        if not f.streams:  # the paper frames each segment over zeros, not over its neighbours
            windows = nn.functional.pad(windows[..., f.left : f.left + f.segment], (f.left, f.right))
        return self.normalise(self.log_mel(windows))

    def segment_frames(self, db: torch.Tensor, first_frames: torch.Tensor) -> torch.Tensor:
        """Cut normalised segments from a long signal's `log_mel` (n_mels, T) at frame indices (n,).

        Stream framing only: equals `forward` on each segment's window. Output (n, n_mels, frames).
        """
        frames = db.unfold(-1, self.framing.frames, 1)  # (n_mels, T - frames + 1, frames)
        return self.normalise(frames[:, first_frames].transpose(0, 1))


def n_frames(audio: AudioConfig, features: FeaturesConfig) -> int:
    """STFT frames per segment."""
    return framing(audio, features).frames


def frontend_flops(audio: AudioConfig, features: FeaturesConfig) -> float:
    """Approximate floating point operations of the front end for one stored segment.

    Stream framing computes each frame once, so a stored segment costs one hop of frames.
    """
    f = framing(audio, features)
    frames = audio.hop_samples / features.stft_hop if f.streams else f.frames
    n_bins = features.n_fft // 2 + 1
    fft = 5 * features.n_fft * math.log2(features.n_fft)  # complex FFT of a real frame, upper bound
    return frames * (fft + 2 * n_bins * features.n_mels + 4 * n_bins)
