"""`acom profile`: per-layer MACs against hand formulas and the exporter's count, a measured profile of a Pi
bundle with its energy table and picture, figures a profile lacks shown as unknown, bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from types import MappingProxyType

import pytest

from acom.boards import load_board
from acom.boards.link import load_link
from acom.cli import main as acom_main
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.macs import block_costs
from acom.profiling import energy
from acom.runtime.bundle import read_manifest
from tests.firmware_host.test_client import ACOM


def test_block_macs_match_hand_formulas():
    """A Conformer block over a 4 s window (T = 100 frames: attention is quadratic in T) and a TDNN convolution."""
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt", "asr")
    cfg = split.model.config
    rows = block_costs(split.model, seconds=4.0)
    d, m, k, t = cfg.edge_dim, cfg.ffn_mult, cfg.conv_kernel, 100
    # two feed-forwards, q/k/v and output projections, scores and weighted sum, the conv module's pointwise and
    # depthwise convolutions
    conformer = t * (4 * m * d * d + 4 * d * d + 3 * d * d + d * k) + 2 * t * t * d
    assert rows[1]["block"] == "ConformerBlock" and rows[1]["macs_per_s"] == conformer / 4.0
    ac, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")
    block = ac.model.blocks[0]
    conv = block.conv
    frames = block_costs(ac.model)[0]["out_frame_rate"]
    assert block_costs(ac.model)[0]["macs_per_s"] == conv.out_channels * conv.in_channels * conv.kernel_size[0] * frames


def test_profile_of_a_pi_bundle(rpi4_asr, tmp_path):
    png = tmp_path / "energy.png"
    run = subprocess.run([*ACOM, "profile", "--bundle", str(rpi4_asr), "--json", "--png", str(png)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    p = json.loads(run.stdout)
    m = read_manifest(rpi4_asr)
    layers = p["layers"]
    assert layers[0]["macs_per_s"] == m.costs["macs_per_s"]["frontend_as_exported"]
    assert layers[-2]["macs_per_s"] == m.costs["macs_per_s"]["rvq_encode"]
    # the blocks over the board's 4 s window: at least the exporter's 1 s count (attention grows with the window)
    blocks = sum(r["macs_per_s"] for r in layers[1:-2])
    assert m.costs["macs_per_s"]["layers"] <= blocks <= 1.2 * m.costs["macs_per_s"]["layers"]
    assert layers[-1]["macs_per_s"] == pytest.approx(sum(r["macs_per_s"] for r in layers[:-1]))
    assert p["memory"]["model_ram_bytes"] == m.costs["peak_memory_bytes"]
    assert 1e6 < p["measured"]["per_s"] < 1e9 and 0 < p["share_of_clock_lower_bound"] < 1
    board = load_board("rpi4")
    for name, link in p["links"].items():
        rows = {r["system"]: r for r in link["systems"]}
        acom = rows["acom"]
        want = energy.compute_w(board, p["measured"]["per_s"], 3)[0] + load_link(name).joules_per_s(
            acom["bps_on_wire"], acom["link_packets_per_s"])
        assert acom["total_w"] == pytest.approx(want, rel=1e-3) and acom["vs_acom"] == 1.0
        assert rows["opus-6k"]["total_w"] is None and rows["opus-6k"]["compute_how"].startswith("unknown")
        assert all(r["vs_acom"] == pytest.approx(r["total_w"] / acom["total_w"]) for r in rows.values()
                   if r["total_w"] is not None)
        assert rows["dac-16k (n_q 1)"]["vs_acom"] > 10  # a neural codec's encoder on a Pi costs far more
    assert p["idle"]["watts"] == board.energy["idle_power_w"].value
    ops = p["etdump"]["ms_per_s_audio"]  # ExecuTorch's own operator times, from acom-edge --profile
    assert ops["DELEGATE_CALL"] > 0 and any("GEMM" in k for k in ops) and p["etdump"]["total_ms_per_s_audio"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = subprocess.run([*ACOM, "profile", "--bundle", str(rpi4_asr), "--no-measure"], capture_output=True,
                          text=True, timeout=300)
    assert text.returncode == 0 and "ConformerBlock" in text.stdout and "unknown" in text.stdout


def test_missing_figures_are_unknown_with_the_field():
    board = load_board("cortex-m7")
    bare = dataclasses.replace(board, energy=MappingProxyType({}))
    assert energy.compute_w(bare, 1e6, 2) == (None, "unknown: boards/cortex-m7.toml has no energy.uw_per_mhz")
    assert energy.mac_w(bare, 1e6)[1] == "unknown: boards/cortex-m7.toml has no energy.energy_per_mac_pj"
    assert energy.idle_w(board)[0] is None and "no idle" in energy.idle_w(board)[1]
    watts, how = energy.compute_w(board, 240e6, 2)  # 120 M cycles of 480 MHz
    assert watts == pytest.approx(0.25 * 480 * board.energy["uw_per_mhz"].value * 1e-6) and "25.00%" in how


def test_bad_input(rpi4_asr, tmp_path, capsys):
    assert acom_main(["profile", "--bundle", str(tmp_path)]) == 2
    assert "manifest" in capsys.readouterr().err
    other = tmp_path / "b"
    other.mkdir()
    manifest = json.loads((rpi4_asr / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "board": "pi-zero"}))
    assert acom_main(["profile", "--bundle", str(other), "--no-measure"]) == 2
    assert "unknown board 'pi-zero'" in capsys.readouterr().err
    assert acom_main(["profile", "--bundle", str(rpi4_asr), "--packet-s", "0"]) == 2
    with pytest.raises(SystemExit) as e:
        acom_main(["profile", "--bundle", str(rpi4_asr), "--link", "smoke-signals"])
    assert e.value.code == 2 and "invalid choice: 'smoke-signals'" in capsys.readouterr().err


def test_profile_of_an_npu_bundle_beside_vela(m55_ac):
    """Cortex-M55 + Ethos-U55: the firmware measured per stage, its sections in the memory, and vela's own
    per-layer MACs beside the model's. vela counts the NPU's work: never less than the model's MACs, equal (within
    5%) for a convolution it runs as stated, more where it pads a strided kernel or spreads a dilation of 3 over
    dense taps, and pooling as MACs."""
    from acom.profiling.profile import profile
    p = profile(m55_ac, ["lora"], 1.0)
    m = read_manifest(m55_ac)
    assert p["memory"]["firmware_sections"] == m.firmware.sections
    assert set(p["measured"]["stages"]) == {"front_end", "graph", "packets"}
    assert 1e6 < p["measured"]["per_s"] < 40e6
    functions = p["measured"]["functions_per_s"]  # the firmware's functions by instructions, largest first
    assert "acom_features_i8" in functions and any(k.startswith("acom_conv") for k in functions)
    assert p["vela"]["npu_ops"] > 0 and p["vela"]["cycles"] > 0
    npu = [r for r in p["layers"] if "npu_macs_per_s" in r]
    assert len(npu) >= 3
    assert all(r["npu_macs_per_s"] >= 0.95 * r["macs_per_s"] for r in npu)
    assert any(r["macs_per_s"] > 0 and abs(r["npu_macs_per_s"] / r["macs_per_s"] - 1) <= 0.05 for r in npu)
