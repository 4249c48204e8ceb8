"""The PyTorch quantized reference as the integer runtimes compute it: biases on the int32 grid.

`convert_pt2e` leaves the bias of a quantized conv/linear in float, while XNNPACK stores it as int32 at scale
(input scale x weight scale of the output channel). The rounding is at most half a
step of that grid, about 0.002 of an output step, yet it tips values that sit on a rounding boundary; over the
ASR head's 22 int8 layers that moved 0.6 / 2.7 / 5% of the codes of RVQ stages 1 / 2 / 3 between edge.pte and
the reference (measured on 40 test-clean utterances; 0.03 / 0.26 / 0.46% once the reference's biases are on the
grid). The artifacts are lowered from the module as converted; only the reference they are checked against gets
the rounded biases. Used for edge.pte only: for LiteRT / TFLite Micro the same rounding did not model their
kernels (their first-stage agreement moved +0.2 / -0.2 points).
"""

from __future__ import annotations

import copy
import functools

import torch

_WEIGHTED = ("aten.conv1d.default", "aten.conv2d.default", "aten.linear.default")


def _attr(module: torch.nn.Module, target: str):
    return functools.reduce(getattr, target.split("."), module)


def _scale(module: torch.nn.Module, arg) -> torch.Tensor:
    return _attr(module, arg.target).double() if isinstance(arg, torch.fx.Node) else torch.tensor(float(arg)).double()


def snap_biases(quantized: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, int]:
    """(a copy of `quantized` whose int8 conv/linear biases are rounded to their int32 grid, how many were)."""
    ref = copy.deepcopy(quantized)
    done = 0
    for node in ref.graph.nodes:
        if node.op != "call_function" or str(node.target) not in _WEIGHTED or len(node.args) < 3:
            continue
        x, w, b = node.args[:3]
        if not (isinstance(b, torch.fx.Node) and b.op == "get_attr" and isinstance(x, torch.fx.Node)
                and isinstance(w, torch.fx.Node) and "dequantize" in str(x.target) and "dequantize" in str(w.target)):
            continue  # a float layer, or a bias computed in the graph
        grid = _scale(ref, x.args[1]) * _scale(ref, w.args[1])
        bias = _attr(ref, b.target)
        rounded = (torch.round(bias.double() / grid) * grid).to(bias.dtype)
        *path, leaf = b.target.split(".")
        owner = functools.reduce(getattr, path, ref)
        value = torch.nn.Parameter(rounded, requires_grad=False) if isinstance(bias, torch.nn.Parameter) else rounded
        setattr(owner, leaf, value)
        done += 1
    ref.recompile()
    return ref, done
