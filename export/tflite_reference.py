"""The PyTorch quantized reference in TFLite's integer arithmetic (LiteRT's builtin kernels, TFLite Micro).

``convert_pt2e`` yields a fake-quant graph: each int8 layer computes in float from dequantized inputs and rounds
once to its output grid. TFLite's integer kernels requantize an int32 accumulator with a fixed-point multiplier
``M = m * 2^e`` in two roundings: gemmlowp's SaturatingRoundingDoublingHighMul to an integer (ties up), then
RoundingDivideByPOT by ``-e`` (ties away from zero; LiteRT's matrix products run in ruy, whose shift rounds
ties up). The first rounding is on a grid of ``2^e`` output steps, so a value just below a half step can end on
it and round up: measured on the shipped classifier's first MUL (``e = -7``), 0.25% of its outputs, all of them
at ``x.498`` of a step. int8 ADD/SUB first rescale both inputs onto a 2^20 grid, with their own roundings.
Weights are quantized by the converter in float64; ``quantize_per_channel`` divides in float32, and 0.005% of
the ASR head's weights (within 1e-8 of a half step) round the other way.

``TfliteReference`` runs the converted graph with those roundings wherever a quantize node's producer is an
integer kernel (conv, linear, matmul, mul, add, sub, average pool, requantize; through pad, ReLU and reshapes);
other quantize nodes (after the float islands: front-end, layer norms, attention, SiLU) round as before, and
there the float kernels' last bits still differ (about one value in 10^4 lands on the other side of a step).
Written from the published kernel arithmetic (gemmlowp, TFLite reference kernels), not taken from the runtimes;
it is an independent computation of the quantized graph that the artifact must reproduce.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx

_Q = "quantized_decomposed.quantize_per_tensor.default"
_DQ = "quantized_decomposed.dequantize_per_tensor.default"
_DQ_CHANNEL = "quantized_decomposed.dequantize_per_channel.default"
_Q_CHANNEL = "quantized_decomposed.quantize_per_channel.default"
_LAYOUT = {"aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.permute.default",
           "aten.transpose.int", "aten.unsqueeze.default", "aten.squeeze.dim", "aten.squeeze.dims",
           "aten.clone.default", "aten.slice.Tensor", "aten.contiguous.default"}
_ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD/SUB input grid


def quantize_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's ``QuantizeMultiplier``: ``real = m * 2^shift`` with ``m`` a Q31 integer in [2^30, 2^31]."""
    frac, shift = np.frexp(np.asarray(real, dtype=np.float64))
    q = np.floor(frac * 2.0**31 + 0.5)  # std::round (the fractions are positive)
    carry = q == 2.0**31
    q, shift = np.where(carry, q / 2, q), np.where(carry, shift + 1, shift)
    tiny = shift < -31
    return np.where(tiny, 0, q).astype(np.int64), np.where(tiny, 0, shift).astype(np.int64)


def _rounding_high_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """gemmlowp SaturatingRoundingDoublingHighMul: ``round(a * b / 2^31)``, ties up (int64; its nudge of
    ``1 - 2^30`` for negative products rounds -1.5 to -1)."""
    ab = a * b
    nudge = torch.where(ab >= 0, torch.tensor(1 << 30), torch.tensor(1 - (1 << 30)))
    return torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")


def _rounding_shift_right(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """gemmlowp RoundingDivideByPOT: ``x / 2^exponent`` rounded half away from zero."""
    mask = (torch.tensor(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> exponent) + ((x & mask) > threshold).long()


def requantize(acc: torch.Tensor, real: np.ndarray, channel_dim: int | None = None, ties_up: bool = False
               ) -> torch.Tensor:
    """TFLite's ``MultiplyByQuantizedMultiplier(acc, M)`` (int64 in, int64 out); ``real`` per channel of
    ``channel_dim`` or a scalar. ``ties_up``: the last shift rounds ties toward +inf (ruy, which runs LiteRT's
    matrix products on CPUs) instead of away from zero (gemmlowp, TFLite Micro's reference kernels)."""
    q, shift = quantize_multiplier(real)
    shape = [1] * acc.dim()
    if channel_dim is not None:
        shape[channel_dim] = -1
    q, shift = torch.from_numpy(q).reshape(shape), torch.from_numpy(shift).reshape(shape)
    left, right = shift.clamp(min=0), (-shift).clamp(min=0)
    high = _rounding_high_mul(acc << left, q)
    if ties_up:
        return (high + ((torch.tensor(1) << right) >> 1)) >> right
    return _rounding_shift_right(high, right)


def quantize_constant(value: torch.Tensor, scale, zero, qmin: int, qmax: int, axis: int | None = None
                      ) -> torch.Tensor:
    """int values (int64) of a weight or constant as the converter quantizes it: in float64, half away from
    zero. In float32 (as ``quantize_per_channel`` does it), 0.005% of the ASR head's weights, those within 1e-8
    of a half step, round the other way and shift every output of their channel."""
    value, scale, zero = value.double(), torch.as_tensor(scale).double(), torch.as_tensor(zero).double()
    if axis is not None:
        shape = [1] * value.dim()
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    scaled = value / scale
    rounded = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
    return (rounded + zero).clamp(qmin, qmax).long()


class TfliteReference(fx.Interpreter):
    """Runs a ``convert_pt2e`` graph with TFLite's integer requantization (see the module docstring)."""

    def __init__(self, gm: fx.GraphModule, kernels: str = "tflm") -> None:
        """``kernels``: "tflm" (TFLite Micro's reference kernels) or "litert" (LiteRT's builtin CPU kernels,
        whose matrix products run in ruy)."""
        if kernels not in ("tflm", "litert"):
            raise ValueError(f"kernels must be 'tflm' or 'litert', got {kernels!r}")
        super().__init__(gm, garbage_collect_values=False)  # the requantization reads producers' inputs
        self.ints: dict[fx.Node, tuple] = {}  # dequantize node -> (int64 values, scale(s), zero point(s))
        self.emulated = 0
        # LiteRT's conv, depthwise conv, fully connected and batch matmul kernels round the last ties up
        # (measured: every int8 tensor of the ASR head then matches); its MUL and ADD round them as TFLM does.
        self.products_ties_up = kernels == "litert"

    def run(self, *args, **kwargs):
        self.ints, self.emulated = {}, 0
        with torch.no_grad():
            return super().run(*args, **kwargs)

    def _arg(self, a):
        return self.env[a] if isinstance(a, fx.Node) else a

    def run_node(self, n: fx.Node):
        source = n.args[0] if n.args else None
        if n.op == "call_function" and str(n.target) in (_Q, _Q_CHANNEL) and isinstance(source, fx.Node) \
                and source.op == "get_attr":
            return self._constant(n)
        if n.op == "call_function" and str(n.target) == _Q and isinstance(n.args[0], fx.Node):
            out = self._emulate(n)
            if out is not None:
                self.emulated += 1
                return out
        out = super().run_node(n)
        if n.op == "call_function" and str(n.target) in (_DQ, _DQ_CHANNEL):
            args = [self._arg(a) for a in n.args]
            scale, zero = (torch.as_tensor(args[1], dtype=torch.float64), torch.as_tensor(args[2]).long())
            self.ints[n] = (args[0].long(), scale, zero, args[3] if str(n.target) == _DQ_CHANNEL else None)
        return out

    def _constant(self, q: fx.Node) -> torch.Tensor:
        """A weight or constant quantized as the converter does it (see ``quantize_constant``)."""
        args = [self._arg(a) for a in q.args]
        axis = args[3] if str(q.target) == _Q_CHANNEL else None
        return quantize_constant(args[0], args[1], args[2], args[-3], args[-2], axis).to(args[-1])

    def _emulate(self, q: fx.Node) -> torch.Tensor | None:
        """The int8 output of ``q`` as TFLite computes it, or None where its producer is not an integer kernel."""
        scale, zero, qmin, qmax = (float(self._arg(a)) for a in q.args[1:5])
        chain, p = [], q.args[0]
        while p.op == "call_function" and (str(p.target) in _LAYOUT or str(p.target) in (
                "aten.relu.default", "aten.pad.default", "aten.constant_pad_nd.default", "aten.dropout.default")):
            chain.append(p)
            p = p.args[0]
            if not isinstance(p, fx.Node):
                return None
        out = self._integer_op(p, scale, int(zero))
        if out is None:
            return None
        out = out.clamp(int(qmin), int(qmax))
        for t in reversed(chain):  # re-apply the fused activation / padding / layout ops to the integers
            name = str(t.target)
            if name == "aten.relu.default":
                out = out.clamp(min=int(zero))
            elif name == "aten.dropout.default":
                pass
            elif name in ("aten.pad.default", "aten.constant_pad_nd.default"):
                rest = list(t.args[2:]) if name == "aten.pad.default" else ["constant", *t.args[2:]]
                if rest[:1] not in ([], ["constant"]) or any(rest[1:2]):
                    return None  # only zero padding is the zero point
                out = F.pad(out, list(t.args[1]), value=int(zero))
            else:
                out = t.target(out, *[self._arg(a) for a in t.args[1:]], **t.kwargs)
        return out.to(self._arg(q.args[5]) if len(q.args) > 5 else torch.int8)

    def _centered(self, node) -> tuple[torch.Tensor, torch.Tensor, object] | None:
        """(int values minus zero point, scale, channel axis) of a dequantized input, or None."""
        if not isinstance(node, fx.Node) or node not in self.ints:
            return None
        ints, scale, zero, axis = self.ints[node]
        if axis is not None:
            shape = [1] * ints.dim()
            shape[axis] = -1
            return ints - zero.reshape(shape), scale, axis
        return ints - zero, scale, None

    def _integer_op(self, p: fx.Node, out_scale: float, out_zero: int) -> torch.Tensor | None:
        name = str(p.target)
        if name == _DQ:  # an int8 -> int8 QUANTIZE (requantization to another scale)
            x = self._centered(p)
            return None if x is None else requantize(x[0], np.array(float(x[1]) / out_scale)) + out_zero
        if name in ("aten.conv1d.default", "aten.conv2d.default", "aten.linear.default"):
            x, w = self._centered(p.args[0]), self._centered(p.args[1])
            if x is None or w is None or x[2] is not None or (w[2] not in (None, 0)):
                return None
            eff = (x[1] * w[1]).reshape(-1)  # accumulator scale, per output channel
            if name == "aten.linear.default":
                acc = x[0].double() @ w[0].double().T
                channel_dim = acc.dim() - 1
            else:
                conv = F.conv1d if "conv1d" in name else F.conv2d
                acc = conv(x[0].double(), w[0].double(), None, *[self._arg(a) for a in p.args[3:]])
                channel_dim = 1
            acc = acc.round().long()  # exact: sums of int8 products
            bias = self._arg(p.args[2]) if len(p.args) > 2 else None
            shape = [1] * acc.dim()
            shape[channel_dim] = -1
            if bias is not None:  # the converter stores the bias as int32 on the accumulator grid
                acc = acc + torch.round(bias.double().reshape(-1) / eff).long().reshape(shape)
            real = (eff / out_scale).numpy()
            return requantize(acc, real, channel_dim if real.size > 1 else None, self.products_ties_up) + out_zero
        if name in ("aten.matmul.default", "aten.bmm.default", "aten.mul.Tensor"):
            a, b = self._centered(p.args[0]), self._centered(p.args[1])
            if a is None or b is None or a[2] is not None or b[2] is not None:
                return None
            acc = (a[0] @ b[0]) if name != "aten.mul.Tensor" else a[0] * b[0]
            ties_up = self.products_ties_up and name != "aten.mul.Tensor"
            return requantize(acc, np.array(float(a[1] * b[1]) / out_scale), None, ties_up) + out_zero
        if name in ("aten.add.Tensor", "aten.sub.Tensor"):
            a, b = self._centered(p.args[0]), self._centered(p.args[1])
            if a is None or b is None or a[2] is not None or b[2] is not None or p.kwargs.get("alpha", 1) != 1:
                return None
            twice_max = 2 * max(float(a[1]), float(b[1]))
            sa = requantize(a[0] << _ADD_LEFT_SHIFT, np.array(float(a[1]) / twice_max))
            sb = requantize(b[0] << _ADD_LEFT_SHIFT, np.array(float(b[1]) / twice_max))
            total = sa + sb if name == "aten.add.Tensor" else sa - sb
            return requantize(total, np.array(twice_max / ((1 << _ADD_LEFT_SHIFT) * out_scale))) + out_zero
        if name == "aten.avg_pool1d.default":
            x = self._centered(p.args[0])
            if x is None or x[2] is not None or abs(float(x[1]) - out_scale) > 1e-12 * out_scale:
                return None
            kernel = p.args[1]
            kernel = kernel[0] if isinstance(kernel, (list, tuple)) else kernel
            stride = p.args[2] if len(p.args) > 2 and p.args[2] else kernel
            stride = stride[0] if isinstance(stride, (list, tuple)) else stride
            if len(p.args) > 3 and any(p.args[3]):
                return None  # padded pooling: TFLite counts only the real inputs
            raw = x[0] + self.ints[p.args[0]][2]  # TFLite sums the stored int8 values, zero point included
            total = F.avg_pool1d(raw.double(), kernel, stride).mul(kernel).round().long()
            half = kernel // 2
            return torch.div(total + torch.where(total > 0, half, -half), kernel, rounding_mode="trunc")
        return None


def tflite_runner(gm: fx.GraphModule, kernels: str = "tflm"):
    """A runner (list of float inputs -> list of int32 codes) of ``gm`` in TFLite's integer arithmetic."""
    interp = TfliteReference(gm, kernels)

    def run(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [interp.run(torch.from_numpy(np.asarray(x))).numpy() for x in xs]

    return run
