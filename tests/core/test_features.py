"""LogMel against an independent numpy reference (np.fft.rfft, filterbank by np.interp), plus export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from acom.core.features import FrontEndConfig, LogMel, num_frames
from acom.errors import AcomError, DataError

SR = 16000
WIN, HOP, NFFT = 400, 160, 512
FLOOR = 1e-6


def _ref_mel_centres_and_edges(n_mels: int, f_min: float = 20.0, f_max: float = SR / 2) -> np.ndarray:
    """n_mels + 2 edge frequencies in Hz, evenly spaced on the HTK mel scale."""
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    mels = np.linspace(mel_lo, mel_hi, n_mels + 2)
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def _ref_filterbank(n_mels: int) -> np.ndarray:
    """[n_freqs, n_mels] triangles, each interpolated in Hz between its three mel points."""
    pts = _ref_mel_centres_and_edges(n_mels)
    bin_hz = np.fft.rfftfreq(NFFT, d=1.0 / SR)
    return np.stack([np.interp(bin_hz, pts[m : m + 3], [0.0, 1.0, 0.0]) for m in range(n_mels)], axis=1)


def _ref_logmel(wave: np.ndarray, n_mels: int) -> np.ndarray:
    """[n_mels, T] log-mel of a 1-D float64 wave, framed without centre padding."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    n_frames = 1 + (len(wave) - WIN) // HOP
    frames = np.stack([wave[t * HOP : t * HOP + WIN] * window for t in range(n_frames)])  # [T, WIN]
    power = np.abs(np.fft.rfft(frames, n=NFFT, axis=1)) ** 2  # [T, n_freqs]
    return np.log(power @ _ref_filterbank(n_mels) + FLOOR).T


def _sweep(n: int, amplitude: float, f0: float = 50.0, f1: float = 7900.0) -> np.ndarray:
    """Exponential sine sweep from f0 to f1 Hz over n samples."""
    t = np.arange(n) / SR
    dur = n / SR
    k = np.log(f1 / f0)
    return amplitude * np.sin(2.0 * np.pi * f0 * dur / k * (np.exp(t / dur * k) - 1.0))


def _run(module: LogMel, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(wave).float())[0].double().numpy()


def test_config_defaults_and_derived_values() -> None:
    cfg = FrontEndConfig()
    assert (cfg.win_length, cfg.hop_length, cfg.frame_rate) == (400, 160, 100.0)
    d = cfg.to_dict()
    assert d["n_mels"] == 40 and d["f_max"] is None and d["win_length"] == 400 and d["frame_rate"] == 100.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 64  # type: ignore[misc]  # frozen
    with pytest.raises(TypeError):
        FrontEndConfig(16000)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    "kwargs", [dict(n_fft=256), dict(f_min=9000.0), dict(f_max=9000.0), dict(log_floor=0.0), dict(n_mels=128)]
)
def test_bad_config_is_rejected(kwargs: dict) -> None:
    # n_mels=128 on a 512-point DFT leaves a low filter with no bin inside: a dead channel.
    with pytest.raises(AcomError):
        LogMel(FrontEndConfig(**kwargs))


def _max_error(module: LogMel, waves: list[np.ndarray], n_mels: int) -> float:
    worst = 0.0
    for wave in waves:
        with torch.no_grad():
            ours = module(torch.from_numpy(wave).to(module.dft_kernel.dtype))[0].double().numpy()
        ref = _ref_logmel(wave, n_mels)
        assert ours.shape == ref.shape == (n_mels, num_frames(len(wave), module.cfg))
        worst = max(worst, float(np.abs(ours - ref).max()))
    return worst


@pytest.mark.parametrize("n_mels", [40, 64, 80])
def test_float64_matches_numpy_reference_exactly(n_mels: int) -> None:
    # float64 separates the algorithm from float32 rounding: any framing, window, bin or filter
    # mistake shows up here as an error many orders of magnitude above 1e-6.
    rng = np.random.default_rng(n_mels)
    waves = [rng.standard_normal(8000) * 0.3, _sweep(16000, amplitude=1.0)]
    module = LogMel(FrontEndConfig(n_mels=n_mels), dtype=torch.float64)
    assert _max_error(module, waves, n_mels) < 1e-6


@pytest.mark.parametrize("n_mels", [40, 64, 80])
def test_float32_matches_numpy_reference(n_mels: int) -> None:
    # The sweep is at 0.1 peak (about speech level): at 0.5 peak float32 rounding alone reaches
    # 2e-3 in bands near log_floor for n_mels=80 (see LogMel's dtype note).
    rng = np.random.default_rng(n_mels)
    waves = [rng.standard_normal(8000) * 0.3, _sweep(16000, amplitude=0.1)]
    error = _max_error(LogMel(FrontEndConfig(n_mels=n_mels)), waves, n_mels)
    assert error < 1e-3, f"max |log-mel error| {error:.2e} for n_mels={n_mels}"


@pytest.mark.parametrize("n, frames", [(400, 1), (559, 1), (560, 2), (1000, 4), (16000, 98), (16123, 99)])
def test_frame_count(n: int, frames: int) -> None:
    cfg = FrontEndConfig()
    assert num_frames(n, cfg) == frames
    out = LogMel(cfg)(torch.zeros(3, n))
    assert out.shape == (3, 40, frames)
    # Silence is exactly the floor, not -inf or NaN.
    assert torch.allclose(out, torch.full_like(out, float(np.log(FLOOR))))


def test_num_frames_below_one_window_is_zero() -> None:
    assert num_frames(399, FrontEndConfig()) == 0


def test_one_dimensional_input_is_batch_of_one() -> None:
    wave = torch.randn(4000)
    module = LogMel(FrontEndConfig())
    assert torch.equal(module(wave), module(wave[None]))
    assert module(wave).shape == (1, 40, num_frames(4000, module.cfg))


@pytest.mark.parametrize("n_mels", [40, 64, 80])
def test_1khz_sine_peaks_in_nearest_mel_band(n_mels: int) -> None:
    centres = _ref_mel_centres_and_edges(n_mels)[1:-1]
    expected = int(np.argmin(np.abs(centres - 1000.0)))
    wave = 0.5 * np.sin(2.0 * np.pi * 1000.0 * np.arange(8000) / SR)
    feats = _run(LogMel(FrontEndConfig(n_mels=n_mels)), wave)  # [n_mels, T]
    assert int(np.argmax(feats.mean(axis=1))) == expected
    # And every frame agrees, since the tone is stationary.
    assert (feats.argmax(axis=0) == expected).all()


def test_batch_rows_equal_single_calls() -> None:
    module = LogMel(FrontEndConfig(n_mels=64))
    batch = torch.randn(4, 5000, generator=torch.Generator().manual_seed(0))
    batch[2] *= 1e-3  # a quiet row must not be affected by loud neighbours
    with torch.no_grad():
        out = module(batch)
        for i in range(batch.shape[0]):
            torch.testing.assert_close(out[i : i + 1], module(batch[i]), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "wave",
    [
        torch.zeros(399),
        torch.zeros(2, 100),
        torch.zeros(1, 1, 16000),
        torch.zeros(()),
        torch.zeros(2, 800, dtype=torch.int16),
    ],
)
def test_bad_input_raises_data_error(wave: torch.Tensor) -> None:
    with pytest.raises(DataError, match="LogMel"):
        LogMel(FrontEndConfig())(wave)


def test_buffers_stay_out_of_state_dict() -> None:
    module = LogMel(FrontEndConfig())
    assert module.state_dict() == {}
    assert {name: b.shape for name, b in module.named_buffers()} == {
        "dft_kernel": (2 * 257, 1, 400),
        "mel_fb": (40, 257),
    }


def test_torch_export_static_and_dynamic_length_match_eager() -> None:
    module = LogMel(FrontEndConfig()).eval()
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = module(x)

    static = torch.export.export(module, (x,))
    torch.testing.assert_close(static.module()(x), eager, rtol=0, atol=1e-5)
    # No FFT or complex op may reach the graph: the device runtimes have none.
    targets = {str(node.target) for node in static.graph.nodes if node.op == "call_function"}
    assert not any("fft" in t or "stft" in t or "complex" in t for t in targets), targets

    # min is two frames: export specializes size-1 dims, so T == 1 cannot share the dynamic graph.
    n = torch.export.Dim("n", min=WIN + HOP, max=10 * SR)
    dynamic = torch.export.export(module, (x,), dynamic_shapes=({1: n},))
    torch.testing.assert_close(dynamic.module()(x), eager, rtol=0, atol=1e-5)
    for length in (WIN + HOP, 719, 720, 7777):
        y = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            want = module(y)
        got = dynamic.module()(y)
        assert got.shape == (2, 40, num_frames(length, module.cfg))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
