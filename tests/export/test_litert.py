"""int8 LiteRT lowering of the shipped classifier's edge graph: op set, and codes against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acom.errors import ExportError
from acom.export.litert import convert, input_quantization, quantize, run_litert, tflite_ops
from tests.export.helpers import ac_graph_and_windows


@pytest.fixture(scope="module")
def lowered(tmp_path_factory) -> dict:
    """The ac edge graph (features in), its PT2E reference and its .tflite, calibrated on synthetic clips."""
    graph, xs = ac_graph_and_windows(tmp_path_factory.mktemp("urban") / "set", clips_per_class=2, seed=3)
    calibration, test = xs[::4], xs[1::2]
    reference = quantize(graph, xs[0], calibration)
    return {"graph": graph, "reference": reference, "model": convert(reference, xs[0]), "test": test}


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Share of equal codes per stage [n_q] over lists of [1, n_q, T]."""
    return np.mean([(x == y).mean(axis=(0, 2)) for x, y in zip(a, b)], axis=0)


def test_int8_layers_int32_codes(lowered: dict) -> None:
    ops = tflite_ops(lowered["model"])
    assert ops.count("ARG_MAX") == 2 and "CONV_2D" in ops and "AVERAGE_POOL_2D" in ops
    # The int8 layers form one run from the int8 input to the float RVQ: no QUANTIZE back into int8.
    assert "QUANTIZE" not in ops
    assert input_quantization(lowered["model"]) is not None


def test_codes_match_pytorch(lowered: dict) -> None:
    inputs = [x.numpy() for x in lowered["test"]]
    codes = run_litert(lowered["model"], inputs)
    with torch.no_grad():
        floats = [lowered["graph"](x).numpy() for x in lowered["test"]]
        fake_quant = [lowered["reference"](x).numpy() for x in lowered["test"]]
    assert all(c.dtype == np.int32 and c.shape == floats[0].shape for c in codes)
    # Measured on these 10 windows (50 codes per stage): [1.0, 0.98] against float and against the PT2E
    # graph; on 20 real UrbanSound8K windows [0.99, 0.97] and [1.0, 1.0]. One flipped code is 0.02 here.
    assert (agreement(codes, floats) >= [0.9, 0.86]).all(), agreement(codes, floats)
    assert (agreement(codes, fake_quant) >= 0.94).all(), agreement(codes, fake_quant)


def test_codes_match_the_integer_reference_exactly(lowered: dict) -> None:
    """LiteRT's builtin kernels and TFLite Micro reproduce the graph run in TFLite's integer arithmetic, code
    for code; the fake-quant graph (float rounding) is the weaker reference it replaced."""
    from acom.export.micro import run_tflm
    from acom.export.tflite_reference import TfliteReference, tflite_runner

    inputs = [x.numpy() for x in lowered["test"]]
    litert_codes = run_litert(lowered["model"], inputs)
    tflm_codes = run_tflm(lowered["model"], inputs)[0]
    assert agreement(litert_codes, tflite_runner(lowered["reference"], "litert")(inputs)).tolist() == [1.0, 1.0]
    assert agreement(tflm_codes, tflite_runner(lowered["reference"], "tflm")(inputs)).tolist() == [1.0, 1.0]
    interp = TfliteReference(lowered["reference"])
    interp.run(torch.from_numpy(inputs[0]))
    assert interp.emulated >= 10  # every conv, mul, add and the pooling of the three TDNN blocks


def test_calibration_must_fit(lowered: dict) -> None:
    x = lowered["test"][0]
    with pytest.raises(ExportError, match="at least one"):
        quantize(lowered["graph"], x, [])
    with pytest.raises(ExportError, match="exported shape"):
        quantize(lowered["graph"], x, [x[..., :50]])
