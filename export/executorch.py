"""ExecuTorch with XNNPACK: int8 post-training quantization of the edge graph and lowering to a `.pte`.

Quantized: the Linear and Conv1d layers of the edge blocks (int8 activations, per-channel int8 weights), the
multiply-accumulates that dominate the cost. Left in float: the log-mel front-end (int8 raw audio loses range),
normalizations, attention softmax, and the RVQ nearest-codeword search (an int8 distance leaves ~half the codes
right). Measured on the shipped ASR model: quantizing every op the XNNPACK quantizer can annotate (also adds,
muls, matmuls) lowered code agreement with the quantized reference from 99.3% to 98.6% on the first stage
(a one-off development run on 29 demo train-subset windows; bench/export_boards.py measures the chosen setting).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from acom.errors import ExportError
from acom.export.graph import EdgeGraph

_QUANTIZED_MODULES = ("Linear", "Conv1d")


def _in_edge_layers(node: torch.fx.Node) -> bool:
    """Quantize this node? Only Linear/Conv1d calls inside the edge blocks (and their weights), and a ReLU that
    directly follows one: the quantizer annotates conv+ReLU as one pattern, and drops the conv when the filter
    refuses its ReLU (the classifier's TDNN blocks then stayed float)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:  # parameters and constants: decided by the op that uses them
        return node.op != "call_function"
    if node.op == "call_function" and "relu" in str(node.target) and node.args:
        src = node.args[0]
        return isinstance(src, torch.fx.Node) and len(src.users) == 1 and _in_edge_layers(src)
    path, cls = list(stack.values())[-1]
    return path.startswith("blocks") and cls.rsplit(".", 1)[-1] in _QUANTIZED_MODULES


def quantize(graph: EdgeGraph, example: torch.Tensor, calibration: Sequence[torch.Tensor]) -> torch.fx.GraphModule:
    """PT2E int8 (static, per-channel weights) of ``graph``, calibrated on real inputs shaped like ``example``.

    Returns the converted module: the PyTorch quantized reference the artifacts are checked against.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ExportError("int8 calibration needs at least one input window from the data set")
    ep = torch.export.export(graph.eval(), (example,))
    # set_module_name/set_module_type quantize nothing on torch.export graphs; a filter function works.
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    quantizer.set_filter_function(_in_edge_layers)
    prepared = prepare_pt2e(ep.module(check_guards=False), quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    return convert_pt2e(prepared)


def lower(quantized: torch.fx.GraphModule, example: torch.Tensor) -> bytes:
    """The `.pte` program (XNNPACK-delegated) of a quantized module, traced at the fixed window."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(quantized, (example,))
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    return bytes(program.buffer)


def delegated_ops(pte: bytes) -> dict[str, int]:
    """Operators the program runs outside XNNPACK (portable kernels): name -> count. Empty = fully delegated."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(pte)
    program = getattr(program, "program", program)
    out: dict[str, int] = {}
    for plan in program.execution_plan:
        for chain in plan.chains:
            for ins in chain.instructions:
                args = ins.instr_args
                if hasattr(args, "op_index"):
                    name = plan.operators[args.op_index].name
                    out[name] = out.get(name, 0) + 1
    return out


class PteRunner:
    """Runs a `.pte` in the ExecuTorch runtime (the same runtime and XNNPACK kernels a board runs)."""

    def __init__(self, pte: bytes) -> None:
        from executorch.runtime import Runtime

        # Keep the bytes and the Program alive as long as the method: the runtime reads the buffer in place and
        # the method points into the program (dropping either segfaulted a fresh process at the first execute).
        self._pte = pte
        self._program = Runtime.get().load_program(pte)
        self._method = self._program.load_method("forward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Input window (the graph's input shape) -> int32 codes ``[1, n_q, T]``."""
        return self._method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])[0].numpy()


def planned_memory(pte: bytes) -> dict[str, int]:
    """Bytes of the activation memory ExecuTorch plans for the program (its mutable buffers)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(pte)
    program = getattr(program, "program", program)
    return {"planned_memory_bytes": int(sum(sum(p.non_const_buffer_sizes) for p in program.execution_plan))}
