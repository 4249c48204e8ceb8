"""Log-mel front-end that runs unchanged in training and in every export path.

The STFT is written as a fixed 1-D convolution (windowed DFT bases as the kernel) instead of
``torch.stft``: ExecuTorch, LiteRT and TFLM have no FFT or complex-number ops, and a plain
conv + square + matmul + log graph lowers everywhere and quantizes like any other layer.

Framing has no centre padding: frame ``t`` covers samples ``[t*hop, t*hop + win)``, so a device
that receives audio in hops can produce frames as soon as each window is full.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acom.errors import AcomError, DataError

__all__ = ["FrontEndConfig", "LogMel", "mel_filterbank", "num_frames"]


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig:
    """Settings of the log-mel front-end; written into the bundle manifest via ``to_dict``."""

    sample_rate: int = 16000
    """Input sample rate in Hz; audio at another rate must be resampled before the front-end."""
    win_ms: float = 25.0
    """Analysis window length in milliseconds (400 samples at 16 kHz)."""
    hop_ms: float = 10.0
    """Frame step in milliseconds (160 samples at 16 kHz, i.e. 100 frames per second)."""
    n_fft: int = 512
    """DFT size; each window is zero-padded to this many points, giving n_fft // 2 + 1 bins."""
    n_mels: int = 40
    """Number of triangular mel filters, i.e. feature channels per frame."""
    f_min: float = 20.0
    """Lower edge of the lowest mel filter in Hz (drops DC and rumble)."""
    f_max: float | None = None
    """Upper edge of the highest mel filter in Hz; None means sample_rate / 2."""
    log_floor: float = 1e-6
    """Added to the mel energy before the log so silence gives a finite value, not log(0)."""

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise AcomError(f"sample_rate must be > 0 Hz, got {self.sample_rate}")
        if self.hop_length < 1 or self.win_length < 1:
            raise AcomError(
                f"win_ms={self.win_ms} and hop_ms={self.hop_ms} must each give at least one sample "
                f"at {self.sample_rate} Hz"
            )
        if self.n_fft < self.win_length:
            raise AcomError(f"n_fft={self.n_fft} must be >= win_length={self.win_length} samples")
        if self.n_mels < 1:
            raise AcomError(f"n_mels must be >= 1, got {self.n_mels}")
        if not 0.0 <= self.f_min < self.f_max_hz <= self.sample_rate / 2:
            raise AcomError(
                f"need 0 <= f_min < f_max <= sample_rate/2 = {self.sample_rate / 2} Hz, "
                f"got f_min={self.f_min}, f_max={self.f_max_hz}"
            )
        if self.log_floor <= 0.0:
            raise AcomError(f"log_floor must be > 0, got {self.log_floor}")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Frame step in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    @property
    def frame_rate(self) -> float:
        """Feature frames per second of audio."""
        return self.sample_rate / self.hop_length

    @property
    def n_freqs(self) -> int:
        """Number of one-sided DFT bins, n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def f_max_hz(self) -> float:
        """Upper mel edge in Hz with the None default resolved."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    def to_dict(self) -> dict[str, int | float | None]:
        """The fields plus the derived sample counts, as plain JSON-ready values."""
        out: dict[str, int | float | None] = asdict(self)
        out.update(win_length=self.win_length, hop_length=self.hop_length, frame_rate=self.frame_rate)
        return out


def num_frames(num_samples: int, cfg: FrontEndConfig) -> int:
    """Frames ``LogMel`` yields for ``num_samples`` samples: 0 if shorter than one window."""
    if num_samples < cfg.win_length:
        return 0
    return 1 + (num_samples - cfg.win_length) // cfg.hop_length


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontEndConfig) -> np.ndarray:
    """Triangular HTK-mel filters, unnormalized (peak 1), as float64 ``[n_mels, n_freqs]``.

    Filter m rises from edge m to centre m+1 and falls to edge m+2 of n_mels+2 points spaced
    evenly in mel between f_min and f_max; weights are linear in Hz between those points.
    """
    edges_hz = _mel_to_hz(
        np.linspace(_hz_to_mel(np.float64(cfg.f_min)), _hz_to_mel(np.float64(cfg.f_max_hz)), cfg.n_mels + 2)
    )
    bin_hz = np.arange(cfg.n_freqs, dtype=np.float64) * cfg.sample_rate / cfg.n_fft
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(fb.max(axis=1) <= 0.0)
    if empty.size:
        # An empty filter would emit the constant log(log_floor): a dead channel, never useful.
        raise AcomError(
            f"n_mels={cfg.n_mels} is too many for n_fft={cfg.n_fft} at {cfg.sample_rate} Hz: "
            f"mel filters {empty.tolist()} contain no DFT bin; use fewer mels or a larger n_fft"
        )
    return fb


def _dft_kernel(cfg: FrontEndConfig) -> np.ndarray:
    """Windowed real and imaginary DFT bases as a conv kernel, float64 ``[2 * n_freqs, 1, win_length]``.

    Only the first win_length taps are kept: evaluating the n_fft-point bases on them is exactly
    a DFT of the frame zero-padded to n_fft, without spending multiply-adds on the zeros.
    """
    n = np.arange(cfg.win_length, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / cfg.win_length)  # periodic Hann
    k = np.arange(cfg.n_freqs, dtype=np.float64)
    phase = 2.0 * math.pi * np.outer(k, n) / cfg.n_fft  # [n_freqs, win_length]
    bases = np.concatenate([np.cos(phase), -np.sin(phase)], axis=0) * window[None, :]
    return bases[:, None, :]


class LogMel(nn.Module):
    """Waveform to log-mel features using only conv1d, mul, add, matmul and log (export-safe).

    The DFT kernel and mel filterbank are non-persistent buffers: they follow ``.to(device)`` but
    stay out of checkpoints, because they are fully determined by the config in the manifest.
    """

    def __init__(self, cfg: FrontEndConfig, *, dtype: torch.dtype = torch.float32) -> None:
        """Build the fixed DFT kernel and mel filterbank once.

        Args:
            cfg: front-end settings.
            dtype: dtype of the buffers and of the computation. float32 is what devices run;
                float64 is for reference checks: with a loud tone, float32 rounding leaves ~1e-8 of
                error in mel energy, which is up to ~2e-3 in log where a band is near ``log_floor``.
        """
        super().__init__()
        self.cfg = cfg
        # Built in float64 and cast once, so the float64 variant carries no float32 rounding.
        kernel = torch.from_numpy(_dft_kernel(cfg)).to(dtype)
        mel_fb = torch.from_numpy(mel_filterbank(cfg)).to(dtype)
        self.register_buffer("dft_kernel", kernel, persistent=False)  # [2 * n_freqs, 1, win_length]
        self.register_buffer("mel_fb", mel_fb, persistent=False)  # [n_mels, n_freqs]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel features of ``wave``.

        Args:
            wave: float waveform ``[B, N]`` or ``[N]`` (treated as ``B = 1``) at ``cfg.sample_rate``,
                with ``N >= cfg.win_length``.

        Returns:
            ``[B, n_mels, T]`` with ``T = num_frames(N, cfg)``.

        Raises:
            DataError: ``wave`` is not a 1-D or 2-D float tensor, or is shorter than one window.

        Under torch.export with a dynamic length, give ``N`` a minimum of ``win_length + hop_length``
        (``T >= 2``): export specializes size-1 dimensions, so ``T == 1`` cannot share the graph.
        """
        # Rank and (when concrete) length are static under torch.export, so these checks add no
        # data-dependent control flow to the traced graph.
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        elif wave.dim() != 2:
            raise DataError(f"LogMel expects a waveform [B, N] or [N], got shape {tuple(wave.shape)}")
        n = wave.shape[-1]
        if isinstance(n, int) and n < self.cfg.win_length:
            raise DataError(
                f"LogMel needs at least win_length={self.cfg.win_length} samples "
                f"({self.cfg.win_ms} ms at {self.cfg.sample_rate} Hz), got {n}"
            )
        if not wave.is_floating_point():
            raise DataError(f"LogMel expects a float waveform in [-1, 1], got dtype {wave.dtype}")
        if wave.dtype != self.dft_kernel.dtype:
            # Decided on the static dtype, so a matching input adds no cast node to an exported graph.
            wave = wave.to(self.dft_kernel.dtype)
        spec = F.conv1d(wave.unsqueeze(1), self.dft_kernel, stride=self.cfg.hop_length)  # [B, 2F, T]
        n_freqs = self.cfg.n_freqs
        real, imag = spec[:, :n_freqs], spec[:, n_freqs:]
        power = real * real + imag * imag  # [B, n_freqs, T]
        mel = torch.matmul(self.mel_fb, power)  # [B, n_mels, T]
        return torch.log(mel + self.cfg.log_floor)

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"sample_rate={c.sample_rate}, win={c.win_length}, hop={c.hop_length}, "
            f"n_fft={c.n_fft}, n_mels={c.n_mels}"
        )
