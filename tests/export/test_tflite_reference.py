"""TFLite's integer arithmetic in the PyTorch reference: the roundings, one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acom.export.tflite_reference import TfliteReference, quantize_constant, quantize_multiplier, requantize


def test_multiplier_is_q31_with_a_shift() -> None:
    q, shift = quantize_multiplier(np.array([0.5, 0.0078, 1.5]))
    assert q.tolist()[0] == 1 << 30 and shift.tolist() == [0, -7, 1]
    assert np.allclose(q * 2.0 ** (shift.astype(float) - 31), [0.5, 0.0078, 1.5], rtol=1e-9)


def test_requantize_rounds_twice() -> None:
    # 3269 * 0.0078 = 25.4982: one rounding gives 25; TFLite's high multiply lands on 3264 / 2^7 = 25.5 exactly,
    # and the shift rounds that half away from zero to 26 (the case measured in the classifier's MUL).
    assert round(3269 * 0.0078) == 25
    assert requantize(torch.tensor([3269, -3269]), np.array(0.0078)).tolist() == [26, -26]
    # Without a shift only gemmlowp's high multiply rounds, and it rounds ties up: 1.5 -> 2, -1.5 -> -1.
    assert requantize(torch.tensor([3, -3, 5]), np.array(0.5)).tolist() == [2, -1, 3]


def test_ruy_rounds_the_last_ties_up() -> None:
    # -19108 * M = -11.50026 (the ASR stem's channel 0): TFLM gives -12, LiteRT's builtin conv (ruy) -11.
    real = np.array(-11.50026129723355 / -19108)
    assert requantize(torch.tensor([-19108]), real).item() == -12
    assert requantize(torch.tensor([-19108]), real, ties_up=True).item() == -11
    assert requantize(torch.tensor([19108]), real, ties_up=True).item() == 12  # positive ties: no difference


def test_per_channel_multipliers() -> None:
    acc = torch.tensor([[[100, -100], [100, -100]]])  # [1, C=2, T=2]
    out = requantize(acc, np.array([0.01, 0.1]), channel_dim=1)
    assert out.tolist() == [[[1, -1], [10, -10]]]


def test_constants_quantize_in_float64() -> None:
    scale = torch.tensor([0.001187203568406403], dtype=torch.float32)
    w = torch.tensor([[-0.12050116062164307]], dtype=torch.float32)  # / scale = -101.4999987 in float64
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed)

    fake = torch.ops.quantized_decomposed.quantize_per_channel(w, scale, torch.zeros(1, dtype=torch.int64), 0,
                                                               -127, 127, torch.int8)
    assert fake.item() == -102  # float32 division lands on -101.5, then half to even
    assert quantize_constant(w, scale, torch.zeros(1), -127, 127, axis=0).item() == -101


def test_kernels_must_be_known() -> None:
    gm = torch.fx.symbolic_trace(torch.nn.Identity())
    with pytest.raises(ValueError, match="tflm"):
        TfliteReference(gm, "xnnpack")


def test_the_conformer_head_in_litert_and_tflm(speech_set) -> None:
    """The shipped ASR head (negative conv outputs, fully connected layers, float islands): LiteRT's builtin
    kernels follow the reference with ruy's rounding, TFLite Micro the one with gemmlowp's, each far closer than
    the fake-quant graph is on the later stages."""
    from acom.core.checkpoint import load_checkpoint
    from acom.export import litert, verify
    from acom.export.graph import EdgeGraph
    from acom.export.micro import run_tflm
    from acom.export.pipeline import PRETRAINED, _dataset_items
    from acom.export.tflite_reference import tflite_runner

    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt", "asr")
    graph = EdgeGraph(split, frontend=False).eval()
    rate = graph.frontend.cfg.sample_rate
    window, per_code = int(2.0 * rate), int(round(rate / split.frame_rate))
    calibration = verify.make_windows(graph, _dataset_items("asr", speech_set, "train", 6), window, per_code)
    test = verify.make_windows(graph, _dataset_items("asr", speech_set, "test-clean", 6), window, per_code)
    example = torch.from_numpy(calibration.inputs[0])
    quantized = litert.quantize(graph, example, [torch.from_numpy(x) for x in calibration.inputs])
    model = litert.convert(quantized, example)

    def agree(a, b):  # share of equal codes per stage over all windows
        return np.mean([(x == y).mean(axis=(0, 2)) for x, y in zip(a, b)], axis=0)

    fake = verify.torch_runner(quantized)(test.inputs)
    builtin, tflm = litert.run_litert(model, test.inputs), run_tflm(model, test.inputs)[0]
    on_litert, on_tflm = agree(builtin, tflite_runner(quantized, "litert")(test.inputs)), agree(
        tflm, tflite_runner(quantized, "tflm")(test.inputs))
    # Measured on these 15 windows (750 codes per stage): LiteRT [1.0, 0.9987, 0.9987], TFLM [1.0, 1.0, 0.9973];
    # against the fake-quant graph LiteRT [0.992, 0.944, 0.92], TFLM [0.987, 0.945, 0.912].
    assert (on_litert >= 0.99).all() and (on_tflm >= 0.99).all(), (on_litert, on_tflm)
    assert on_litert[-1] > agree(builtin, fake)[-1] and on_tflm[-1] > agree(tflm, fake)[-1]
