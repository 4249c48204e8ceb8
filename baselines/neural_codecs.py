"""Device cost of two neural-codec encoders, for comparison with the edge head: MAC/s of audio and parameters.

The encoders are rebuilt here from the published architectures with random weights (cost needs no trained
weights, and nothing is ever downloaded). Architecture facts and where they come from:

DAC 16 kHz (descriptinc/descript-audio-codec, ``dac/model/dac.py``, ``conf/final/16khz.yml``,
``dac/nn/quantize.py``, ``dac/nn/layers.py``):
  - conv k=7 (1 -> 64), then per stride in (2, 4, 5, 8) an EncoderBlock at width ``dim`` = 128, 256, 512, 1024:
    three ResidualUnits at dim/2 (Snake, conv k=7 dilation 1 / 3 / 9, Snake, conv k=1, identity skip),
    Snake, conv dim/2 -> dim with k=2*stride, stride, padding ceil(stride/2);
  - Snake, conv k=3 to latent_dim = 64 * 2**4 = 1024; hop 320, so 50 frames/s at 16 kHz;
  - RVQ: 12 codebooks x 1024 entries, codebook_dim 8; per stage a 1x1 in_proj 1024 -> 8, L2-normalized
    (cosine) nearest-codeword search, a 1x1 out_proj 8 -> 1024 subtracted from the residual.
    12 x 10 bit x 50 Hz = 6 kbit/s at full n_q (the repo's weight tag for this model says "8kbps").
EnCodec 24 kHz (facebookresearch/encodec, ``encodec/modules/seanet.py``, ``encodec/modules/lstm.py``,
``encodec/modules/conv.py``, ``encodec/model.py``, ``encodec/quantization/core_vq.py``):
  - SEANetEncoder(channels=1, dimension=128, n_filters=32, n_residual_layers=1, ratios=(8, 5, 4, 2) used
    reversed, kernel 7, last kernel 7, residual kernel 3, dilation base 2, compress 2, true_skip=False, lstm=2),
    causal (``encodec_model_24khz``): conv k=7 (1 -> 32); per ratio in (2, 4, 5, 8) a resnet block
    (ELU, conv k=3 C -> C/2, ELU, conv k=1 C/2 -> C, plus a 1x1 conv C -> C as the shortcut, since
    true_skip=False), then ELU and conv C -> 2C with k=2*ratio, stride ratio; a 2-layer LSTM at 512 with
    skip; ELU, conv k=7 512 -> 128. Hop 320, 75 frames/s.
  - RVQ: 1024 entries of dim 128, no projections (codebook_dim = dimension); n_q = bandwidth / 0.75 kbit/s:
    2 at 1.5 kbit/s, 8 at 6 kbit/s, 32 at 24 kbit/s.

What is counted: multiply-accumulates of convolutions, the LSTM (added analytically, see `count_macs`), the
quantizer's projections and its nearest-codeword matmul (K x codebook_dim per frame per stage), on one
second of audio at the codec's rate, batch 1. Not counted: the elementwise work (Snake, ELU, the LSTM's gate
nonlinearities and products, residual adds, L2 normalization, argmax), biases, and the codebook norms
(precomputable). Parameter counts are of these modules: the references' weight norm stores one extra gain
per output channel, left out here (<0.1%).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from acom.errors import AcomError

__all__ = ["RVQEncode", "count_macs", "dac16k_encoder", "encodec24k_encoder", "lstm_macs", "n_params",
           "neural_codec_costs", "rvq_encoder"]

BITS_PER_CODE = 10  # both codecs use 1024-entry codebooks


# ---------------------------------------------------------------- counting

def lstm_macs(lstm: nn.LSTM, steps: int, batch: int = 1) -> int:
    """MACs of a unidirectional ``nn.LSTM`` over ``steps`` frames: per layer and step, 4 gates x (input +
    hidden) x hidden."""
    h = lstm.hidden_size
    per_step = sum(4 * h * ((lstm.input_size if i == 0 else h) + h) for i in range(lstm.num_layers))
    return per_step * steps * batch


@torch.no_grad()
def count_macs(module: nn.Module, x: Tensor) -> float:
    """MACs of ``module(x)``: torch's FLOP counter / 2, plus every ``nn.LSTM`` analytically.

    FlopCounterMode has no formula for ``aten.lstm`` (it reports 0), so a forward hook adds
    `lstm_macs` for each LSTM call; a test checks the counter still reports 0 for it, so nothing is
    counted twice if torch learns to count LSTMs.
    """
    extra = [0]

    def hook(mod: nn.LSTM, args: tuple[Tensor, ...], _out: object) -> None:
        seq = args[0]
        steps, batch = (seq.shape[1], seq.shape[0]) if mod.batch_first else (seq.shape[0], seq.shape[1])
        extra[0] += lstm_macs(mod, steps, batch)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.LSTM)]
    try:
        with FlopCounterMode(display=False) as counter:
            module(x)
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() / 2 + extra[0]


def n_params(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- DAC 16 kHz

class Snake(nn.Module):
    """Snake activation x + sin^2(alpha x) / alpha with a learned alpha per channel: ``[B, C, T]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


class _DacResidualUnit(nn.Module):
    """Snake, dilated conv k=7, Snake, conv k=1, identity skip; length-preserving: ``[B, C, T]``."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            Snake(channels), nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            Snake(channels), nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _dac_block(dim: int, stride: int) -> nn.Sequential:
    """Three residual units at dim/2 (dilations 1, 3, 9), then Snake and a strided conv to dim:
    ``[B, dim/2, T] -> [B, dim, T / stride]``."""
    half = dim // 2
    return nn.Sequential(
        *(_DacResidualUnit(half, d) for d in (1, 3, 9)), Snake(half),
        nn.Conv1d(half, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2)))


def dac16k_encoder(d_model: int = 64, strides: tuple[int, ...] = (2, 4, 5, 8)) -> nn.Sequential:
    """DAC 16 kHz encoder with random weights: audio ``[B, 1, N]`` -> latents ``[B, 1024, N / 320]``.

    The latent width is d_model * 2**len(strides), DAC's default when latent_dim is unset.
    """
    layers: list[nn.Module] = [nn.Conv1d(1, d_model, 7, padding=3)]
    dim = d_model
    for s in strides:
        dim *= 2
        layers.append(_dac_block(dim, s))
    layers += [Snake(dim), nn.Conv1d(dim, dim, 3, padding=1)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- EnCodec 24 kHz

class _CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left by (k-1)*d - (s-1) and on the right just enough to fill the last window,
    so the output has ceil(T / stride) frames: ``[B, C_in, T] -> [B, C_out, ceil(T / s)]``.

    EnCodec pads by reflection; zeros here change the values, not the cost.
    """

    def forward(self, x: Tensor) -> Tensor:
        k, s, d = self.kernel_size[0], self.stride[0], self.dilation[0]
        left = (k - 1) * d - (s - 1)
        frames = math.ceil((x.shape[-1] - k + left) / s + 1)
        right = (frames - 1) * s + k - left - x.shape[-1]
        return super().forward(F.pad(x, (left, right)))


class _SeanetResBlock(nn.Module):
    """ELU, conv k=3 to C/2, ELU, conv k=1 back to C, plus a 1x1-conv shortcut: ``[B, C, T]``."""

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 1, compress: int = 2) -> None:
        super().__init__()
        hidden = channels // compress
        self.body = nn.Sequential(
            nn.ELU(), _CausalConv1d(channels, hidden, kernel, dilation=dilation),
            nn.ELU(), _CausalConv1d(hidden, channels, 1))
        self.shortcut = _CausalConv1d(channels, channels, 1)  # true_skip=False in SEANetEncoder

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.body(x)


class _SkipLSTM(nn.Module):
    """LSTM over the frames of ``[B, C, T]`` with its input added back (EnCodec's SLSTM)."""

    def __init__(self, channels: int, num_layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)  # [T, B, C]: nn.LSTM's default layout
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)


def encodec24k_encoder(n_filters: int = 32, ratios: tuple[int, ...] = (8, 5, 4, 2),
                       dimension: int = 128) -> nn.Sequential:
    """EnCodec 24 kHz (causal SEANet) encoder with random weights: ``[B, 1, N] -> [B, 128, ceil(N / 320)]``."""
    ch = n_filters
    layers: list[nn.Module] = [_CausalConv1d(1, ch, 7)]
    for r in reversed(ratios):  # the encoder downsamples in the reverse of the decoder's order
        layers += [_SeanetResBlock(ch), nn.ELU(), _CausalConv1d(ch, 2 * ch, 2 * r, stride=r)]
        ch *= 2
    layers += [_SkipLSTM(ch), nn.ELU(), _CausalConv1d(ch, dimension, 7)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- quantizer encode

class RVQEncode(nn.Module):
    """Residual VQ encode path: latents ``[B, D, T]`` -> codes ``[B, n_q, T]``.

    With ``codebook_dim < D`` each stage projects in and out with 1x1 convs (DAC's factorized codes);
    with ``codebook_dim == D`` it searches in the latent space directly (EnCodec). The last stage's
    residual update is skipped: only its code leaves the device.
    """

    def __init__(self, dim: int, n_q: int, codebook_size: int = 1024, codebook_dim: int | None = None) -> None:
        super().__init__()
        cd = codebook_dim or dim
        proj = cd != dim
        self.in_proj = nn.ModuleList(nn.Conv1d(dim, cd, 1) if proj else nn.Identity() for _ in range(n_q))
        self.out_proj = nn.ModuleList(nn.Conv1d(cd, dim, 1) if proj else nn.Identity() for _ in range(n_q))
        self.codebooks = nn.Parameter(torch.randn(n_q, codebook_size, cd))

    def forward(self, z: Tensor) -> Tensor:
        residual, codes = z, []
        for i, (p_in, p_out) in enumerate(zip(self.in_proj, self.out_proj)):
            e = p_in(residual).transpose(1, 2)  # [B, T, cd]
            cb = self.codebooks[i]
            # argmin |e - c|^2 = argmax (e.c - |c|^2 / 2); |c|^2 is precomputable, so the matmul is the cost
            idx = (e @ cb.T - 0.5 * cb.pow(2).sum(1)).argmax(-1)  # [B, T]
            codes.append(idx)
            if i + 1 < len(self.in_proj):
                residual = residual - p_out(F.embedding(idx, cb).transpose(1, 2))
        return torch.stack(codes, 1)


def rvq_encoder(system: str, n_q: int) -> RVQEncode:
    """The quantizer of ``system`` ("dac-16k" or "encodec-24k") at ``n_q`` stages, random codebooks."""
    if system == "dac-16k":
        return RVQEncode(1024, n_q, 1024, codebook_dim=8)
    if system == "encodec-24k":
        return RVQEncode(128, n_q, 1024)
    raise AcomError(f"unknown system {system!r}; expected 'dac-16k' or 'encodec-24k'")


# ---------------------------------------------------------------- the table

_SYSTEMS = {  # system: (encoder factory, sample rate, hop, n_q values to report; the largest is the full RVQ)
    "dac-16k": (dac16k_encoder, 16000, 320, (1, 2, 4, 8, 12)),
    "encodec-24k": (encodec24k_encoder, 24000, 320, (2, 4, 8, 16, 32)),
}


@torch.no_grad()
def neural_codec_costs() -> list[dict]:
    """One row per codec and n_q: ``system, sample_rate, frame_rate, bitrate_bps, n_q, encoder_macs_per_s,
    quantizer_macs_per_s, device_macs_per_s`` (encoder + quantizer) and ``params`` (encoder only).

    Counted on one second of audio at the codec's rate, batch 1, on a single thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows: list[dict] = []
    try:
        for system, (make, sr, hop, n_qs) in _SYSTEMS.items():
            enc = make().eval()
            wave = torch.randn(1, 1, sr)
            enc_macs = count_macs(enc, wave)
            latents = enc(wave)
            frame_rate = sr / hop
            for n_q in n_qs:
                q_macs = count_macs(rvq_encoder(system, n_q).eval(), latents)
                rows.append({"system": system, "sample_rate": sr, "frame_rate": frame_rate,
                             "bitrate_bps": n_q * BITS_PER_CODE * frame_rate, "n_q": n_q,
                             "encoder_macs_per_s": enc_macs, "quantizer_macs_per_s": q_macs,
                             "device_macs_per_s": enc_macs + q_macs, "params": n_params(enc)})
    finally:
        torch.set_num_threads(threads)
    return rows
