"""What one configuration of the edge graph (a cut and a number of RVQ stages) is made of, counted without lowering.

One float forward pass of what the exported graph (``acom.export.graph.EdgeGraph``) runs: the front end when
it is in the graph (Linux boards), blocks 0..L (each BatchNorm counted as the mul + add export makes of it), the
RVQ search (matmul + argmax per stage), over one board window, under a
``TorchFunctionMode`` that counts every torch call returning a tensor and the elements it reads and writes.
Those counts (operators, the largest layer's inputs + outputs, the attention scores over the window) and the
parameter counts are what ``export.footprint`` turns into flash and RAM.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from acom.core.rvq import ResidualVQ, RVQConfig
from acom.core.split import SplitModel


@dataclass(frozen=True, kw_only=True)
class Census:
    """Counts of one edge graph at one window (what the device holds and runs per window)."""

    ops: int
    """Torch calls that return a tensor in one forward pass (a proxy for the lowered graph's operators)."""
    peak_io: int
    """Largest inputs + output, in elements, of one call: the biggest layer's live activations."""
    largest_weight: int
    """Elements of the largest weight matrix (an NPU streams each layer's weights through SRAM buffers)."""
    written: int
    """Elements all calls write (every intermediate tensor of one window, before any memory is reused)."""
    int8_weights: int
    """Weight-matrix parameters of the layers (quantized to int8 per output channel by every exporter)."""
    channels: int
    """Output channels of those weight matrices (each holds a bias and a quantization scale)."""
    float_values: int
    """Values kept in float32: norm parameters, batch-norm scale/shift, the RVQ (float by design) and, with the
    front end in the graph, its DFT and mel matrices."""


class _Counter(TorchFunctionMode):
    """Counts torch calls that return a tensor and the largest (inputs + output) of one call, in elements."""

    def __init__(self) -> None:
        super().__init__()
        self.ops, self.peak_io, self.written = 0, 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.numel() > 0:
            reads = sum(a.numel() for a in _tensors(args) if a is not out)
            self.ops += 1
            self.written += out.numel()
            self.peak_io = max(self.peak_io, reads + out.numel())
        return out


def _tensors(args) -> list[torch.Tensor]:
    flat = []
    for a in args:
        if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter):
            flat.append(a)
        elif isinstance(a, (list, tuple)):
            flat.extend(_tensors(a))
    return flat


def split_at(split: SplitModel, cut: int) -> SplitModel:
    """``split`` itself at its own cut; at another cut, the same model with a new (untrained) RVQ of the same
    codebook sizes and code_dim (what retraining there would give, in shape)."""
    if cut == split.split_layer:
        return split
    cfg = split.rvq.config
    rvq = ResidualVQ(RVQConfig(dim=split.model.cut_dim(cut), codebook_sizes=cfg.codebook_sizes,
                               code_dim=cfg.code_dim, time_pool=cfg.time_pool))
    return SplitModel(split.model, cut, rvq).eval()


@torch.no_grad()
def census(split: SplitModel, n_q_max: int, window_samples: int, frontend: bool) -> dict[tuple[int, int], Census]:
    """Counts of the edge graph at every cut of ``split``'s model and every n_q in 1..``n_q_max``, on one window of
    ``window_samples`` samples: waveform ``[1, N]`` in (``frontend``) or normalized log-mel ``[1, n_mels, F]`` in.

    One pass through the blocks (counted cumulatively, cut by cut) and one RVQ search per (cut, n_q); the
    RVQ of a cut other than the checkpoint's is a new one of the same codebook sizes and code_dim.
    Returns {(cut, n_q): Census}.
    """
    model = split.model
    wave = torch.zeros(1, window_samples)
    counter = _Counter()
    with counter if frontend else contextlib.nullcontext():  # else the front end and the normalization are
        x = (model.frontend(wave) - model.feat_mean) / model.feat_std  # the firmware's
    int8, channels, floats = 0, 0, sum(b.numel() for b in model.frontend.buffers()) if frontend else 0
    out, largest = {}, 0
    for cut, block in enumerate(model.blocks):
        with counter:
            x = block(x)
        # each BatchNorm is exported as a mul and an add with a scale and a shift per channel (ChannelAffine)
        norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm1d)]
        counter.ops += len(norms)
        floats += sum(2 * m.num_features for m in norms)
        for p in block.parameters():
            if p.dim() >= 2:
                int8, channels, largest = int8 + p.numel(), channels + p.shape[0], max(largest, p.numel())
        floats += sum(p.numel() for m in block.modules() if not isinstance(m, nn.BatchNorm1d)
                      for p in m.parameters(recurse=False) if p.dim() < 2)
        rvq = split_at(split, cut).rvq
        for n_q in range(1, min(n_q_max, rvq.n_q) + 1):
            tail = _Counter()
            with tail:
                rvq.encode_int32(x, n_q)
            out[(cut, n_q)] = Census(ops=counter.ops + tail.ops, peak_io=max(counter.peak_io, tail.peak_io),
                                     written=counter.written + tail.written, largest_weight=largest,
                                     int8_weights=int8, channels=channels,
                                     float_values=floats + _rvq_values(rvq, n_q))
    return out


def _rvq_values(rvq: ResidualVQ, n_q: int) -> int:
    """Float values the graph's RVQ holds for ``n_q`` stages: each stage's in_proj and codebook, and the
    out_proj of every stage but the last (its residual is never needed)."""
    total = 0
    for i, stage in enumerate(rvq.stages[:n_q]):
        total += sum(p.numel() for p in stage.in_proj.parameters()) + stage.codebook.numel()
        if i + 1 < n_q:
            total += sum(p.numel() for p in stage.out_proj.parameters())
    return total
