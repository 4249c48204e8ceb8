"""Cortex-M checks and artifacts for an int8 ``.tflite``: TFLite Micro run and arena, vela compile, C sources.

TFLM runs the reference kernels of the same model LiteRT runs, so its codes must equal LiteRT's bit for bit;
the arena it reports is what the firmware's static arena needs. vela compiles the int8 layers for an
Ethos-U and leaves the rest (the float RVQ search) to the CPU; its summary gives cycles and memory.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from acom.errors import ExportError
from acom.export.litert import input_quantization, tflite_ops, tflite_schema, to_model_input

DEFAULT_ARENA_BYTES = 4 * 1024 * 1024
"""Arena handed to the host interpreter; only the part it reports as used matters."""
VELA_CONFIG = "Arm/vela.ini"
"""The system and memory configurations shipped inside ethos-u-vela (``vela --list-config-files``)."""


def captured_output(fn: Callable[[], None]) -> str:
    """Run ``fn`` and return what C code wrote to file descriptors 1 and 2 meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            fn()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def run_tflm(model: bytes, inputs: list[np.ndarray], arena_size: int = DEFAULT_ARENA_BYTES
             ) -> tuple[list[np.ndarray], int]:
    """Codes int32 ``[1, n_q, T]`` per float input ``[1, n_mels, F]`` with TFLite Micro, and arena bytes used.

    The arena figure is the RecordingMicroAllocator's total after the runs. It is measured on a 64-bit host,
    where TFLM's per-tensor and per-node structs hold 8-byte pointers: on a 32-bit Cortex-M the same model
    needs a little less, so the figure is a safe size for the firmware's static arena.
    """
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    codes = []
    for x in inputs:
        interp.set_input(to_model_input(model, np.asarray(x)), 0)
        interp.invoke()
        codes.append(np.array(interp.get_output(0), copy=True))
    report = captured_output(interp.print_allocations)
    used = re.search(r"Arena allocation total (\d+) bytes", report)
    if used is None:
        raise ExportError(f"TFLite Micro printed no arena total; it printed: {report[:300]!r}")
    return codes, int(used.group(1))


def _vela_ops(stdout: str, where: str) -> list[str]:
    """Operator names vela lists under ``--show-cpu-operations`` as running on ``where`` (CPU or NPU)."""
    return re.findall(rf"^\s+{where}: (\w+) =", stdout, flags=re.MULTILINE)


def run_vela(model_path: Path, out_dir: Path, accelerator: str = "ethos-u55-128",
             system_config: str = "Ethos_U55_High_End_Embedded", memory_mode: str = "Shared_Sram") -> dict:
    """Compile ``model_path`` with vela and summarise: NPU and CPU operators, cycles, time, memory.

    Returns ``{"npu_ops", "cpu_ops"}`` (vela's operator names, in order), ``cycles`` (total at the NPU clock),
    ``clock_hz``, ``inference_s``, ``macs``, ``sram_bytes`` (feature maps, and weights in Sram_Only mode),
    ``flash_bytes`` (on- plus off-chip flash: weights and command stream in Shared_Sram mode), ``dram_bytes``,
    ``vela_model`` (the compiled ``.tflite``) and ``per_layer`` (vela's per-operation MACs and cycles).

    vela 5's default compiler (regor) rejects a float ARG_MAX as invalid TFLite instead of leaving it to the
    CPU, so the Python (legacy) compiler runs: it places the float RVQ on the CPU as TFLM expects.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ethosu.vela", str(model_path), "--output-dir", str(out_dir),
           "--accelerator-config", accelerator, "--config", VELA_CONFIG, "--system-config", system_config,
           "--memory-mode", memory_mode, "--show-cpu-operations", "--debug-force-legacy-core", "--verbose-performance"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    summary = out_dir / f"{model_path.stem}_summary_{system_config}.csv"
    if done.returncode != 0 or not summary.exists():
        raise ExportError(f"vela failed (exit {done.returncode}) on {model_path}: {done.stderr.strip()[-800:]}")
    with summary.open(newline="") as f:
        row = next(csv.DictReader(f))
    kib = 1024.0
    return {
        "npu_ops": _vela_ops(done.stdout, "NPU"),
        "cpu_ops": _vela_ops(done.stdout, "CPU"),
        "cycles": int(float(row["cycles_total"])),
        "clock_hz": float(row["core_clock"]),
        "inference_s": float(row["inference_time"]),
        "macs": int(float(row["nn_macs"])),
        "sram_bytes": round(float(row["sram_memory_used"]) * kib),
        "flash_bytes": round((float(row["off_chip_flash_memory_used"])
                              + float(row["on_chip_flash_memory_used"])) * kib),
        "dram_bytes": round(float(row["dram_memory_used"]) * kib),
        "vela_model": out_dir / f"{model_path.stem}_vela.tflite",
        "per_layer": _vela_layers(out_dir / f"{model_path.stem}_per-layer.csv"),
    }


def _vela_layers(path: Path) -> list[dict]:
    """vela's per-layer report (--verbose-performance): per NPU operation its TFLite operator, vela's operation,
    MACs, cycles and the tensor name it came from (which names the model block); [] when vela wrote none."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("TFLite_operator") not in (None, "TFLite_operator")]
    return [{"op": r["TFLite_operator"], "vela_op": r["NNG Operator"], "macs": int(float(r["MAC Count"] or 0)),
             "cycles": int(float(r["Op Cycles"] or 0)), "name": r["Name"]} for r in rows]


# --- C sources ---------------------------------------------------------------------------------------------

META_KEYS = ("codebook_sizes", "frame_rate_hz", "sample_rate", "window_samples", "codebook_hash", "arena_bytes")
"""What ``write_c_sources`` needs in ``meta`` besides the model (the bundle manifest holds the same values)."""
_GENERATED = "/* Generated by acom.export.micro.write_c_sources; do not edit. */\n"
_ROLES = {"CONV_2D": ("input", "weights", "bias"), "DEPTHWISE_CONV_2D": ("input", "weights", "bias"),
          "FULLY_CONNECTED": ("input", "weights", "bias")}
_CTYPES = {"INT8": ("int8_t", np.int8), "INT32": ("int32_t", np.int32), "FLOAT32": ("float", np.float32)}


def _c_values(values: np.ndarray, per_line: int = 16) -> str:
    """Comma-separated C initializer lines for a flat array (floats as exact decimal float literals)."""
    flat = values.reshape(-1)
    if flat.dtype == np.float32:
        text = [f"{float(v)!r}f" for v in flat]
    elif flat.dtype == np.uint8:
        text = [f"0x{v:02x}" for v in flat]
    else:
        text = [str(int(v)) for v in flat]
    return ",\n".join("    " + ", ".join(text[i:i + per_line]) for i in range(0, len(text), per_line))


def _c_array(decl: str, values: np.ndarray) -> str:
    return f"{decl} = {{\n{_c_values(values)}\n}};\n"


def _constant_tensors(model: bytes) -> list[tuple[str, object, np.ndarray]]:
    """(C name, tensor, values) of each constant int8/int32/float32 tensor that an operator uses as data.

    Named after its first user and role (``op3_conv_2d_weights``); int32 tensors without quantization
    parameters are shapes and permutations, not data, and are left out.
    """
    schema = tflite_schema()
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sub, ops, seen, out = m.subgraphs[0], tflite_ops(model), set(), []
    for i, op in enumerate(sub.operators):
        for k, t_index in enumerate(op.inputs):
            tensor = sub.tensors[t_index] if t_index >= 0 else None
            data = m.buffers[tensor.buffer].data if tensor is not None else None
            kind = names.get(tensor.type) if tensor is not None else None
            quantized = tensor is not None and tensor.quantization is not None and tensor.quantization.scale is not None
            if data is None or t_index in seen or kind not in _CTYPES or (kind == "INT32" and not quantized):
                continue
            seen.add(t_index)
            role = _ROLES.get(ops[i], ())[k] if k < len(_ROLES.get(ops[i], ())) else f"in{k}"
            values = np.frombuffer(bytes(data), dtype=_CTYPES[kind][1]).reshape(tensor.shape)
            out.append((f"op{i}_{ops[i].lower()}_{role}", tensor, values))
    return out


def _weights_sources(model: bytes, prefix: str) -> tuple[str, str]:
    """(header, source) declaring and defining every constant tensor with its shape and quantization."""
    decls, defs = [], []
    for cname, tensor, values in _constant_tensors(model):
        name, macro = f"{prefix}_{cname}", f"{prefix}_{cname}".upper()
        ctype = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t"}.get(values.dtype, "float")
        if values.size == 0:
            continue  # C has no empty arrays; an empty constant carries no data
        label = tensor.name.decode(errors="replace").replace("*/", "* /")
        decls.append(f"/* {label} */\n"
                     f"#define {macro}_LEN {values.size}\n#define {macro}_RANK {values.ndim}\n"
                     f"extern const {ctype} {name}[{macro}_LEN];\nextern const int32_t {name}_shape[{macro}_RANK];")
        defs.append(_c_array(f"const {ctype} {name}[{macro}_LEN]", values))
        defs.append(_c_array(f"const int32_t {name}_shape[{macro}_RANK]", np.asarray(values.shape, np.int32)))
        q = tensor.quantization
        if q is not None and q.scale is not None:  # per-channel along QUANT_DIM when there are several
            scale, zero = np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int32)
            decls.append(f"#define {macro}_N_SCALES {scale.size}\n#define {macro}_QUANT_DIM {q.quantizedDimension}\n"
                         f"extern const float {name}_scale[{macro}_N_SCALES];\n"
                         f"extern const int32_t {name}_zero_point[{macro}_N_SCALES];")
            defs.append(_c_array(f"const float {name}_scale[{macro}_N_SCALES]", scale))
            defs.append(_c_array(f"const int32_t {name}_zero_point[{macro}_N_SCALES]", zero))
    guard = f"{prefix.upper()}_WEIGHTS_H"
    header = (f"{_GENERATED}#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n#ifdef __cplusplus\n"
              "extern \"C\" {\n#endif\n\n" + "\n\n".join(decls) + "\n\n#ifdef __cplusplus\n}\n#endif\n"
              f"#endif /* {guard} */\n")
    source = f'{_GENERATED}#include "{prefix}_weights.h"\n\n' + "\n".join(defs)
    return header, source



def _model_header(model: bytes, name: str, meta: dict) -> str:
    """``<name>.h``: the constants the firmware checks the model and the bundle against."""
    sub = tflite_schema().ModelT.InitFromPackedBuf(model, 0).subgraphs[0]
    in_shape = [int(d) for d in sub.tensors[sub.inputs[0]].shape]
    out_shape = [int(d) for d in sub.tensors[sub.outputs[0]].shape]
    scale, zero = input_quantization(model) or (1.0, 0)  # float input: identity
    m = name.upper()
    sizes = ", ".join(str(int(k)) for k in meta["codebook_sizes"][: out_shape[1]])
    lines = {
        "INPUT_SHAPE": "{" + ", ".join(map(str, in_shape)) + "}",
        "INPUT_RANK": len(in_shape), "INPUT_ELEMENTS": int(np.prod(in_shape)),
        "INPUT_IS_INT8": int(input_quantization(model) is not None),
        "INPUT_SCALE": f"{float(np.float32(scale))!r}f", "INPUT_ZERO_POINT": zero,
        "OUTPUT_SHAPE": "{" + ", ".join(map(str, out_shape)) + "}",
        "N_Q": out_shape[1], "FRAMES": out_shape[2], "CODEBOOK_SIZES": "{" + sizes + "}",
        "FRAME_RATE_HZ": f"{float(meta['frame_rate_hz'])!r}f", "SAMPLE_RATE": int(meta["sample_rate"]),
        "WINDOW_SAMPLES": int(meta["window_samples"]), "CODEBOOK_HASH": f'"{meta["codebook_hash"]}"',
        "ARENA_BYTES": int(meta["arena_bytes"]), "TFLITE_SHA256": f'"{hashlib.sha256(model).hexdigest()}"',
    }
    defines = "\n".join(f"#define {m}_{key} {value}" for key, value in lines.items())
    return (f"{_GENERATED}#ifndef {m}_H\n#define {m}_H\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
            f"{defines}\n\n/* The .tflite flatbuffer, 16-byte aligned as TFLite Micro requires. */\n"
            f"extern const unsigned char {name}_tflite[];\nextern const unsigned int {name}_tflite_len;\n\n"
            f"#ifdef __cplusplus\n}}\n#endif\n#endif /* {m}_H */\n")


def write_c_sources(model: bytes, out_dir: Path, name: str = "acom_model", *, meta: dict) -> list[Path]:
    """Write ``<name>.h/.c`` (constants and the aligned flatbuffer) and ``<prefix>_weights.h/.c``.

    ``meta`` must hold ``META_KEYS``. The weights files hold each constant tensor (int8 weights, int32
    biases with their per-channel scales and zero points, float RVQ tensors) as named C arrays, so firmware
    can run the head with TFLite's integer arithmetic without parsing the flatbuffer.
    """
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ExportError(f"write_c_sources needs meta keys {list(META_KEYS)}; missing {missing}")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = name.removesuffix("_model") or name
    source = (f'{_GENERATED}#include "{name}.h"\n\n_Alignas(16) const unsigned char {name}_tflite[] = {{\n'
              f"{_c_values(np.frombuffer(model, np.uint8))}\n}};\n"
              f"const unsigned int {name}_tflite_len = {len(model)}u;\n")
    w_header, w_source = _weights_sources(model, prefix)
    files = {f"{name}.h": _model_header(model, name, meta), f"{name}.c": source,
             f"{prefix}_weights.h": w_header, f"{prefix}_weights.c": w_source}
    paths = []
    for fname, text in files.items():
        (out_dir / fname).write_text(text)
        paths.append(out_dir / fname)
    return paths
