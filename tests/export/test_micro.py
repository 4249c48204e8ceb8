"""TFLite Micro, vela and C sources for the shipped classifier's int8 edge graph."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from acom.export.litert import input_quantization, quantize_and_convert, run_litert
from acom.export.micro import _constant_tensors, run_tflm, run_vela, write_c_sources
from tests.export.helpers import ac_graph_and_windows

META = {"codebook_sizes": [64, 64], "frame_rate_hz": 5.0, "sample_rate": 16000, "window_samples": 16000,
        "codebook_hash": "0" * 64, "arena_bytes": 22032}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    graph, xs = ac_graph_and_windows(tmp_path_factory.mktemp("urban") / "set", clips_per_class=1, seed=5)
    return {"bytes": quantize_and_convert(graph, xs[0], xs[::3]), "inputs": [x.numpy() for x in xs]}


def test_tflm_codes_equal_litert(model: dict) -> None:
    codes, arena = run_tflm(model["bytes"], model["inputs"])
    expected = run_litert(model["bytes"], model["inputs"])  # builtin kernels: TFLM's integer arithmetic
    assert all(c.dtype == np.int32 and np.array_equal(c, e) for c, e in zip(codes, expected))
    assert 4096 < arena < 64 * 1024  # measured 22032 bytes on a 64-bit host


def test_vela_puts_layers_on_the_npu(model: dict, tmp_path: Path) -> None:
    path = tmp_path / "ac.tflite"
    path.write_bytes(model["bytes"])
    report = run_vela(path, tmp_path / "vela")
    assert "Conv2DBias" in report["npu_ops"] and "ArgMax" in report["cpu_ops"]
    assert "ArgMax" not in report["npu_ops"]  # the float RVQ search stays on the CPU
    assert report["sram_bytes"] > 0 and report["flash_bytes"] > 0 and report["vela_model"].exists()
    assert report["inference_s"] == pytest.approx(report["cycles"] / report["clock_hz"], rel=1e-3)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_sources_compile_and_hold_the_model(model: dict, tmp_path: Path) -> None:
    paths = write_c_sources(model["bytes"], tmp_path, meta=META)
    assert sorted(p.name for p in paths) == ["acom_model.c", "acom_model.h", "acom_weights.c", "acom_weights.h"]
    header = (tmp_path / "acom_weights.h").read_text()
    first = re.search(r"extern const int8_t (\w+)\[", header).group(1)
    main = tmp_path / "main.c"
    main.write_text(f"""#include <stdint.h>
#include <stdio.h>
#include "acom_model.h"
#include "acom_weights.h"
static const int32_t out_shape[] = ACOM_MODEL_OUTPUT_SHAPE;
int main(void) {{
    long sum = 0;
    for (unsigned i = 0; i < sizeof {first} / sizeof {first}[0]; ++i) sum += {first}[i];
    printf("%u %d %d %ld %.9g\\n", acom_model_tflite_len, (int)((uintptr_t)acom_model_tflite % 16),
           (int)out_shape[1], sum, (double)ACOM_MODEL_INPUT_SCALE);
    return 0;
}}
""")
    for c in (p for p in paths if p.suffix == ".c"):
        subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(c)], check=True)
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-std=c11", "-O0", "-o", str(exe), str(main), *(str(p) for p in paths if p.suffix == ".c")],
                   check=True)
    length, align, n_q, total, scale = subprocess.run([str(exe)], capture_output=True, text=True,
                                                      check=True).stdout.split()
    assert int(length) == len(model["bytes"]) and int(align) == 0 and int(n_q) == 2
    assert float(scale) == pytest.approx(input_quantization(model["bytes"])[0], rel=1e-6)
    values = next(v for name, _, v in _constant_tensors(model["bytes"]) if f"acom_{name}" == first)
    assert int(total) == int(values.astype(np.int64).sum())
