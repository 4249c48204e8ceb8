"""The block library models are built from. Every block maps channels-first features [B, C_in, T_in] to
[B, C_out, T_out] and knows how it changes lengths, so a model can be cut after any block.

Blocks see only past and limited future frames (`right_context`), so the device part can run chunk by chunk.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Base: `out_dim`, `stride` (time reduction) and `out_lengths` for any block.

    `forward(x [B, C, T], pad_mask [B, T] or None) -> [B, C_out, T_out]`; pad_mask is True on padded frames
    (only attention needs it: convolutions see at most `right_context` padded frames at the very end).
    """

    out_dim: int
    stride: int = 1

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames [B] for valid input frames [B]."""
        return torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")


def _conv_pad(x: torch.Tensor, kernel: int, dilation: int, right: int) -> torch.Tensor:
    """Pad time so a conv sees `right` future frames at most and keeps the length (before stride)."""
    span = dilation * (kernel - 1)
    right = min(right, span)
    return F.pad(x, (span - right, right))


class ConvStem(Block):
    """Convolutional subsampling over time (log-mel bands as channels): 1-D convs of stride 2, `n_stages` times.

    1-D rather than 2-D convolutions: a 2-D stem over 80 bands costs ~50 M MAC/s, too much for a Cortex-M.
    """

    def __init__(self, in_dim: int, channels: int, out_dim: int, *, n_stages: int = 2, kernel: int = 5,
                 right_context: int = 2) -> None:
        super().__init__()
        self.out_dim, self.stride, self.kernel, self.right = out_dim, 2 ** n_stages, kernel, right_context
        layers: list[nn.Module] = [nn.Conv1d(in_dim, channels, kernel, stride=2)]
        for _ in range(n_stages - 1):  # depthwise-separable: the second stage costs a fraction of a full conv
            layers += [nn.Conv1d(channels, channels, kernel, stride=2, groups=channels),
                       nn.Conv1d(channels, channels, 1)]
        self.convs = nn.ModuleList(layers)
        self.proj = nn.Conv1d(channels, out_dim, 1)
        # BatchNorm, not GroupNorm/InstanceNorm: those normalize over time, so a frame would depend on the
        # whole utterance; BatchNorm is a per-frame affine map at inference (streams, folds into the conv)
        self.norm = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            if conv.stride[0] == 2:
                x = _conv_pad(x, self.kernel, 1, self.right)
            x = conv(x)
            if conv.kernel_size[0] == 1 or conv.groups == 1:
                x = F.gelu(x)
        return self.norm(self.proj(x))


class FeedForward(nn.Module):
    """Pre-norm MLP on time-major [B, T, C]."""

    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up, self.down = nn.Linear(dim, dim * mult), nn.Linear(dim * mult, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(F.silu(self.up(self.norm(x)))))


class LocalAttention(nn.Module):
    """Multi-head self-attention on [B, T, C] where frame t sees frames t-left .. t+right (written out for export)."""

    def __init__(self, dim: int, heads: int, left: int, right: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.left, self.right = heads, left, right
        self.norm = nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(c // self.heads)  # [B, H, T, T]
        pos = torch.arange(t, device=x.device)
        rel = pos[None, :] - pos[:, None]  # s - t
        allowed = (rel >= -self.left) & (rel <= self.right)
        if pad_mask is not None:  # pad_mask [B, T]: True where the frame is padding
            allowed = allowed[None, None] & ~pad_mask[:, None, None, :]
        att = torch.softmax(scores.masked_fill(~allowed, -1e4), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        return self.drop(self.out(y))


class ConvModule(nn.Module):
    """Conformer convolution module on [B, T, C]: pointwise GLU, depthwise conv with limited right context,
    pointwise."""

    def __init__(self, dim: int, kernel: int, right: int, dropout: float) -> None:
        super().__init__()
        self.kernel, self.right = kernel, right
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.dw = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.bn = nn.BatchNorm1d(dim)  # per-frame at inference (see ConvStem)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pw1(self.norm(x)), dim=-1).transpose(1, 2)
        y = F.silu(self.bn(self.dw(_conv_pad(y, self.kernel, 1, self.right)))).transpose(1, 2)
        return self.drop(self.pw2(y))


class ConformerBlock(Block):
    """Macaron Conformer block (FFN/2, local attention, conv module, FFN/2), with an input projection
    when `in_dim` differs from `dim` (so a narrow device part can feed a wider server part).
    Time-major inside ([B, T, C]: linear layers and layer norms without copies), channels-first outside."""

    def __init__(self, in_dim: int, dim: int, *, heads: int = 4, ffn_mult: int = 4, kernel: int = 15,
                 left_context: int = 32, right_context: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.out_dim = dim
        self.inp = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.ff1, self.ff2 = FeedForward(dim, ffn_mult, dropout), FeedForward(dim, ffn_mult, dropout)
        self.att = LocalAttention(dim, heads, left_context, right_context, dropout)
        self.conv = ConvModule(dim, kernel, right_context, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.inp(x.transpose(1, 2))
        x = x + 0.5 * self.ff1(x)
        x = x + self.att(x, pad_mask)
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x).transpose(1, 2)


class TDNNBlock(Block):
    """Time-delay (dilated 1-D conv) block with ReLU and normalization, optional stride; residual if shapes allow."""

    def __init__(self, in_dim: int, out_dim: int, *, kernel: int = 3, dilation: int = 1, stride: int = 1,
                 right_context: int = 2) -> None:
        super().__init__()
        self.out_dim, self.stride, self.kernel, self.dilation, self.right = (out_dim, stride, kernel, dilation,
                                                                             right_context)
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, dilation=dilation)
        self.norm = nn.BatchNorm1d(out_dim)  # per-frame at inference (see ConvStem)
        self.residual = in_dim == out_dim and stride == 1

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm(F.relu(self.conv(_conv_pad(x, self.kernel, self.dilation, self.right))))
        return x + y if self.residual else y


class TimePool(Block):
    """Average pooling over time by `stride` (lowers the frame rate, and so the bitrate, at the cut)."""

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.out_dim, self.stride = dim, stride

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        pad = (-x.shape[-1]) % self.stride
        return F.avg_pool1d(F.pad(x, (0, pad), mode="replicate") if pad else x, self.stride)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (ECAPA-TDNN): attention-weighted mean and std over time -> [B, 2C]."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.att = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, dim, 1))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        w = self.att(x)
        if pad_mask is not None:
            w = w.masked_fill(pad_mask[:, None, :], -1e4)
        w = torch.softmax(w, dim=-1)
        mean = (w * x).sum(-1)
        std = ((w * x * x).sum(-1) - mean * mean).clamp(min=1e-6).sqrt()
        return torch.cat([mean, std], dim=1)
