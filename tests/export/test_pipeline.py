"""acom-export end to end on the shipped classifier: bundle contents, verification, and every refusal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from acom.core.checkpoint import load_checkpoint
from acom.errors import ExportError
from acom.export import pipeline
from acom.export.cli import main as export_main
from acom.export.executorch import PteRunner
from acom.export.pipeline import ExportOptions, export
from acom.runtime.bundle import load_tail
from tests.export.helpers import edited_board


def test_bundle_lists_every_file_with_its_hash(ac_bundle) -> None:
    out, manifest = ac_bundle
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["task"] == "ac"
    for rel, entry in on_disk["files"].items():
        data = (out / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert {"edge.pte", "tail.safetensors", "priors.safetensors"} <= set(on_disk["files"])
    split, _ = load_checkpoint(pipeline.PRETRAINED / "ac" / "split.pt")
    assert on_disk["codebook_hash"] == split.rvq.codebook_hash()
    assert on_disk["n_q"] == 1 and on_disk["codebook_sizes"] == [64]
    assert on_disk["nominal_bps"] == pytest.approx(split.frame_rate * 6)
    assert not list(out.parent.glob(".*tmp*")), "temporary folder left behind"


def test_verification_codes_and_metric(ac_bundle) -> None:
    _, manifest = ac_bundle
    v = manifest["verification"]
    assert v["passed"] and v["items"] == 12
    (check,) = v["checks"]
    assert all(a >= 0.99 for a in check["agreement_vs_quantized_reference"])
    assert check["metric_loss_points"] <= 0.5
    assert 0.0 <= check["metric"]["value"] <= 1.0


def test_pte_codes_decode_with_the_bundled_tail(ac_bundle, urban_set: Path) -> None:
    out, manifest = ac_bundle
    runner = PteRunner((out / "edge.pte").read_bytes())
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((1, manifest["graph"]["window_samples"]))).astype(np.float32)
    codes = runner(wave)
    assert codes.dtype == np.int32 and list(codes.shape) == manifest["graph"]["codes_shape"]
    assert codes.min() >= 0 and codes.max() < 64
    tail = load_tail(out)
    split, _ = load_checkpoint(pipeline.PRETRAINED / "ac" / "split.pt")
    c = torch.from_numpy(codes.astype(np.int64))
    with torch.no_grad():
        torch.testing.assert_close(tail.server()(c), split.server()(c))
    priors = load_file(str(out / "priors.safetensors"))
    assert "stage0.unigram" in priors


def test_unknown_board_lists_known_ones() -> None:
    with pytest.raises(ExportError, match="rpi4"):
        export(ExportOptions(board="rpi9", task="ac", log=lambda s: None))
    assert export_main(["--board", "rpi9"]) == 2


def test_stages_out_of_range_are_refused_before_any_work(tmp_path: Path) -> None:
    for n_q in (0, 4):  # the shipped ASR model has 3 stages
        with pytest.raises(ExportError, match=f"--n-q {n_q}: this model has 1..3 quantizer stages"):
            export(ExportOptions(board="rpi4", task="asr", n_q=n_q, out=tmp_path / "b", log=lambda s: None))
    assert export_main(["--board", "rpi4", "--task", "asr", "--n-q", "0", "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()


def test_corrupt_and_mismatched_checkpoints(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="bad.pt"):
        export(ExportOptions(board="rpi4", checkpoint=bad, out=tmp_path / "b", log=lambda s: None))
    with pytest.raises(ExportError, match="task 'ac'"):
        export(ExportOptions(board="rpi4", task="asr", checkpoint=pipeline.PRETRAINED / "ac" / "split.pt",
                             out=tmp_path / "b", log=lambda s: None))
    assert not (tmp_path / "b").exists()


def test_model_over_the_mac_budget_says_by_how_much(tmp_path: Path) -> None:
    board = edited_board(tmp_path, "rpi4", macs_per_s_budget="1_000_000")
    with pytest.raises(ExportError, match=r"M MAC per second .* budget of 1.0 M \(\d+\.\dx over\)"):
        export(ExportOptions(board=str(board), task="ac", out=tmp_path / "b", log=lambda s: None))


def test_existing_out_is_kept_without_force(tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        export(ExportOptions(board="rpi4", task="ac", out=out, log=lambda s: None))
    assert (out / "keep").read_text() == "x"


def test_failed_verification_writes_nothing(urban_set: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "CODE_AGREEMENT_MIN", 1.01)  # unreachable: every artifact fails
    board = edited_board(tmp_path, "rpi4", runtimes='["executorch-xnnpack"]', window_s="1.0")
    with pytest.raises(ExportError, match="code agreement below 101%"):
        export(ExportOptions(board=str(board), task="ac", out=tmp_path / "b", data=urban_set,
                             calibration_windows=2, verify_items=2, log=lambda s: None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.toml"]


def test_keep_failed_writes_a_bundle_marked_failed_and_exits_3(urban_set: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "CODE_AGREEMENT_MIN", 1.01)
    board = edited_board(tmp_path, "rpi4", runtimes='["executorch-xnnpack"]', window_s="1.0")
    rc = export_main(["--board", str(board), "--task", "ac", "--out", str(tmp_path / "b"), "--data", str(urban_set),
                      "--calibration-windows", "2", "--verify-items", "2", "--keep-failed"])
    assert rc == 3
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["verification"]["passed"] is False
    assert "code agreement below 101%" in manifest["verification"]["failures"][0]


def test_temporary_folders_of_killed_exports_are_removed(tmp_path: Path) -> None:
    import os

    from acom.export.bundle import _remove_stale
    dead, alive = tmp_path / ".b.tmp-999999999", tmp_path / f".b.tmp-{os.getpid()}"
    for d in (dead, alive):
        (d / "c").mkdir(parents=True)
    _remove_stale(tmp_path / "b")  # what write_bundle does first
    assert not dead.exists() and alive.exists()  # a running export's folder is left alone
