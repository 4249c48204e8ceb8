"""acom plan: every cut and n_q of a checkpoint against a board, estimated without lowering, in seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from acom.cli import EXIT_BAD_INPUT, main
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.macs import edge_macs_per_second
from acom.profiling.plan import make_plan, nearest_fitting
from tests.export.helpers import edited_board
from tests.runtime.conftest import pooled_checkpoint

ASR, AC = PRETRAINED / "asr" / "split.pt", PRETRAINED / "ac" / "split.pt"
TOLERANCE = 0.15  # estimate within 15% of what acom-export measured


def _row(plan, cut: int, n_q: int):
    return next(r for r in plan.rows if r.cut == cut and r.n_q == n_q)


def test_plan_answers_in_seconds_with_every_cut_and_stage() -> None:
    t0 = time.perf_counter()
    plan = make_plan(ASR, "rpi4")
    took = time.perf_counter() - t0
    assert took < 20, f"acom plan took {took:.1f} s"  # measured ~1.5 s here (the load of torch not counted)
    split, _ = load_checkpoint(ASR, "asr")
    assert {(r.cut, r.n_q) for r in plan.rows} == {(c, q) for c in range(len(split.model.blocks)) for q in (1, 2, 3)}
    own = _row(plan, split.split_layer, 1)
    assert own.own_cut and not _row(plan, 0, 1).own_cut
    # the own cut's MACs are export's figure for the board (front end as exported on a Linux board)
    assert own.macs["total"] == pytest.approx(edge_macs_per_second(split.edge(1))["total_as_exported"], rel=1e-6)
    assert own.bps == 150.0 and own.fits and plan.recommendation.startswith("cheapest that fits rpi4")
    assert any("retrained" in n for n in plan.notes)


def test_a_pooled_quantizer_is_planned_at_its_code_frame_rate(tmp_path: Path) -> None:
    ckpt = pooled_checkpoint(tmp_path / "split.pt")  # 2 frames a code frame
    split, _ = load_checkpoint(ckpt, "asr")
    own = _row(make_plan(ckpt, "rpi4"), split.split_layer, 1)
    assert own.frame_rate == 12.5 and own.bps == 75.0  # half the shipped model's 150 bit/s
    # the RVQ's search at 12.5 frames/s; the average pool's ~1 k adds a second are left out of the plan's sum
    assert own.macs["total"] == pytest.approx(edge_macs_per_second(split.edge(1))["total_as_exported"], rel=1e-4)


def test_own_cut_on_a_microcontroller_uses_the_fft_front_end() -> None:
    plan = make_plan(AC, "cortex-m4")
    split, _ = load_checkpoint(AC, "ac")
    own = _row(plan, split.split_layer, 2)
    assert own.macs["total"] == pytest.approx(edge_macs_per_second(split.edge(2))["total"], rel=1e-6)
    assert own.instructions_per_s > own.macs["total"] and 0 < own.clock_share < 1
    assert own.energy_uj_per_s["clock_share"] > 0 and "uW/MHz" in own.energy_uj_per_s["clock_share_how"]


def test_estimates_agree_with_a_real_linux_export(ac_bundle) -> None:
    """The rpi4 (ExecuTorch only) export of the classifier, n_q 1: planned memory and .pte size."""
    bundle, manifest = ac_bundle
    rpi4_et = edited_board(bundle.parent, "rpi4", runtimes='["executorch-xnnpack"]', name='"rpi4-et"')
    plan = make_plan(AC, str(rpi4_et))
    row = _row(plan, manifest["model"]["split_layer"], manifest["n_q"])
    assert row.ram_bytes / manifest["peak_memory_bytes"] == pytest.approx(1, abs=TOLERANCE)
    assert row.flash_bytes / manifest["model_flash_bytes"] == pytest.approx(1, abs=TOLERANCE)


def test_estimates_agree_with_a_real_microcontroller_export(ac_m7_manifest) -> None:
    """The cortex-m7 (TFLite Micro) export of the classifier, n_q 2: arena and .tflite size."""
    m = ac_m7_manifest
    row = _row(make_plan(AC, "cortex-m7"), m["model"]["split_layer"], m["n_q"])
    assert row.ram_bytes / m["peak_memory_bytes"] == pytest.approx(1, abs=TOLERANCE)
    assert row.flash_bytes / m["model_flash_bytes"] == pytest.approx(1, abs=TOLERANCE)


def test_json_and_png(tmp_path: Path, capsys) -> None:
    png = tmp_path / "plan.png"
    assert main(["plan", "--checkpoint", str(AC), "--board", "cortex-m7", "--json", "--png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "ac" and len(out["rows"]) == 7 * 2 and all("fits" in r for r in out["rows"])
    assert any(r["front"] for r in out["rows"]) and out["recommendation"]
    assert png.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["plan.png"]


def test_table_with_a_radio_link(capsys) -> None:
    assert main(["plan", "--checkpoint", str(ASR), "--board", "cortex-m4", "--link", "ble", "--n-q-max", "1"]) == 0
    out = capsys.readouterr().out
    assert "radio over ble" in out and "recommendation: cheapest that fits cortex-m4" in out
    assert "no run" in out and "flash" in out


def test_runs_give_the_metric_and_the_best_that_fits(tmp_path: Path) -> None:
    report = {"task": "ac", "points": [
        {"system": "acom", "test_set": "test", "snr_db": None, "decoder": "argmax", "n_q": 1, "split_layer": 3,
         "codebook_sizes": [64], "nominal_bps": 30.0, "accuracy": 0.9},
        {"system": "acom", "test_set": "test", "snr_db": None, "decoder": "argmax", "n_q": 2, "split_layer": 3,
         "codebook_sizes": [64, 64], "nominal_bps": 60.0, "accuracy": 0.95}]}
    (tmp_path / "ac_rate_accuracy.json").write_text(json.dumps(report))
    plan = make_plan(AC, "cortex-m7", runs=tmp_path)
    assert _row(plan, 3, 2).run["value"] == 0.95 and _row(plan, 0, 1).run is None
    assert plan.front_axes == ["cost", "bps", "accuracy"] and _row(plan, 3, 2).front and _row(plan, 3, 1).front
    assert "best accuracy that fits: cut 3 n_q 2" in plan.recommendation


def test_nearest_fitting_configuration_of_a_refused_export() -> None:
    """The ASR model at its own cut is over the cortex-m4 budgets; the nearest that fits is named."""
    split, _ = load_checkpoint(ASR, "asr")
    row = nearest_fitting(split, "cortex-m4", 1)
    assert row is not None and row.fits and abs(row.cut - split.split_layer) <= 2


def test_export_refusal_names_the_nearest_fitting_configuration(tmp_path: Path) -> None:
    """A refused export names the nearest cut and n_q whose estimate fits (export/footprint.py: below the plan,
    so export can call it) and the plan's command; far over budget, it refuses before lowering, in seconds."""
    import time

    from acom.boards import load_board
    from acom.errors import ExportError
    from acom.export.footprint import nearest_fit
    from acom.export.pipeline import ExportOptions, _check_fit, export

    split, _ = load_checkpoint(ASR, "asr")
    board = load_board("cortex-m4")
    cut, n_q, fp = nearest_fit(split, board, 1, 16000)
    assert abs(cut - split.split_layer) <= 2 and fp.ram <= 64 * 1024 and fp.flash <= 512 * 1024
    assert (cut, n_q) == (nearest_fitting(split, "cortex-m4", 1).cut, nearest_fitting(split, "cortex-m4", 1).n_q)
    said = rf"RAM 171 KiB > 64 KiB.*cut after block {cut} with n_q {n_q}.*acom plan --checkpoint CHECKPOINT"
    with pytest.raises(ExportError, match=said):
        _check_fit(board, 175344, 506368, split, 1, 16000)  # the ASR model's TFLM arena and .tflite
    start = time.monotonic()
    with pytest.raises(ExportError, match=rf"estimated before lowering.*cut after block {cut} with n_q {n_q}"):
        export(ExportOptions(board="cortex-m4", task="asr", out=tmp_path / "b", data=tmp_path, log=lambda s: None))
    assert time.monotonic() - start < 30 and not (tmp_path / "b").exists()


# --- bad input: exit 2, the field named, nothing written -------------------------------------------------------

def _bad(capsys, *args: str) -> str:
    assert main(["plan", *args]) == EXIT_BAD_INPUT
    return capsys.readouterr().err


def test_uncut_checkpoint_is_refused(capsys) -> None:
    err = _bad(capsys, "--checkpoint", str(PRETRAINED / "asr" / "full.pt"), "--board", "rpi4")
    assert "'rvq_config'" in err and "split checkpoint" in err and "Traceback" not in err


def test_not_a_checkpoint_is_refused(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "not a readable checkpoint" in _bad(capsys, "--checkpoint", str(bad), "--board", "rpi4")


def test_unknown_board_is_refused(capsys) -> None:
    err = _bad(capsys, "--checkpoint", str(AC), "--board", "esp32")
    assert "unknown board 'esp32'" in err and "cortex-m4" in err


def test_board_missing_a_figure_is_refused(tmp_path: Path, capsys) -> None:
    board = edited_board(tmp_path, "cortex-m7", macs_per_s_budget='"fast"')
    assert "'macs_per_s_budget'" in _bad(capsys, "--checkpoint", str(AC), "--board", str(board))
    text = board.read_text().replace('"fast"', "1000000")
    cut = text.index("[energy.uw_per_mhz]")
    board.write_text(text[:cut] + text[text.index("[energy.active_power_mw]"):])
    assert "'energy.uw_per_mhz'" in _bad(capsys, "--checkpoint", str(AC), "--board", str(board))


def test_bad_stage_count_and_png_folder_are_refused(tmp_path: Path, capsys) -> None:
    assert "--n-q-max 4: allowed 1..2" in _bad(capsys, "--checkpoint", str(AC), "--board", "rpi4", "--n-q-max", "4")
    png = tmp_path / "missing" / "plan.png"
    assert "does not exist" in _bad(capsys, "--checkpoint", str(AC), "--board", "rpi4", "--png", str(png))
    assert not png.parent.exists()


def test_unknown_link_is_refused(capsys) -> None:
    assert "unknown link 'zigbee'" in _bad(capsys, "--checkpoint", str(AC), "--board", "rpi4", "--link", "zigbee")


def test_runs_folder_must_exist(tmp_path: Path, capsys) -> None:
    assert "--runs" in _bad(capsys, "--checkpoint", str(AC), "--board", "rpi4", "--runs", str(tmp_path / "no"))
