"""Multiply-accumulates per second of audio, counted by torch's FLOP counter on one second of input.

The front-end is reported two ways: as exported (the STFT as a fixed convolution: ~20 M MAC/s at 16 kHz)
and as a device computes it with a real FFT (CMSIS-DSP on Cortex-M, the FFT in an app on Linux). The
device budget uses the FFT figure plus the layers before the cut plus the quantizer.
"""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from acom.core.features import FrontEndConfig


def _macs(fn, *args) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() / 2


def frontend_fft_macs_per_s(cfg: FrontEndConfig) -> float:
    """Real-FFT front-end per second: window, a real FFT (N/2 complex points: ~2 N log2 N real MACs), power,
    and the mel filterbank counted by its nonzero weights (each triangle spans few bins)."""
    n = cfg.n_fft
    fft = 2 * n * math.log2(n)
    power = 2 * (n // 2 + 1)
    mel = 2 * (n // 2 + 1)  # triangles overlap pairwise: each bin feeds at most two bands
    return (cfg.win_length + fft + power + mel) * cfg.frame_rate


@torch.no_grad()
def edge_macs_per_second(edge) -> dict:
    """MAC/s of an EdgeEncoder's parts on one second of 16 kHz audio (+ one window, so frames divide evenly)."""
    cfg = edge.frontend.cfg
    wave = torch.zeros(1, cfg.sample_rate + cfg.win_length - cfg.hop_length)
    frontend_conv = _macs(edge.frontend, wave)
    feats = edge.frontend(wave)
    x = (feats - edge.feat_mean) / edge.feat_std

    def layers(x: torch.Tensor) -> torch.Tensor:
        for block in edge.blocks:
            x = block(x)
        return x

    layer_macs = _macs(layers, x)
    rvq_macs = _macs(lambda z: edge.rvq.encode(z, edge.n_q), layers(x))
    fft = frontend_fft_macs_per_s(cfg)
    return {"frontend_as_exported": frontend_conv, "frontend_fft": fft, "layers": layer_macs,
            "rvq_encode": rvq_macs, "total": fft + layer_macs + rvq_macs,
            "total_as_exported": frontend_conv + layer_macs + rvq_macs}


@torch.no_grad()
def block_costs(model, seconds: float = 1.0) -> list[dict]:
    """Per block of a ``BlockModel``, run on ``seconds`` of 16 kHz audio at once (a device's window: attention's
    cost grows with it) and given per second of audio: {"index", "block" (its class), "macs_per_s", "params",
    "out_channels", "out_frame_rate"} (the block's output [C, frames per second])."""
    cfg = model.frontend.cfg
    wave = torch.zeros(1, round(seconds * cfg.sample_rate) + cfg.win_length - cfg.hop_length)
    x = (model.frontend(wave) - model.feat_mean) / model.feat_std
    out = []
    for i, block in enumerate(model.blocks):
        with FlopCounterMode(display=False) as counter:
            y = block(x, None)
        out.append({"index": i, "block": type(block).__name__, "macs_per_s": counter.get_total_flops() / 2 / seconds,
                    "params": sum(p.numel() for p in block.parameters()), "out_channels": int(y.shape[1]),
                    "out_frame_rate": y.shape[-1] / seconds})
        x = y
    return out
