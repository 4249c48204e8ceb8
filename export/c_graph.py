"""An int8 ``.tflite`` edge graph as C: one call of firmware_host/c/acom_kernels.c per operator.

The firmware then runs the graph without an interpreter: every shape, broadcast stride, transpose order,
padding and fixed-point multiplier is worked out here, in TFLite's own formulas (``QuantizeMultiplier`` on
double-precision scales, int8 ADD's 2^20 input grid, activation ranges on the output grid), so the C only
loops. ``graph_c(model)`` returns the C source of ``int acom_graph_run(const int8_t *input, int32_t *codes)``;
operators outside the set the exporter's microcontroller graphs use raise ExportError naming them.
"""

from __future__ import annotations

import re

import numpy as np

from acom.errors import ExportError

_CTYPE = {"INT8": "int8_t", "INT32": "int32_t", "FLOAT32": "float", "BOOL": "uint8_t"}
_NP = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32, "BOOL": np.bool_}
_FLOAT_BINARY = {"ADD": "ACOM_F_ADD", "SUB": "ACOM_F_SUB", "MUL": "ACOM_F_MUL", "DIV": "ACOM_F_DIV",
                 "MAXIMUM": "ACOM_F_MAX", "MINIMUM": "ACOM_F_MIN", "SQUARED_DIFFERENCE": "ACOM_F_SQDIFF"}
_FLOAT_UNARY = {"ABS": "ACOM_F_ABS", "SQRT": "ACOM_F_SQRT", "RSQRT": "ACOM_F_RSQRT", "LOGISTIC": "ACOM_F_LOGISTIC"}
_FLT_MAX = "3.402823466e+38f"


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: ``real = m * 2^shift / 2^31`` with m a Q31 integer (0, 0 for tiny values)."""
    if real <= 0.0:  # scales are positive: a zero multiplier is TFLite's (0, 0)
        return 0, 0
    frac, shift = np.frexp(np.float64(real))
    q = int(np.floor(frac * 2.0**31 + 0.5))  # std::round (half away from zero; frac is positive)
    if q == 1 << 31:
        q, shift = q // 2, shift + 1
    if shift < -31:
        return 0, 0
    return q, int(shift)


class _Graph:
    """The parsed model and the C text being written."""

    def __init__(self, model: bytes) -> None:
        s = _schema()
        self.m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(model, 0))
        if len(self.m.subgraphs) != 1:
            raise ExportError(f"the graph has {len(self.m.subgraphs)} subgraphs: the C graph runs one")
        self.g = self.m.subgraphs[0]
        self.types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
        self.ops = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        self.decls: list[str] = []
        self.body: list[str] = []

    def type(self, i: int) -> str:
        t = self.types[self.g.tensors[i].type]
        if t not in _CTYPE:
            raise ExportError(f"tensor {self.name(i)!r} of type {t}: the C graph handles {', '.join(_CTYPE)}")
        return t

    def name(self, i: int) -> str:
        n = self.g.tensors[i].name
        return n.decode() if isinstance(n, bytes) else str(n)

    def shape(self, i: int) -> list[int]:
        return [int(d) for d in (self.g.tensors[i].shape if self.g.tensors[i].shape is not None else [])]

    def shape4(self, i: int) -> list[int]:
        s = self.shape(i)
        if len(s) > 4:
            raise ExportError(f"tensor {self.name(i)!r} has {len(s)} dimensions: at most 4")
        return [1] * (4 - len(s)) + s

    def const(self, i: int) -> np.ndarray | None:
        data = self.m.buffers[self.g.tensors[i].buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(bytes(bytearray(data)), dtype=_NP[self.type(i)]).reshape(self.shape(i))

    def quant(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.g.tensors[i].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise ExportError(f"int8 tensor {self.name(i)!r} has no quantization parameters")
        # scales are float32 in the file; TFLite widens them to double before dividing
        return np.asarray(q.scale, dtype=np.float32).astype(np.float64), np.asarray(q.zeroPoint, dtype=np.int64)

    def scale_zp(self, i: int) -> tuple[float, int]:
        s, z = self.quant(i)
        return float(s[0]), int(z[0])

    def ref(self, i: int) -> str:
        return f"t{i}"

    def nbytes(self, i: int) -> int:
        return max(1, int(np.prod(self.shape(i)))) * np.dtype(_NP[self.type(i)]).itemsize

    def declare(self, used: set[int], live: dict[int, tuple[int, int]]) -> int:
        """Declare the tensors the calls use (shape, permutation and axis constants were used up here): constants
        as arrays, the others at offsets of one arena, shared by tensors whose lives (first write to last read,
        in operator order) do not overlap. Returns the arena's bytes."""
        placed: list[tuple[int, int, int, int]] = []  # offset, bytes, first, last
        for i in sorted(used, key=lambda i: -self.nbytes(i)):  # largest first: less fragmentation
            t = self.type(i)
            c = self.const(i)
            if c is not None:
                values = ",".join(_c_number(v, t) for v in c.ravel()) or "0"
                self.decls.append(f"static const {_CTYPE[t]} t{i}[{max(1, c.size)}] = {{{values}}};")
                continue
            first, last = live[i]
            size, offset = -(-self.nbytes(i) // 8) * 8, 0
            for o, b, f, la in sorted(p for p in placed if not (p[3] < first or last < p[2])):
                if offset + size <= o:
                    break
                offset = max(offset, o + b)
            placed.append((offset, size, first, last))
            self.decls.append(f"#define t{i} (({_CTYPE[t]} *)(arena + {offset}))")
        return max((o + b for o, b, _, _ in placed), default=8)

    def call(self, text: str) -> None:
        self.body.append(f"    {text}")


def _c_number(v, t: str) -> str:
    if t == "FLOAT32":
        return float(np.float32(v)).hex() + "f"  # hexadecimal: the float's exact bits
    return str(int(v))


def _c_ints(values) -> str:
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _strides(shape: list[int]) -> list[int]:
    out, acc = [0] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        out[k], acc = acc, acc * shape[k]
    return out


def _broadcast_strides(shape: list[int], out: list[int]) -> list[int]:
    return [s if d == o else 0 for s, d, o in zip(_strides(shape), shape, out)]


def _copy4(out_shape: list[int], strides: list[int]) -> tuple[list[int], list[int]]:
    """A strided copy of any rank as the kernels' 4-D one: dimensions of size 1 dropped (they add nothing),
    leading 1s added."""
    kept = [(d, s) for d, s in zip(out_shape, strides) if d != 1]
    if len(kept) > 4:
        raise ExportError(f"a copy over {len(kept)} dimensions larger than 1: the C kernels take 4")
    kept = [(1, 0)] * (4 - len(kept)) + kept
    return [d for d, _ in kept], [s for _, s in kept]


def _reduction(shape: list[int], axes: list[int]) -> tuple[int, int, int]:
    """(outer, axis, inner) of a reduction over `axes` of `shape`, which must be one axis once dimensions of
    size 1 are left out."""
    axes = sorted({a % len(shape) for a in axes})
    real = [a for a in axes if shape[a] != 1]
    if len(real) > 1:
        raise ExportError(f"a reduction over axes {axes} of {shape}: the C kernels reduce one")
    k = real[0] if real else axes[0]
    return int(np.prod(shape[:k])), shape[k], int(np.prod(shape[k + 1:]))


def _multipliers(g: "_Graph", real: np.ndarray, n: int) -> str:
    """Declare the fixed-point multipliers and shifts of `real` (per channel, or one broadcast to `n`); the two
    arrays' names."""
    pairs = [quantize_multiplier(float(r)) for r in np.broadcast_to(np.atleast_1d(real), (n,))]
    idx = len(g.decls)
    g.decls.append(f"static const int32_t m{idx}[{len(pairs)}] = {_c_ints(m for m, _ in pairs)};")
    g.decls.append(f"static const int32_t s{idx}[{len(pairs)}] = {_c_ints(s for _, s in pairs)};")
    return f"m{idx}, s{idx}"


def _folded_bias(g: "_Graph", bias: int | None, weights: np.ndarray, in_offset: int) -> str:
    """Declare bias + in_offset * (the sum of each output channel's weights), in int32 as TFLite's accumulator
    wraps (``weights``: [out_c, taps]); the array's name. The int8 kernels then sum w x alone: sum w (x + offset)
    + bias is the same integer."""
    total = weights.astype(np.int64).sum(axis=1) * in_offset
    if bias is not None:
        total = total + g.const(bias).astype(np.int64).ravel()
    wrapped = (total + 2**31) % 2**32 - 2**31
    idx = len(g.decls)
    g.decls.append(f"static const int32_t b{idx}[{len(wrapped)}] = {_c_ints(wrapped)};")
    return f"b{idx}"


def _act_range_i8(act: int, scale: float, zp: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8 (NONE 0, RELU 1, RELU6 3)."""
    if act == 0:
        return -128, 127
    if act == 1:
        return max(-128, zp), 127
    if act == 3:
        return max(-128, zp), min(127, zp + int(np.floor(6.0 / scale + 0.5)))
    raise ExportError(f"fused activation {act}: the C graph handles none, ReLU and ReLU6")


def _act_range_f32(act: int) -> tuple[str, str]:
    ranges = {0: (f"-{_FLT_MAX}", _FLT_MAX), 1: ("0.0f", _FLT_MAX), 3: ("0.0f", "6.0f")}
    if act not in ranges:
        raise ExportError(f"fused activation {act}: the C graph handles none, ReLU and ReLU6")
    return ranges[act]


def _options(op) -> dict:
    return dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}


def _lower(g: _Graph, name: str, op) -> None:  # noqa: C901 (one branch per TFLite operator)
    ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
    o, a = outs[0], ins[0]
    opt = _options(op)
    n_out = int(np.prod(g.shape(o)))
    t_in, t_out = g.type(a), g.type(o)
    if name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        g.call(f"memcpy(t{o}, t{a}, {g.nbytes(o)});")
    elif name in ("TRANSPOSE", "SLICE"):
        st = _strides(g.shape(a))
        base = 0
        if name == "TRANSPOSE":
            strides = [st[int(p)] for p in g.const(ins[1])]
        else:
            begin = [int(b) for b in g.const(ins[1])]
            strides, base = st, int(np.dot(begin, st))
        shape, strides = _copy4(g.shape(o), strides)
        g.call(f"acom_strided_copy(t{a} + {base}, {np.dtype(_NP[t_in]).itemsize}, (const int32_t[4]){_c_ints(shape)}, "
               f"(const int32_t[4]){_c_ints(strides)}, t{o});")
    elif name == "PAD":
        if t_in != "INT8":
            raise ExportError("PAD of a float tensor: the C graph pads int8 only")
        pads = g.const(ins[1]).reshape(-1, 2)
        before = [0] * (4 - len(pads)) + [int(p) for p in pads[:, 0]]
        g.call(f"acom_pad_i8(t{a}, (const int32_t[4]){_c_ints(g.shape4(a))}, (const int32_t[4]){_c_ints(before)}, "
               f"(const int32_t[4]){_c_ints(g.shape4(o))}, {g.scale_zp(o)[1]}, t{o});")
    elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _conv(g, name, opt, ins, o)
    elif name in ("MUL", "ADD") and t_out == "INT8":
        b = ins[1]
        (sa, za), (sb, zb), (so, zo) = g.scale_zp(a), g.scale_zp(b), g.scale_zp(o)
        lo, hi = _act_range_i8(opt.get("fusedActivationFunction", 0), so, zo)
        shape = g.shape4(o)
        sa4, sb4 = _broadcast_strides(g.shape4(a), shape), _broadcast_strides(g.shape4(b), shape)
        head = f"(const int32_t[4]){_c_ints(shape)}"
        if name == "MUL":
            m, sh = quantize_multiplier(sa * sb / so)
            g.call(f"acom_mul_i8({head}, t{a}, (const int32_t[4]){_c_ints(sa4)}, {-za}, t{b}, "
                   f"(const int32_t[4]){_c_ints(sb4)}, {-zb}, {m}, {sh}, {zo}, {lo}, {hi}, t{o});")
        else:
            twice = 2.0 * max(sa, sb)
            (ma, sha), (mb, shb) = quantize_multiplier(sa / twice), quantize_multiplier(sb / twice)
            m, sh = quantize_multiplier(twice / ((1 << 20) * so))
            g.call(f"acom_add_i8({head}, t{a}, (const int32_t[4]){_c_ints(sa4)}, {-za}, {ma}, {sha}, t{b}, "
                   f"(const int32_t[4]){_c_ints(sb4)}, {-zb}, {mb}, {shb}, {m}, {sh}, {zo}, {lo}, {hi}, t{o});")
    elif name in _FLOAT_BINARY and t_out == "FLOAT32":
        if opt.get("fusedActivationFunction", 0):
            raise ExportError(f"float {name} with a fused activation: not in the C graph")
        b, shape = ins[1], g.shape4(o)
        g.call(f"acom_binary_f32({_FLOAT_BINARY[name]}, (const int32_t[4]){_c_ints(shape)}, t{a}, (const int32_t[4])"
               f"{_c_ints(_broadcast_strides(g.shape4(a), shape))}, t{b}, (const int32_t[4])"
               f"{_c_ints(_broadcast_strides(g.shape4(b), shape))}, t{o});")
    elif name in _FLOAT_UNARY and t_out == "FLOAT32":
        g.call(f"acom_unary_f32({_FLOAT_UNARY[name]}, {n_out}, t{a}, t{o});")
    elif name == "QUANTIZE" and t_in == "FLOAT32" and t_out == "INT8":
        s, z = g.scale_zp(o)
        g.call(f"acom_quantize_f32({n_out}, t{a}, {float(np.float32(s)).hex()}f, {z}, t{o});")
    elif name == "SELECT_V2" and t_out == "FLOAT32":
        c, x1, y1, shape = ins[0], ins[1], ins[2], g.shape4(o)
        st = [_c_ints(_broadcast_strides(g.shape4(i), shape)) for i in (c, x1, y1)]
        g.call(f"acom_select_f32((const int32_t[4]){_c_ints(shape)}, t{c}, (const int32_t[4]){st[0]}, t{x1}, "
               f"(const int32_t[4]){st[1]}, t{y1}, (const int32_t[4]){st[2]}, t{o});")
    elif name == "SOFTMAX" and t_in == "FLOAT32":
        shape = g.shape(a)
        g.call(f"acom_softmax_f32({int(np.prod(shape[:-1]))}, {shape[-1]}, "
               f"{_c_number(opt.get('beta', 1.0), 'FLOAT32')}, "
               f"t{a}, t{o});")
    elif name == "FULLY_CONNECTED" and t_in == "INT8":
        w = ins[1]
        bias = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
        out_n, in_n = g.shape(w)
        (si, zi), (so, zo) = g.scale_zp(a), g.scale_zp(o)
        ws, wz = g.quant(w)
        if np.any(wz != 0):
            raise ExportError("FULLY_CONNECTED with non-zero weight zero points: not in the C kernels")
        lo, hi = _act_range_i8(opt.get("fusedActivationFunction", 0), so, zo)
        names = _multipliers(g, si * ws / so, out_n)
        folded = _folded_bias(g, bias, g.const(w).reshape(out_n, in_n), -zi)
        g.call(f"acom_fully_connected_i8({int(np.prod(g.shape(a))) // in_n}, {in_n}, {in_n}, {out_n}, t{a}, t{w}, "
               f"{folded}, {names}, {zo}, {lo}, {hi}, t{o});")
    elif name == "QUANTIZE" and t_in == "INT8" and t_out == "INT8":
        (si, zi), (so, zo) = g.scale_zp(a), g.scale_zp(o)
        m, sh = quantize_multiplier(si / so)
        g.call(f"acom_requantize_i8({n_out}, t{a}, {zi}, {m}, {sh}, {zo}, t{o});")
    elif name == "DEQUANTIZE" and t_in == "INT8":
        s, z = g.scale_zp(a)
        g.call(f"acom_dequantize_i8({n_out}, t{a}, {z}, {float(np.float32(s)).hex()}f, t{o});")
    elif name == "AVERAGE_POOL_2D" and t_in == "INT8":
        if opt.get("padding") != 1:
            raise ExportError("AVERAGE_POOL_2D with SAME padding: the C graph pools VALID windows only")
        _, ih, iw, c = g.shape4(a)
        _, oh, ow, _ = g.shape4(o)
        s, z = g.scale_zp(o)
        lo, hi = _act_range_i8(opt.get("fusedActivationFunction", 0), s, z)
        g.call(f"acom_avg_pool_i8({ih}, {iw}, {c}, {opt['filterHeight']}, {opt['filterWidth']}, {opt['strideH']}, "
               f"{opt['strideW']}, {oh}, {ow}, {lo}, {hi}, t{a}, t{o});")
    elif name in ("SUM", "MEAN", "ARG_MAX") and t_in == "FLOAT32":
        outer, axis, inner = _reduction(g.shape(a), [int(x) for x in np.atleast_1d(g.const(ins[1]))])
        if name == "ARG_MAX" and g.type(o) != "INT32":
            raise ExportError("ARG_MAX to int64: the C graph writes int32 indices")
        fn = {"SUM": "acom_sum_f32", "MEAN": "acom_mean_f32", "ARG_MAX": "acom_arg_max_f32"}[name]
        g.call(f"{fn}({outer}, {axis}, {inner}, t{a}, t{o});")
    elif name == "BATCH_MATMUL" and t_in == "FLOAT32":
        sa, sb, so_ = g.shape(a), g.shape(ins[1]), g.shape(o)
        if opt.get("adjX") or opt.get("adjY") or len(sa) < 2 or len(sb) < 2:
            raise ExportError(f"BATCH_MATMUL of {sa} and {sb} (adjoint flags set): not in the C kernels")
        batch = int(np.prod(so_[:-2]))
        stride = [0 if int(np.prod(s[:-2])) == 1 else s[-2] * s[-1] for s in (sa, sb)]
        if any(int(np.prod(s[:-2])) not in (1, batch) for s in (sa, sb)):
            raise ExportError(f"BATCH_MATMUL of {sa} and {sb}: batch broadcasting beyond one shared side")
        g.call(f"acom_batch_matmul_f32({batch}, {sa[-2]}, {sa[-1]}, {sb[-1]}, t{a}, {stride[0]}, t{ins[1]}, "
               f"{stride[1]}, t{o});")
    else:
        raise ExportError(f"operator {name} ({t_in} -> {t_out}) has no C kernel (firmware_host/c/acom_kernels.c)")


def _conv(g: _Graph, name: str, opt: dict, ins: list[int], o: int) -> None:
    a, w = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
    if opt.get("padding") != 1:
        raise ExportError(f"{name} with SAME padding: the C graph convolves VALID windows only")
    _, ih, iw, ic = g.shape4(a)
    _, oh, ow, oc = g.shape4(o)
    _, kh, kw, _ = g.shape(w)
    dims = (f"&(const acom_conv_shape){{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {opt['strideH']}, "
            f"{opt['strideW']}, {opt['dilationHFactor']}, {opt['dilationWFactor']}}}")
    act = opt.get("fusedActivationFunction", 0)
    if g.type(a) == "FLOAT32":
        b = f"t{bias}" if bias is not None else "NULL"
        if name != "CONV_2D":
            raise ExportError(f"float {name}: not in the C kernels")
        lo, hi = _act_range_f32(act)
        g.call(f"acom_conv_f32({dims}, t{a}, t{w}, {b}, {lo}, {hi}, t{o});")
        return
    (si, zi), (so, zo) = g.scale_zp(a), g.scale_zp(o)
    fs, fz = g.quant(w)
    if np.any(fz != 0):
        raise ExportError("CONV_2D with non-zero filter zero points: TFLite int8 filters are symmetric")
    names = _multipliers(g, si * fs / so, oc)
    lo, hi = _act_range_i8(act, so, zo)
    filt = g.const(w)
    if name == "CONV_2D":
        folded = _folded_bias(g, bias, filt.reshape(oc, -1), -zi)
        if ih == 1 and kh == 1 and opt["dilationWFactor"] == 1:  # one input row: windows of k_w * in_c bytes
            g.call(f"acom_fully_connected_i8({ow}, {kw * ic}, {opt['strideW'] * ic}, {oc}, t{a}, t{w}, {folded}, "
                   f"{names}, {zo}, {lo}, {hi}, t{o});")
        else:
            g.call(f"acom_conv_i8({dims}, t{a}, t{w}, {folded}, {names}, {zo}, {lo}, {hi}, t{o});")
    else:
        folded = _folded_bias(g, bias, filt.reshape(-1, oc).T, -zi)
        g.call(f"acom_depthwise_i8({dims}, {opt.get('depthMultiplier', 1)}, t{a}, t{w}, {folded}, {names}, {zo}, "
               f"{lo}, {hi}, t{o});")


def integer_part_end(model: bytes) -> int:
    """The index of the last int8 tensor written before the first operator with a float output: the end of
    the graph's integer-only part, where a wrong rounding anywhere before would show (the codes, an argmax,
    hide most of them). After it, float kernels round their last bits as their library does."""
    g = _Graph(model)
    last = None
    for op in g.g.operators:
        outs = [int(o) for o in op.outputs]
        if any(g.type(o) == "FLOAT32" for o in outs):
            break
        last = next((o for o in outs if g.type(o) == "INT8"), last)
    if last is None:
        raise ExportError("the graph writes no int8 tensor before its first float operator")
    return last


def graph_c(model: bytes, header: str = "acom_graph.h", probe: int | None = None) -> tuple[str, str]:
    """(header, source) of ``acom_graph_run(const int8_t *input, int32_t *codes)`` for an int8-input graph
    with one int32 output (the codes); ExportError names what the C kernels lack. ``probe``: a tensor index
    whose values each run also copies to ``acom_graph_probe`` (for tests)."""
    g = _Graph(model)
    if len(g.g.inputs) != 1 or len(g.g.outputs) != 1:
        raise ExportError(f"graph with {len(g.g.inputs)} inputs and {len(g.g.outputs)} outputs: expected 1 and 1")
    x, y = int(g.g.inputs[0]), int(g.g.outputs[0])
    if g.type(x) != "INT8" or g.type(y) != "INT32":
        raise ExportError(f"graph input {g.type(x)} and output {g.type(y)}: the C graph takes int8 features "
                          "and gives int32 codes")
    for op in g.g.operators:
        code = g.m.operatorCodes[op.opcodeIndex]
        _lower(g, g.ops[max(code.builtinCode, code.deprecatedBuiltinCode)], op)
        if probe is not None and probe in [int(o) for o in op.outputs]:
            g.call(f"memcpy(acom_graph_probe, t{probe}, {g.nbytes(probe)});")
    multipliers, g.decls = g.decls, []
    live = {x: (-1, -1), y: (len(g.g.operators), len(g.g.operators))}  # the input from the start, the codes to the end
    for k, op in enumerate(g.g.operators):
        for i in [int(i) for i in op.inputs if i >= 0] + [int(o) for o in op.outputs]:
            a, b = live.get(i, (k, k))
            live[i] = (min(a, k), max(b, k))
    live[x] = (-1, live[x][1])
    live[y] = (live[y][0], len(g.g.operators))
    if probe is not None:
        live[probe] = (live[probe][0], live[probe][1] + 1)  # copied out right after it is written
    arena = g.declare({x, y} | {int(i) for i in re.findall(r"\bt(\d+)\b", "\n".join(g.body))}, live)
    g.decls = [f"static uint64_t arena_words[{-(-arena // 8)}];  /* every tensor the graph writes: "
               f"{arena} bytes */", "#define arena ((uint8_t *)arena_words)", *g.decls, *multipliers]
    n_in, n_out = int(np.prod(g.shape(x))), int(np.prod(g.shape(y)))
    guard = header.upper().replace(".", "_").replace("-", "_")
    h = (f"/* generated by acom.export.c_graph: do not edit */\n#ifndef {guard}\n#define {guard}\n#include <stdint.h>\n"
         f"#define ACOM_GRAPH_INPUT_SIZE {n_in}  /* int8 features {g.shape(x)} */\n"
         f"#define ACOM_GRAPH_CODES_SIZE {n_out}  /* int32 codes {g.shape(y)} */\n"
         f"#define ACOM_GRAPH_INPUT_ZERO_POINT {g.scale_zp(x)[1]}\n"
         f"#define ACOM_GRAPH_ARENA_BYTES {arena}  /* the static buffer all its tensors share */\n"
         + (f"#define ACOM_GRAPH_PROBE_SIZE {int(np.prod(g.shape(probe)))}\n"
            f"extern {_CTYPE[g.type(probe)]} acom_graph_probe[ACOM_GRAPH_PROBE_SIZE];\n" if probe is not None else "")
         + "int acom_graph_run(const int8_t *input, int32_t *codes);\n#endif\n")
    c = "\n".join(["/* generated by acom.export.c_graph: do not edit */", f'#include "{header}"',
                   '#include "acom_kernels.h"', "#include <string.h>", "", *g.decls,
                   *([f"{_CTYPE[g.type(probe)]} acom_graph_probe[ACOM_GRAPH_PROBE_SIZE];"]
                     if probe is not None else []),
                   "",
                   "int acom_graph_run(const int8_t *input, int32_t *codes) {",
                   f"    memcpy(t{x}, input, {g.nbytes(x)});", *g.body,
                   f"    memcpy(codes, t{y}, {g.nbytes(y)});", "    return 0;", "}", ""])
    return h, c


def frontend_c(frontend: dict, model: bytes) -> str:
    """``acom_frontend_tables.c``: the firmware front end's tables (firmware_host/c/acom_frontend.h) from a
    bundle manifest's ``frontend`` entry and the graph's int8 input grid."""
    import math

    from acom.core.features import FrontEndConfig, mel_filterbank
    from acom.export.litert import input_quantization
    fields = ("sample_rate", "win_ms", "hop_ms", "n_fft", "n_mels", "f_min", "f_max", "log_floor")
    cfg = FrontEndConfig(**{k: frontend[k] for k in fields})
    if cfg.n_fft & (cfg.n_fft - 1):
        raise ExportError(f"n_fft {cfg.n_fft}: the firmware's FFT needs a power of two")
    q = input_quantization(model)
    if q is None:
        raise ExportError("the graph takes float input: the firmware front end writes int8")
    n = np.arange(cfg.win_length, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / cfg.win_length)  # periodic Hann, as core/features.py
    k = np.arange(cfg.n_fft // 2, dtype=np.float64) * 2.0 * math.pi / cfg.n_fft
    fb = mel_filterbank(cfg)
    first, count, weights = [], [], []
    for row in fb:
        nz = np.flatnonzero(row > 0)
        first.append(int(nz[0]))
        count.append(int(nz[-1] - nz[0] + 1))
        weights += row[nz[0]: nz[-1] + 1].tolist()

    def floats(name: str, values) -> str:
        values = np.asarray(values, dtype=np.float32).ravel()
        return f"static const float {name}[{values.size}] = {{{','.join(_c_number(v, 'FLOAT32') for v in values)}}};"
    lines = ["/* generated by acom.export.c_graph.frontend_c: do not edit */", '#include "acom_frontend.h"',
             floats("window", window), floats("cos_table", np.cos(k)), floats("sin_table", np.sin(k)),
             f"static const uint16_t mel_first[{cfg.n_mels}] = {_c_ints(first)};",
             f"static const uint16_t mel_count[{cfg.n_mels}] = {_c_ints(count)};", floats("mel_weights", weights),
             floats("mean", frontend["feature_mean"]), floats("std", frontend["feature_std"]),
             "const acom_frontend acom_frontend_config = {",
             f"    {cfg.n_fft}, {cfg.win_length}, {cfg.hop_length}, {cfg.n_mels}, window, cos_table, sin_table,",
             "    mel_first, mel_count, mel_weights, mean, std,",
             f"    {_c_number(cfg.log_floor, 'FLOAT32')}, {_c_number(q[0], 'FLOAT32')}, {int(q[1])}}};", ""]
    return "\n".join(lines)
