"""A bundle's entropy-coder priors as C tables for the device's range coder (firmware_host/c/acom_range.c).

The C computes each code's probability from these tables with the float64 operations of
``acom.codes.priors._StageModel`` (so its bytes equal ``encode_codes``'): the smoothed unigram p(c), and
per previous code h the Witten-Bell weights T_h and N_h + T_h with the codes that followed h in training.
Doubles are written as C99 hexadecimal literals, bit for bit.
"""

from __future__ import annotations

import numpy as np

from acom.errors import AcomError


def c_array(values) -> str:
    """A C initializer of unsigned integers (bytes or numbers): "{1u,2u}"; "{0}" when empty (C has no {})."""
    values = [int(v) for v in values]
    return "{" + ",".join(f"{v}u" for v in values) + "}" if values else "{0}"


def stage_tables(priors, s: int) -> dict[str, np.ndarray]:
    """Stage s of a ``CodePriors``: k, p_uni [K], ctx_types [K], ctx_denom [K] (float64), indptr [K+1] (uint32),
    cur [M] (uint16), count [M] (uint32): acom_prior's fields."""
    m = priors._models[s]
    counts = m.counts
    if counts.bigram_count.size and int(counts.bigram_count.max()) >= 1 << 32:
        raise AcomError(f"priors stage {s}: a bigram count of {int(counts.bigram_count.max())} does not fit the "
                        "device's 32-bit table")
    return {"k": np.array([m.codebook_size]), "p_uni": np.asarray(m.p_uni, dtype=np.float64),
            "ctx_types": np.asarray(m.ctx_types, dtype=np.float64), "ctx_denom": np.asarray(m.ctx_denom, np.float64),
            "indptr": np.asarray(m.indptr, dtype=np.uint32), "cur": np.asarray(counts.bigram_cur, dtype=np.uint16),
            "count": np.asarray(counts.bigram_count, dtype=np.uint32)}


def _doubles(values: np.ndarray) -> str:
    return "{" + ",".join(float(v).hex() for v in values) + "}"


def c_tables(priors, n_q: int, prefix: str, static: bool = True) -> list[str]:
    """C definitions of the first n_q stages: the tables and ``[static] const acom_prior {prefix}[n_q]``."""
    if not 1 <= n_q <= priors.n_q:
        raise AcomError(f"n_q {n_q}: the priors hold {priors.n_q} stages")
    lines, rows = [], []
    for s in range(n_q):
        t, name = stage_tables(priors, s), f"{prefix}_S{s}"
        lines += [f"static const double {name}_{f.upper()}[] = {_doubles(t[f])};"
                  for f in ("p_uni", "ctx_types", "ctx_denom")]
        lines += [f"static const uint32_t {name}_INDPTR[] = {c_array(t['indptr'])};",
                  f"static const uint16_t {name}_CUR[] = {c_array(t['cur'])};",
                  f"static const uint32_t {name}_COUNT[] = {c_array(t['count'])};"]
        rows.append(f"{{{int(t['k'][0])}u, {name}_P_UNI, {name}_CTX_TYPES, {name}_CTX_DENOM, {name}_INDPTR, "
                    f"{name}_CUR, {name}_COUNT}}")
    return lines + [f"{'static ' if static else ''}const acom_prior {prefix}[{n_q}] = {{{', '.join(rows)}}};"]


def bundle_sources(priors, n_q: int) -> dict[str, bytes]:
    """An MCU bundle's c/acom_priors.h and .c: ``ACOM_PRIORS[ACOM_PRIORS_N_Q]``, what ``acom_stream.priors``
    takes for range-coded packets of n_q stages."""
    header = ["/* written by acom-export from the bundle's priors.safetensors: do not edit */", "#ifndef ACOM_PRIORS_H",
              "#define ACOM_PRIORS_H", '#include "acom_range.h"', f"#define ACOM_PRIORS_N_Q {n_q}",
              f"extern const acom_prior ACOM_PRIORS[{n_q}];", "#endif"]
    source = ["/* written by acom-export from the bundle's priors.safetensors: do not edit */", "#include <stdint.h>",
              '#include "acom_priors.h"', *c_tables(priors, n_q, "ACOM_PRIORS", static=False)]
    return {"c/acom_priors.h": ("\n".join(header) + "\n").encode(),
            "c/acom_priors.c": ("\n".join(source) + "\n").encode()}


def binary_tables(priors, n_q: int) -> bytes:
    """A Linux bundle's edge_priors.bin: the first n_q stages' tables for acom-edge's range coder, read in place
    (firmware_host/c/linux/edge_bundle.cpp). Little-endian; every array starts 8-byte aligned:
    "ACOMPRI1", u32 n_q, u32 0; per stage u32 k, u32 m, f64 p_uni[k], f64 ctx_types[k], f64 ctx_denom[k],
    u32 indptr[k + 1], u32 count[m], u16 cur[m]."""
    if not 1 <= n_q <= priors.n_q:
        raise AcomError(f"n_q {n_q}: the priors hold {priors.n_q} stages")

    def aligned(data: bytes) -> bytes:
        return data + bytes(-len(data) % 8)

    out = [b"ACOMPRI1", np.array([n_q, 0], "<u4").tobytes()]
    for s in range(n_q):
        t = stage_tables(priors, s)
        out.append(np.array([t["k"][0], len(t["cur"])], "<u4").tobytes())
        out += [aligned(np.asarray(t[f], "<f8").tobytes()) for f in ("p_uni", "ctx_types", "ctx_denom")]
        out += [aligned(np.asarray(t["indptr"], "<u4").tobytes()), aligned(np.asarray(t["count"], "<u4").tobytes()),
                aligned(np.asarray(t["cur"], "<u2").tobytes())]
    return b"".join(out)
