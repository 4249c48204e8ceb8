"""An int8 ``.tflite`` edge graph as C: one call of firmware_host/c/acom_kernels.c per operator.

The firmware then runs the graph without an interpreter: every shape, broadcast stride, transpose order,
padding and fixed-point multiplier is worked out here, in TFLite's own formulas (``QuantizeMultiplier`` on
double-precision scales, int8 ADD's 2^20 input grid, activation ranges on the output grid, input offsets
folded into the biases), so the C only loops. Operators that only move elements (reshape, transpose, slice)
make views, copied out at most once when a call needs them in memory; float islands of int8 inputs become
tables (export/c_islands.py). ``graph_c(model)`` returns the C source of
``int acom_graph_run(const int8_t *input, int32_t *codes)``; operators outside the set the exporter's
microcontroller graphs use raise ExportError naming them.
"""

from __future__ import annotations

import re

import numpy as np

from acom.errors import ExportError
from acom.export.c_islands import islands

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
        # tensors that TRANSPOSE, SLICE and RESHAPE make are views until a call reads them: the tensor they were
        # cut from (the root) and each element's index in it
        self.views: dict[int, tuple[int, np.ndarray]] = {}
        self.alias: dict[int, int] = {}  # a view that is its root, byte for byte: the root's name serves
        self.written: set[int] = set()  # views already copied out

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
        text = re.sub(r"\bt(\d+)\b", lambda m: f"t{self.alias.get(int(m.group(1)), int(m.group(1)))}", text)
        self.body.append(f"    {text}")

    def view(self, i: int) -> tuple[int, np.ndarray]:
        """(root, index of each element of tensor i in the root) for a view, (i, its own indices) otherwise."""
        if i in self.views:
            return self.views[i]
        return i, np.arange(max(1, int(np.prod(self.shape(i))))).reshape(self.shape(i))

    def need(self, i: int) -> None:
        """Tensor i in memory before a call reads it: a view becomes its root's name when it is the root in the
        same order, else one strided copy of the root."""
        if i not in self.views or i in self.written:
            return
        self.written.add(i)
        root, idx = self.views[i]
        n_root = max(1, int(np.prod(self.shape(root))))
        if idx.size == n_root and np.array_equal(idx.ravel(), np.arange(n_root)):
            self.alias[i] = root
            return
        base, shape, strides = _strided(idx)
        self.call(f"acom_strided_copy(t{root} + {base}, {np.dtype(_NP[self.type(root)]).itemsize}, "
                  f"(const int32_t[4]){_c_ints(shape)}, (const int32_t[4]){_c_ints(strides)}, t{i});")

    def operand(self, i: int, shape4: list[int]) -> tuple[str, str]:
        """(pointer, 4-D strides) by which an elementwise call reads tensor i broadcast to shape4: a view not yet
        in memory is read in place from its root when 4 strides over shape4 reach its elements."""
        if i in self.views and i not in self.written:
            root, idx = self.views[i]
            found = _strides4(np.broadcast_to(idx.reshape(self.shape4(i)), shape4))
            if found is not None:
                return f"t{root} + {found[0]}", f"(const int32_t[4]){_c_ints(found[1])}"
            self.need(i)
        return f"t{i}", f"(const int32_t[4]){_c_ints(_broadcast_strides(self.shape4(i), shape4))}"


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


def _strides4(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(base, strides) with idx[p] = base + sum_k p_k * strides[k] over idx's own 4-D shape, or None."""
    idx = np.asarray(idx, dtype=np.int64)
    base = int(idx[0, 0, 0, 0])
    strides = [int(idx[tuple(1 if j == k else 0 for j in range(4))]) - base if idx.shape[k] > 1 else 0
               for k in range(4)]
    grid = base + sum(np.arange(idx.shape[k]).reshape([-1 if j == k else 1 for j in range(4)]) * strides[k]
                      for k in range(4))
    return (base, strides) if np.array_equal(grid, idx) else None


def _strided(idx: np.ndarray) -> tuple[int, list[int], list[int]] | None:
    """(base, 4-D shape, strides) with idx[i] = base + sum_k i_k * strides[k] over the 4-D shape (dimensions of size
    1 dropped, neighbours that step as one merged, leading 1s added), or None when no 4 strides make it."""
    idx = np.asarray(idx, dtype=np.int64)
    base = int(idx.ravel()[0])
    dims = [k for k in range(idx.ndim) if idx.shape[k] != 1]
    sq = idx.reshape([idx.shape[k] for k in dims]) if dims else idx.reshape(1)
    shape = list(sq.shape)
    strides = [int(sq[tuple(1 if j == k else 0 for j in range(sq.ndim))]) - base if shape[k] > 1 else 0
               for k in range(sq.ndim)]
    grid = np.full(sq.shape, base, dtype=np.int64)
    for k, st in enumerate(strides):
        grid = grid + (np.arange(shape[k]) * st).reshape([-1 if j == k else 1 for j in range(sq.ndim)])
    if not np.array_equal(grid, sq):
        return None
    merged: list[tuple[int, int]] = []
    for d, st in zip(shape, strides):
        if merged and merged[-1][1] == st * d:
            merged[-1] = (merged[-1][0] * d, st)
        else:
            merged.append((d, st))
    if len(merged) > 4:
        return None
    merged = [(1, 0)] * (4 - len(merged)) + merged
    return base, [d for d, _ in merged], [st for _, st in merged]


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


_MOVES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "SLICE")  # operators that only move elements
# operators whose first inputs (how many) the kernels read through 4-D strides: views of them need no copy
_VIEW_READERS = {"ADD": 2, "MUL": 2, **{k: 2 for k in _FLOAT_BINARY}, "SELECT_V2": 3, "DEQUANTIZE": 1}


def _island_call(g: "_Graph", spec: dict) -> None:
    """The call that replaces a float island (export/c_islands.py): its int8 inputs through their tables."""
    shape = g.shape4(spec["out"])
    args = []
    for i, table in spec["reads"]:
        p, st = g.operand(i, shape)
        args.append(f"{p}, {st}, {table}")
    head = f"(const int32_t[4]){_c_ints(shape)}"
    if spec["call"] == "acom_lut_i8":
        g.call(f"acom_lut_i8({head}, {args[0]}, t{spec['out']});")
    else:
        g.call(f"acom_lut2_f32({head}, {spec['op']}, {', '.join(args)}, {spec['quantize']}, t{spec['out']});")


def _move(g: "_Graph", name: str, ins: list[int], o: int, idx: np.ndarray) -> np.ndarray:
    """The indices of output o's elements after the moving operator `name` on indices idx (its input's)."""
    if name == "TRANSPOSE":
        return idx.transpose([int(p) for p in g.const(ins[1])])
    if name == "SLICE":
        begin = [int(b) for b in g.const(ins[1])]
        return idx[tuple(slice(b, b + d) for b, d in zip(begin, g.shape(o)))]
    return idx.reshape(g.shape(o))


def _lower(g: _Graph, name: str, op) -> None:  # noqa: C901 (one branch per TFLite operator)
    ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
    o, a = outs[0], ins[0]
    opt = _options(op)
    n_out = int(np.prod(g.shape(o)))
    t_in, t_out = g.type(a), g.type(o)
    if name in _MOVES:  # no call: the output is a view of the input's root, copied out when a call reads it
        root, moved = g.view(a)[0], _move(g, name, ins, o, g.view(a)[1])
        if _strided(moved) is None:  # not one strided copy of the root: copy the input out, cut from it
            g.need(a)
            root, moved = a, _move(g, name, ins, o, np.arange(max(1, int(np.prod(g.shape(a))))).reshape(g.shape(a)))
            if _strided(moved) is None:
                raise ExportError(f"{name} of {g.shape(a)}: more than 4 strided dimensions, not in the C kernels")
        g.views[o] = (root, moved)
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
        (pa, sa4), (pb, sb4) = g.operand(a, shape), g.operand(b, shape)
        head = f"(const int32_t[4]){_c_ints(shape)}"
        if name == "MUL":
            m, sh = quantize_multiplier(sa * sb / so)
            g.call(f"acom_mul_i8({head}, {pa}, {sa4}, {-za}, {pb}, {sb4}, {-zb}, {m}, {sh}, {zo}, {lo}, {hi}, t{o});")
        else:
            twice = 2.0 * max(sa, sb)
            (ma, sha), (mb, shb) = quantize_multiplier(sa / twice), quantize_multiplier(sb / twice)
            m, sh = quantize_multiplier(twice / ((1 << 20) * so))
            g.call(f"acom_add_i8({head}, {pa}, {sa4}, {-za}, {ma}, {sha}, {pb}, {sb4}, {-zb}, {mb}, {shb}, {m}, {sh}, "
                   f"{zo}, {lo}, {hi}, t{o});")
    elif name in _FLOAT_BINARY and t_out == "FLOAT32":
        if opt.get("fusedActivationFunction", 0):
            raise ExportError(f"float {name} with a fused activation: not in the C graph")
        b, shape = ins[1], g.shape4(o)
        (pa, sa4), (pb, sb4) = g.operand(a, shape), g.operand(b, shape)
        g.call(f"acom_binary_f32({_FLOAT_BINARY[name]}, (const int32_t[4]){_c_ints(shape)}, {pa}, {sa4}, {pb}, {sb4}, "
               f"t{o});")
    elif name in _FLOAT_UNARY and t_out == "FLOAT32":
        g.call(f"acom_unary_f32({_FLOAT_UNARY[name]}, {n_out}, t{a}, t{o});")
    elif name == "QUANTIZE" and t_in == "FLOAT32" and t_out == "INT8":
        s, z = g.scale_zp(o)
        g.call(f"acom_quantize_f32({n_out}, t{a}, {float(np.float32(s)).hex()}f, {z}, t{o});")
    elif name == "SELECT_V2" and t_out == "FLOAT32":
        shape = g.shape4(o)
        (pc, sc), (px, sx), (py, sy) = (g.operand(i, shape) for i in ins[:3])
        g.call(f"acom_select_f32((const int32_t[4]){_c_ints(shape)}, {pc}, {sc}, {px}, {sx}, {py}, {sy}, t{o});")
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
        shape = g.shape4(o)
        pa, sa4 = g.operand(a, shape)
        g.call(f"acom_dequantize_i8((const int32_t[4]){_c_ints(shape)}, {pa}, {sa4}, {z}, "
               f"{float(np.float32(s)).hex()}f, t{o});")
    elif name == "AVERAGE_POOL_2D" and t_in in ("INT8", "FLOAT32"):
        if opt.get("padding") != 1:
            raise ExportError("AVERAGE_POOL_2D with SAME padding: the C graph pools VALID windows only")
        _, ih, iw, c = g.shape4(a)
        _, oh, ow, _ = g.shape4(o)
        act = opt.get("fusedActivationFunction", 0)
        if t_in == "INT8":
            lo, hi = _act_range_i8(act, *g.scale_zp(o))
        else:  # the cut's features when the last block ends in float (a LayerNorm): the quantizer pools them
            lo, hi = _act_range_f32(act)
        fn = "acom_avg_pool_i8" if t_in == "INT8" else "acom_avg_pool_f32"
        g.call(f"{fn}({ih}, {iw}, {c}, {opt['filterHeight']}, {opt['filterWidth']}, {opt['strideH']}, "
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
    replace, skip, tables = islands(g)
    for k, op in enumerate(g.g.operators):
        if k in skip:
            continue
        code = g.m.operatorCodes[op.opcodeIndex]
        name = g.ops[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if k in replace:
            _island_call(g, replace[k])
        elif name not in _MOVES:  # views are copied out for the calls that read memory as it lies
            ins = [int(i) for i in op.inputs if i >= 0]
            for i in ins[_VIEW_READERS.get(name, 0):]:
                g.need(i)
            _lower(g, name, op)
        else:
            _lower(g, name, op)
        if probe is not None and probe in [int(o) for o in op.outputs]:
            g.need(probe)
            g.call(f"memcpy(acom_graph_probe, t{probe}, {g.nbytes(probe)});")
    g.need(y)
    yr = g.alias.get(y, y)  # the codes' tensor in memory
    multipliers, g.decls = [*tables, *g.decls], []
    # each tensor's life: from the first call that names it (its writer; the input before the first) to the last
    # (the codes after the last)
    end = len(g.body)
    live = {x: (-1, -1), yr: (end, end)}
    for k, line in enumerate(g.body):
        for i in {int(i) for i in re.findall(r"\bt(\d+)\b", line)}:
            a, b = live.get(i, (k, k))
            live[i] = (min(a, k), max(b, k))
    live[x] = (-1, live[x][1])
    live[yr] = (live[yr][0], end)
    arena = g.declare({x, yr} | {int(i) for i in re.findall(r"\bt(\d+)\b", "\n".join(g.body))}, live)
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
                   f"    memcpy(codes, t{yr}, {g.nbytes(y)});", "    return 0;", "}", ""])
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
    half, bits = cfg.n_fft // 2, (cfg.n_fft // 2).bit_length() - 1  # the FFT's length and its index bits
    bitrev = [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(half)]
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
             f"static const uint16_t bitrev[{half}] = {_c_ints(bitrev)};",
             f"static const uint16_t mel_first[{cfg.n_mels}] = {_c_ints(first)};",
             f"static const uint16_t mel_count[{cfg.n_mels}] = {_c_ints(count)};", floats("mel_weights", weights),
             floats("mean", frontend["feature_mean"]), floats("std", frontend["feature_std"]),
             "const acom_frontend acom_frontend_config = {",
             f"    {cfg.n_fft}, {cfg.win_length}, {cfg.hop_length}, {cfg.n_mels}, window, cos_table, sin_table,",
             "    bitrev, mel_first, mel_count, mel_weights, mean, std,",
             f"    {_c_number(cfg.log_floor, 'FLOAT32')}, {_c_number(q[0], 'FLOAT32')}, {int(q[1])}}};", ""]
    return "\n".join(lines)
