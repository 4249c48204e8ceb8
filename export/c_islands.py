"""Float islands of an int8 graph as tables, for export/c_graph.py.

The exporter's int8 graphs leave some activations in float: DEQUANTIZE, a few elementwise float operators
(GELU's polynomial and LOGISTIC, SiLU's x * sigmoid(x), GLU's gate), then QUANTIZE back to int8. When such an
island reads one int8 tensor and writes one, elementwise, with scalar constants only, its output is a function
of one int8 value: 256 entries, worked out here in TFLite Micro's float arithmetic (its reference kernels:
DEQUANTIZE as one rounding of scale * (q - zero point), float32 operators, LOGISTIC with its cutoffs, QUANTIZE
as round-half-away of value / scale in double), so the firmware looks each value up instead of computing it.
An island of two int8 tensors joined by one last MUL, ADD or SUB (GLU: a * sigmoid(b)) becomes two float tables
and that operator, then the firmware's QUANTIZE.

``islands(g)`` finds them in a parsed graph (c_graph._Graph): the calls that replace each island's QUANTIZE
(c_graph writes them) and the operators no longer needed (those whose outputs only the islands read).
"""

from __future__ import annotations

import math

import numpy as np

_UNARY = ("ABS", "SQRT", "RSQRT", "LOGISTIC")
_BINARY = ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
_JOIN = {"ADD": "ACOM_F_ADD", "SUB": "ACOM_F_SUB", "MUL": "ACOM_F_MUL"}  # the last operator of a two-table island
_LOGISTIC_UPPER, _LOGISTIC_LOWER = np.float32(16.619047164916992188), np.float32(-9.0)  # TFLite's reference cutoffs


class _NotAnIsland(Exception):
    pass


def _exp(x: np.ndarray) -> np.ndarray:
    """float32 exp, correctly rounded (libm's expf is, to within half an ulp)."""
    return np.exp(x.astype(np.float64)).astype(np.float32)


def _apply(name: str, args: list[np.ndarray]) -> np.ndarray:
    """One float32 operator as TFLite Micro's reference kernels compute it."""
    with np.errstate(all="ignore"):
        if name == "ABS":
            return np.abs(args[0])
        if name == "SQRT":
            return np.sqrt(args[0])
        if name == "RSQRT":
            return np.float32(1.0) / np.sqrt(args[0])
        if name == "LOGISTIC":
            x = args[0]
            mid = np.float32(1.0) / (np.float32(1.0) + _exp(-x))
            return np.where(x > _LOGISTIC_UPPER, np.float32(1.0), np.where(x < _LOGISTIC_LOWER, _exp(x), mid))
        a, b = args
        out = {"ADD": lambda: a + b, "SUB": lambda: a - b, "MUL": lambda: a * b, "DIV": lambda: a / b,
               "MAXIMUM": lambda: np.maximum(a, b), "MINIMUM": lambda: np.minimum(a, b),
               "SQUARED_DIFFERENCE": lambda: (a - b) * (a - b)}[name]()
    return np.asarray(out, dtype=np.float32)


def quantize_tflm(v: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's AffineQuantize: round(v / scale) in double, halves away from zero, + zero point, clamped to int8."""
    out = []
    for x in np.asarray(v, dtype=np.float32).astype(np.float64).ravel():
        if math.isnan(x):
            q = 0
        else:
            y = x / float(np.float32(scale))
            if abs(y) > 1e6:
                q = 1_000_000 if y > 0 else -1_000_000
            else:
                lo = math.floor(y)
                frac = y - lo
                q = lo + 1 if frac > 0.5 or (frac == 0.5 and y > 0) else lo
        out.append(min(127, max(-128, q + zero_point)))
    return np.array(out, dtype=np.int8)


class _Island:
    """The expression of one QUANTIZE's float input over int8 sources."""

    def __init__(self, g, producer: dict, root: int) -> None:
        self.g, self.producer = g, producer
        self.shape = g.shape4(root)
        self.sources: list[int] = []  # int8 tensors read through a DEQUANTIZE
        self.ops: set[int] = set()  # indices of the operators the island is made of
        self.nodes: dict[int, tuple] = {}
        self.root = self._node(root)

    def _node(self, t: int) -> tuple:
        if t in self.nodes:
            return self.nodes[t]
        g = self.g
        if g.type(t) != "FLOAT32":
            raise _NotAnIsland
        c = g.const(t)
        if c is not None:
            if c.size != 1:
                raise _NotAnIsland  # a per-channel constant: not one function of the value
            node: tuple = ("const", np.float32(c.ravel()[0]))
        else:
            if t not in self.producer or g.shape4(t) != self.shape:
                raise _NotAnIsland
            k, name, op = self.producer[t]
            ins = [int(i) for i in op.inputs]
            if name == "DEQUANTIZE":
                s = ins[0]
                if g.type(s) != "INT8" or g.const(s) is not None or g.shape4(s) != self.shape:
                    raise _NotAnIsland
                if s not in self.sources:
                    self.sources.append(s)
                node = ("source", s)
            elif name in _UNARY:
                node = (name, self._node(ins[0]))
            elif name in _BINARY:
                opt = op.builtinOptions
                if opt is not None and getattr(opt, "fusedActivationFunction", 0):
                    raise _NotAnIsland
                node = (name, self._node(ins[0]), self._node(ins[1]))
            else:
                raise _NotAnIsland
            self.ops.add(k)
        self.nodes[t] = node
        return node

    def values(self, node: tuple, source: int) -> np.ndarray:
        """The node's float32 value for each int8 value -128..127 of `source`."""
        kind = node[0]
        if kind == "const":
            return np.full(256, node[1], dtype=np.float32)
        if kind == "source":
            if node[1] != source:
                raise _NotAnIsland
            scale, zp = self.g.scale_zp(source)
            q = np.arange(-128, 128, dtype=np.float64) - zp
            return (np.float64(np.float32(scale)) * q).astype(np.float32)  # one rounding of the exact product
        return _apply(kind, [self.values(a, source) for a in node[1:]])

    def single_sources(self, node: tuple) -> set[int]:
        if node[0] == "const":
            return set()
        if node[0] == "source":
            return {node[1]}
        return set().union(*(self.single_sources(a) for a in node[1:]))


def _c_floats(values: np.ndarray) -> str:
    return ",".join(float(np.float32(v)).hex() + "f" for v in values)


def islands(g) -> tuple[dict[int, dict], set[int], list[str]]:
    """(the call replacing each island's QUANTIZE operator, by index: its kernel, the int8 tensors it reads each
    with its table, the output; the operators to leave out; the tables' declarations)."""
    producer, consumers = {}, {}
    for k, op in enumerate(g.g.operators):
        code = g.m.operatorCodes[op.opcodeIndex]
        name = g.ops[max(code.builtinCode, code.deprecatedBuiltinCode)]
        for o in op.outputs:
            producer[int(o)] = (k, name, op)
        for i in op.inputs:
            if i >= 0:
                consumers.setdefault(int(i), []).append(k)
    replace: dict[int, dict] = {}
    members: set[int] = set()
    decls: list[str] = []
    for k, op in enumerate(g.g.operators):
        o = int(op.outputs[0])
        if producer[o][1] != "QUANTIZE" or g.type(int(op.inputs[0])) != "FLOAT32" or g.type(o) != "INT8":
            continue
        try:
            isl = _Island(g, producer, int(op.inputs[0]))
        except _NotAnIsland:
            continue
        if g.shape4(o) != isl.shape:
            continue
        scale, zp = g.scale_zp(o)
        idx = len(g.decls) + len(decls)
        if len(isl.sources) == 1:
            s = isl.sources[0]
            table = quantize_tflm(isl.values(isl.root, s), scale, zp)
            decls.append(f"static const int8_t lut{idx}[256] = {{{','.join(str(int(v)) for v in table)}}};")
            replace[k] = {"call": "acom_lut_i8", "reads": [(s, f"lut{idx}")], "out": o}
        elif len(isl.sources) == 2 and isl.root[0] in _JOIN:
            left, right = isl.root[1], isl.root[2]
            a, b = isl.single_sources(left), isl.single_sources(right)
            if len(a) != 1 or len(b) != 1 or a == b:
                continue
            sa, sb = a.pop(), b.pop()
            decls.append(f"static const float lut{idx}a[256] = {{{_c_floats(isl.values(left, sa))}}};")
            decls.append(f"static const float lut{idx}b[256] = {{{_c_floats(isl.values(right, sb))}}};")
            replace[k] = {"call": "acom_lut2_f32", "op": _JOIN[isl.root[0]], "reads": [(sa, f"lut{idx}a"),
                          (sb, f"lut{idx}b")], "quantize": f"{float(np.float32(scale)).hex()}f, {zp}", "out": o}
        else:
            continue
        members |= isl.ops
    # an island's operator is left out when nothing but left-out operators and the new calls reads its output
    outputs = {int(i) for i in g.g.outputs}
    skip = set(members)
    changed = True
    while changed:
        changed = False
        for k in sorted(skip):
            outs = [int(o) for o in g.g.operators[k].outputs]
            if any(o in outputs or any(c not in skip and c not in replace for c in consumers.get(o, []))
                   for o in outs):
                skip.discard(k)
                changed = True
    return replace, skip, decls
