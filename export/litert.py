"""int8 LiteRT lowering of the edge graph: one ``.tflite`` for LiteRT (Linux boards), TFLite Micro and vela.

Static post-training quantization with PT2E and litert-torch's quantizer: int8 weights per output channel,
int8 activations per tensor from histograms of real calibration inputs. Changes to what that quantizer
does alone, measured on the shipped models:

- **The RVQ stays float.** Its search is a dot product with 64 unit codewords followed by argmax; quantizing
  the projection or the scores to int8 flips near-ties (int8 scores leave ~47% of codes right). The RVQ is
  ~1% of the MACs, so it runs in float (TFLM's float reference kernels; on an Ethos-U it is the CPU tail).
- **Residual adds and subtractions are int8.** The quantizer finds adds through ``source_fn_stack``, which
  torch.export no longer records, so without this every residual is a DEQUANTIZE, float ADD, QUANTIZE.
- **avg_pool1d shares its input's quantization** (TFLite's int8 AVERAGE_POOL_2D requires it), so the time
  pooling at the cut stays int8 instead of a float island.
- **The feature normalization stays float with the front-end** (Linux boards): quantized, the division by the
  per-band std became an int8 MUL by an int8 constant and moved 6.5% of the first layer's inputs a step.
- **GELU is rewritten as ``x * sigmoid(...)``** (its tanh form): TFLite Micro has no GELU kernel.

The model's input is int8 (the converter removes the first QUANTIZE): callers quantize with the scale and
zero point that ``input_quantization`` reads; the output is the int32 codes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import fx

from acom.errors import ExportError
from acom.export.graph import EdgeGraph

_ATEN = torch.ops.aten
_ELEMENTWISE = (_ATEN.add.Tensor, _ATEN.sub.Tensor)
HISTOGRAM_BINS = 256
"""Bins of the activation histograms: the default 2048 makes the range search ~25 s per model for no
measured gain in code agreement."""


def _gelu_without_gelu_op(gm: fx.GraphModule) -> None:
    """Rewrite, in place, each GELU as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))``.

    TFLite Micro has no GELU kernel, and the converter fuses both the erf and the tanh form into one; this
    equal form (0.5 (1 + tanh(z)) = sigmoid(2z)) lowers to LOGISTIC, MUL and ADD, which TFLM has. It differs
    from the erf form by < 1e-3, far below the int8 step.
    """
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != _ATEN.gelu.default:
            continue
        x = node.args[0]
        with graph.inserting_before(node):
            cube = graph.call_function(_ATEN.mul.Tensor, (graph.call_function(_ATEN.mul.Tensor, (x, x)), x))
            inner = graph.call_function(_ATEN.add.Tensor, (x, graph.call_function(_ATEN.mul.Tensor, (cube, 0.044715))))
            gate = graph.call_function(_ATEN.sigmoid.default, (graph.call_function(
                _ATEN.mul.Tensor, (inner, 2.0 * math.sqrt(2.0 / math.pi))),))
            out = graph.call_function(_ATEN.mul.Tensor, (x, gate))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    graph.lint()
    gm.recompile()


def edge_quantizer():
    """litert-torch's PT2E quantizer: static int8, per-channel weights, the RVQ and front-end left float, int8
    pooling and int8 residual adds/subtractions.

    The adds are int8 on every board (microcontrollers and NPUs want no float islands). They used to stay float
    on Linux boards, where that agreed more with the fake-quant reference; against the reference in TFLite's
    integer arithmetic (export/tflite_reference.py) the int8 adds agree fully, while float adds leave the
    converter to requantize the residual stream where the PyTorch graph does not (classifier, LiteRT: 98.6 /
    96.2% of codes per stage with float adds).
    """
    import dataclasses

    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.observer import HistogramObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    class EdgeQuantizer(pq.PT2EQuantizer):
        def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
            model = super().annotate(model)
            act = self.global_config.output_activation
            rvq = _rvq_nodes(model.graph)
            frontend = _frontend_nodes(model.graph)
            for node in model.graph.nodes:  # topological: an input is annotated before its users
                if node in rvq or node in frontend:
                    node.meta.pop("quantization_annotation", None)
                elif node.target in _ELEMENTWISE and not _has_output_qspec(node) and all(
                        _is_float(a) for a in (node, *node.args[:2])):
                    # The base annotator finds adds by source_fn_stack, which torch.export no longer records.
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={a: act for a in node.args[:2]}, output_qspec=act, _annotated=True)
                elif node.target == _ATEN.avg_pool1d.default and _has_output_qspec(node.args[0]):
                    shared = SharedQuantizationSpec(node.args[0])
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={node.args[0]: shared}, output_qspec=shared, _annotated=True)
            return model

    base = pq.get_symmetric_quantization_config(is_per_channel=True)
    act = dataclasses.replace(base.input_activation, observer_or_fake_quant_ctr=HistogramObserver.with_args(
        eps=2**-12, bins=HISTOGRAM_BINS))
    return EdgeQuantizer().set_global(dataclasses.replace(base, input_activation=act, output_activation=act))


def _rvq_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes traced inside the ``rvq`` module and every node that depends on one.

    nn_module_stack marks only submodule calls (the projections); the residual subtraction and the search
    run in ``encode_int32`` itself, so the region is closed over users.
    """
    region: set[fx.Node] = set()
    for node in graph.nodes:  # topological order
        paths = [p for p, _ in node.meta.get("nn_module_stack", {}).values()]
        if any(p == "rvq" or p.startswith("rvq.") for p in paths) or any(a in region for a in node.all_input_nodes):
            region.add(node)
    return region


def _frontend_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes of the log-mel front-end and of the feature normalization after it (in the graph on Linux
    boards): left float, since int8 raw audio would lose ~40 dB of range. Its output is quantized where the
    first int8 layer reads it. The normalization stays float too (why: the module docstring)."""
    region: set[fx.Node] = set()
    for node in graph.nodes:  # topological order
        paths = [p for p, _ in node.meta.get("nn_module_stack", {}).values()]
        inputs = node.all_input_nodes
        if any(p == "frontend" or p.startswith("frontend.") for p in paths) or (
                node.op == "call_function" and any(a in region for a in inputs)
                and all(a in region or _is_norm_buffer(a) for a in inputs)):
            region.add(node)
    return region


def _is_norm_buffer(node: fx.Node) -> bool:
    return node.op == "get_attr" and node.target in ("feat_mean", "feat_std")


def _is_float(node: object) -> bool:
    """A node whose value is a float tensor (not a constant, not the int64 positions of the attention mask)."""
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return isinstance(val, torch.Tensor) and val.dtype.is_floating_point


def _has_output_qspec(node: object) -> bool:
    ann = node.meta.get("quantization_annotation") if isinstance(node, fx.Node) else None
    return ann is not None and ann.output_qspec is not None


def quantize(graph: EdgeGraph, example: torch.Tensor, calibration: list[torch.Tensor]) -> fx.GraphModule:
    """PT2E-quantized copy of ``graph`` (fake-quant torch reference: input ``[1, n_mels, F]`` -> int32 codes).

    ``calibration``: real inputs of the exported shape; their activations set the int8 ranges.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ExportError("int8 calibration needs at least one real input window, got none")
    bad = [tuple(x.shape) for x in calibration if x.shape != example.shape]
    if bad:
        raise ExportError(f"calibration inputs must have the exported shape {tuple(example.shape)}, got {bad}")
    gm = torch.export.export(graph.eval(), (example,)).module()
    _gelu_without_gelu_op(gm)
    gm = prepare_pt2e(gm, edge_quantizer())
    with torch.no_grad():
        for x in calibration:
            gm(x)
    gm = convert_pt2e(gm, fold_quantize=False)
    move_exported_model_to_eval(gm)
    gm.training = False  # the flag litert-torch checks; move_exported_model_to_eval only swaps the ops
    return gm


def quantize_and_convert(graph: EdgeGraph, example: torch.Tensor, calibration: list[torch.Tensor]) -> bytes:
    """int8 ``.tflite`` flatbuffer of ``graph``: int8 input ``[1, n_mels, F]`` -> int32 codes ``[1, n_q, T]``."""
    return convert(quantize(graph, example, calibration), example)


def convert(converted: fx.GraphModule, example: torch.Tensor) -> bytes:
    """``.tflite`` flatbuffer of a graph that ``quantize`` returned (int8 in, int32 codes out)."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    config = QuantConfig(pt2e_quantizer=edge_quantizer())  # its mode (static) is what the converter reads
    model = litert_torch.convert(converted, (example,), quant_config=config)
    return bytes(model.model_content())


def input_quantization(model: bytes) -> tuple[float, int] | None:
    """(scale, zero point) of the model's input, or None for a float input."""
    sub = _subgraph(model)
    q = sub.tensors[sub.inputs[0]].quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


def to_model_input(model: bytes, x: np.ndarray) -> np.ndarray:
    """Float input ``[1, n_mels, F]`` in the model's input type (int8 with its scale, or float32)."""
    q = input_quantization(model)
    if q is None:
        return x.astype(np.float32)
    scale, zero = q
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def run_litert(model: bytes, inputs: list[np.ndarray], xnnpack: bool = False) -> list[np.ndarray]:
    """Codes int32 ``[1, n_q, T]`` for each float input ``[1, n_mels, F]``, with the LiteRT interpreter.

    By default the builtin kernels run: TFLite Micro's integer arithmetic except that their matrix products
    (ruy) round the last step's ties up rather than away from zero, which shows only on negative outputs (the
    classifier's conv+ReLU layers match TFLM bit for bit; the Conformer's do not). ``xnnpack=True`` runs what a
    Linux board gets by default; its kernels round once, in float (0.5% of the classifier's codes differ).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    codes = []
    for x in inputs:
        interp.set_tensor(inp["index"], to_model_input(model, np.asarray(x)).reshape(inp["shape"]))
        interp.invoke()
        codes.append(interp.get_tensor(out["index"]).copy())
    return codes


def tflite_schema():
    """The generated flatbuffer schema module of the installed LiteRT (``ModelT``, ``BuiltinOperator``...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _subgraph(model: bytes):
    return tflite_schema().ModelT.InitFromPackedBuf(model, 0).subgraphs[0]


def tflite_ops(model: bytes) -> list[str]:
    """Builtin operator names of the main subgraph, in execution order (e.g. ``CONV_2D``, ``ARG_MAX``)."""
    schema = tflite_schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    ops = []
    for op in m.subgraphs[0].operators:
        code = m.operatorCodes[op.opcodeIndex]
        # Codes above 127 live in builtinCode only; older files only fill the deprecated int8 field.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        ops.append(names.get(builtin, "CUSTOM") if builtin != schema.BuiltinOperator.CUSTOM
                   else code.customCode.decode())
    return ops
