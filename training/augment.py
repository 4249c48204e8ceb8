"""Training-time augmentation on normalized log-mels [B, n_mels, T] (never in the exported graph)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vtlp(x: torch.Tensor, low: float = 0.85, high: float = 1.15) -> torch.Tensor:
    """Vocal tract length perturbation: stretch each utterance's mel axis by a random factor in [low, high].

    Measured on the synthetic voices: this cut unseen-voice WER from 93% to 79% (with dropout 0.2).
    """
    b, m, t = x.shape
    alpha = torch.empty(b, 1, device=x.device).uniform_(low, high)
    src = (torch.arange(m, device=x.device)[None, :] / alpha).clamp(max=m - 1)  # [B, m] source band
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    w = (src - lo)[:, :, None]
    gather = lambda idx: torch.gather(x, 1, idx[:, :, None].expand(b, m, t))  # noqa: E731
    return gather(lo) * (1 - w) + gather(hi) * w


def spec_augment(x: torch.Tensor, lengths: torch.Tensor | None, *, freq_masks: int = 2, freq_width: int = 6,
                 time_masks: int = 2, time_frac: float = 0.05) -> torch.Tensor:
    """SpecAugment: zero random bands and random spans of frames (each mask per utterance)."""
    b, m, t = x.shape
    x = x.clone()
    lens = lengths if lengths is not None else torch.full((b,), t, device=x.device)
    for i in range(b):
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, ()))
            f0 = int(torch.randint(0, max(1, m - w), ()))
            x[i, f0:f0 + w] = 0
        max_w = max(1, int(time_frac * int(lens[i])))
        for _ in range(time_masks):
            w = int(torch.randint(0, max_w + 1, ()))
            t0 = int(torch.randint(0, max(1, int(lens[i]) - w), ()))
            x[i, :, t0:t0 + w] = 0
    return x


def random_gain_shift(x: torch.Tensor, db: float = 6.0) -> torch.Tensor:
    """A random level change of up to +-db per utterance on raw log-mels (ln power: +g dB adds g*ln(10)/10)."""
    return x + torch.empty(x.shape[0], 1, 1, device=x.device).uniform_(-db, db) * (torch.log(torch.tensor(10.0)) / 10)


def pad_batch(feats: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [n_mels, T_i] into [B, n_mels, T_max] with `value` padding, and lengths [B]."""
    lengths = torch.tensor([f.shape[1] for f in feats])
    t = int(lengths.max())
    return torch.stack([F.pad(f.float(), (0, t - f.shape[1]), value=value) for f in feats]), lengths
