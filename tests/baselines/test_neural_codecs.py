"""Neural-codec encoder costs: shapes and frame rates, parameter counts, and the MAC counter itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from acom.baselines.neural_codecs import (
    count_macs,
    dac16k_encoder,
    encodec24k_encoder,
    lstm_macs,
    n_params,
    neural_codec_costs,
    rvq_encoder,
)
from acom.errors import AcomError


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return neural_codec_costs()


def row(rows: list[dict], system: str, n_q: int) -> dict:
    return next(r for r in rows if r["system"] == system and r["n_q"] == n_q)


@torch.no_grad()
def test_dac16k_one_second_is_50_frames_of_1024() -> None:
    assert dac16k_encoder()(torch.randn(1, 1, 16000)).shape == (1, 1024, 50)


@torch.no_grad()
def test_encodec24k_one_second_is_75_frames_of_128() -> None:
    enc = encodec24k_encoder()
    assert enc(torch.randn(2, 1, 24000)).shape == (2, 128, 75)
    assert enc(torch.randn(1, 1, 24001)).shape == (1, 128, 76)  # causal padding fills the last frame


def test_params_match_published_sizes() -> None:
    # DAC 16 kHz: the full model's fp32 checkpoint is ~297 MB (~74.2 M values); its decoder + RVQ come to
    # ~52.6 M, leaving ~21.6 M for the encoder. EnCodec 24 kHz: encoder and decoder mirror each other and
    # the model is ~19 M parameters with 32 x 1024 x 128 = 4.2 M of codebooks, so ~7.4 M per side.
    assert 21.0e6 < n_params(dac16k_encoder()) < 22.5e6
    assert 7.0e6 < n_params(encodec24k_encoder()) < 7.8e6


@pytest.mark.parametrize("c_in,c_out,k,stride,dilation,t", [(3, 5, 7, 1, 1, 100), (8, 16, 4, 2, 1, 64),
                                                             (4, 4, 7, 1, 9, 200)])
def test_conv_macs_are_cin_cout_k_tout(c_in: int, c_out: int, k: int, stride: int, dilation: int,
                                       t: int) -> None:
    conv = nn.Conv1d(c_in, c_out, k, stride=stride, dilation=dilation)
    t_out = conv(torch.zeros(1, c_in, t)).shape[-1]
    assert count_macs(conv, torch.zeros(1, c_in, t)) == c_in * c_out * k * t_out


def test_lstm_is_added_analytically_and_not_twice() -> None:
    lstm = nn.LSTM(24, 16, num_layers=2)
    x = torch.zeros(10, 3, 24)  # [T, B, C]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        lstm(x)
    assert counter.get_total_flops() == 0  # if torch starts counting LSTMs, the hook would double count
    per_step = 4 * 16 * (24 + 16) + 4 * 16 * (16 + 16)
    assert lstm_macs(lstm, 10, 3) == per_step * 10 * 3
    assert count_macs(lstm, x) == per_step * 10 * 3


@torch.no_grad()
def test_encodec_count_includes_its_lstm(rows: list[dict]) -> None:
    with FlopCounterMode(display=False) as counter:
        encodec24k_encoder()(torch.zeros(1, 1, 24000))
    lstm = 2 * 4 * 512 * (512 + 512) * 75  # 2 layers x 4 gates x (input + hidden) x hidden x 75 frames
    assert row(rows, "encodec-24k", 2)["encoder_macs_per_s"] == counter.get_total_flops() / 2 + lstm


@pytest.mark.parametrize("n_q", [1, 3])
def test_quantizer_macs_follow_the_formula(n_q: int) -> None:
    t = 50
    dac = rvq_encoder("dac-16k", n_q)
    codes = dac(torch.randn(1, 1024, t))
    assert codes.shape == (1, n_q, t) and 0 <= codes.min() and codes.max() < 1024
    # in_proj and search every stage, out_proj for all but the last
    assert count_macs(dac, torch.randn(1, 1024, t)) == t * (n_q * (1024 * 8 + 1024 * 8) + (n_q - 1) * 8 * 1024)
    assert count_macs(rvq_encoder("encodec-24k", n_q), torch.randn(1, 128, t)) == t * n_q * 1024 * 128


def test_unknown_system_names_the_allowed_ones() -> None:
    with pytest.raises(AcomError, match="dac-16k"):
        rvq_encoder("opus", 1)


def test_cost_table(rows: list[dict]) -> None:
    keys = {"system", "sample_rate", "frame_rate", "bitrate_bps", "n_q", "encoder_macs_per_s",
            "quantizer_macs_per_s", "device_macs_per_s", "params"}
    assert all(set(r) == keys for r in rows)
    assert all(r["device_macs_per_s"] == r["encoder_macs_per_s"] + r["quantizer_macs_per_s"] for r in rows)
    dac = row(rows, "dac-16k", 12)
    assert (dac["sample_rate"], dac["frame_rate"], dac["bitrate_bps"]) == (16000, 50, 6000)
    assert row(rows, "dac-16k", 1)["bitrate_bps"] == 500
    assert row(rows, "encodec-24k", 2)["bitrate_bps"] == 1500
    assert row(rows, "encodec-24k", 8)["bitrate_bps"] == 6000
    assert row(rows, "encodec-24k", 8)["frame_rate"] == 75
    # order of magnitude from the layer shapes: ~12 G MAC/s for DAC 16 kHz, ~1.5 G for EnCodec 24 kHz
    assert 11e9 < dac["encoder_macs_per_s"] < 13.5e9
    assert 1.3e9 < row(rows, "encodec-24k", 8)["encoder_macs_per_s"] < 1.7e9
