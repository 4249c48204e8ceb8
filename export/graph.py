"""The edge graph that every exporter lowers: input window -> int32 codes.

Two forms, chosen by the board profile:
- ``frontend=True`` (Linux boards): waveform ``[1, N]`` float32 in [-1, 1] -> codes. The log-mel front-end
  stays in the graph and in float (the quantizer leaves it alone): int8 raw audio would lose ~40 dB of range.
- ``frontend=False`` (Cortex-M boards): normalized log-mel ``[1, n_mels, F]`` -> codes. The firmware computes
  log-mel with an FFT (CMSIS-DSP: ~1 M MAC/s against ~20 M for the STFT as a convolution) using the settings
  in the bundle manifest, and the int8 network starts from features whose range int8 holds well.

The window is fixed (static shapes: TFLite Micro and vela need them). Longer audio is coded window by window.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from acom.core.split import EdgeEncoder, SplitModel
from acom.errors import ExportError


@dataclass(frozen=True)
class GraphSpec:
    """Shape contract of one exported edge graph."""

    frontend: bool
    window_samples: int
    n_q: int
    input_shape: tuple[int, ...]
    codes_shape: tuple[int, int, int]


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel on ``[B, C, T]``: an inference-time BatchNorm1d written as mul + add.

    Exporters handle a standalone BatchNorm badly (XNNPACK turns it into a float convolution fed by a
    quantized tensor and refuses it); a mul and an add quantize and lower everywhere.
    """

    def __init__(self, bn: nn.BatchNorm1d) -> None:
        super().__init__()
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        self.register_buffer("scale", scale.reshape(1, -1, 1).clone())
        self.register_buffer("shift", (bn.bias.detach() - bn.running_mean * scale).reshape(1, -1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _replace_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm1d):
            setattr(module, name, ChannelAffine(child))
        else:
            _replace_batchnorm(child)


class EdgeGraph(EdgeEncoder):
    """``EdgeEncoder`` as the exporters lower it: front end optional, BatchNorm as mul + add, int32 codes.

    Waveform ``[1, N]`` (``frontend=True``) or normalized log-mel ``[1, n_mels, F]`` -> int32 ``[1, n_q, T]``.
    """

    def __init__(self, split: SplitModel, n_q: int | None = None, frontend: bool = True) -> None:
        if split.rvq is None:
            raise ExportError("the checkpoint has no quantizer at the cut (an uncut model): export needs a "
                              "split checkpoint from stage 2 of `acom train`")
        n_q = split.rvq.n_q if n_q is None else n_q
        if not 1 <= n_q <= split.rvq.n_q:
            raise ExportError(f"--n-q {n_q} is not allowed: this model has 1..{split.rvq.n_q} quantizer stages")
        super().__init__(split, n_q)
        self.use_frontend = frontend
        # A copy, so replacing BatchNorm (below) leaves the caller's model as it was.
        self.blocks = copy.deepcopy(self.blocks).eval()
        _replace_batchnorm(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``[1, N]`` (frontend) or normalized log-mel ``[1, n_mels, F]`` -> int32 ``[1, n_q, T]``."""
        if self.use_frontend:
            x = self.logmel(x)
        return self.rvq.encode_int32(self.cut(x), self.n_q)

    def example_input(self, window_samples: int) -> torch.Tensor:
        """A zero input of the exported shape for a window of ``window_samples`` samples."""
        wave = torch.zeros(1, window_samples)
        return wave if self.use_frontend else self.logmel(wave)

    def spec(self, window_samples: int) -> GraphSpec:
        x = self.example_input(window_samples)
        with torch.no_grad():
            codes = self(x)
        return GraphSpec(self.use_frontend, window_samples, self.n_q, tuple(x.shape), tuple(codes.shape))
