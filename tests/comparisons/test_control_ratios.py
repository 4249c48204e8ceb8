"""bench/control_ratios.py: cuts against an uncut model trained as long, from reports or from training logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "control_ratios.py"


def _log(path: Path, wer: dict[int, float]) -> Path:
    """An `acom train` log.jsonl: a training row every epoch, dev WER on the evaluated ones."""
    rows = [{"stage": "split", "epoch": e, "loss": 1.0, **({"dev_wer": wer[e]} if e in wer else {})}
            for e in range(1, max(wer) + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _full(wer: float) -> list[dict]:
    return [{"test_set": "dev", "decoder": "greedy", "snr_db": None, "wer_per_seed": [wer], "seeds": [0]}]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_a_stage_2_known_by_its_logs(tmp_path: Path) -> None:
    cut = _log(tmp_path / "cut.jsonl", {5: 0.62, 10: 0.57, 12: 0.56})
    ctl = _log(tmp_path / "ctl.jsonl", {5: 0.44, 10: 0.40})
    own = _log(tmp_path / "own.jsonl", {5: 0.7, 20: 0.41})
    out = tmp_path / "ratios.json"
    done = _run("--label", "six", "--own-log", str(own), "--log", f"{cut}:{ctl}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    entry = json.loads(out.read_text())["six"]
    assert entry["rows"] == [] and entry["own_logs"] == [str(own)] and entry["control"] is None
    assert entry["by_epoch"] == [  # epochs both logs evaluated; own reference: the stage-1 log's last dev WER
        {"epoch": 5, "cut_dev_wer": 0.62, "ratio_to_control": round(0.62 / 0.44, 3),
         "ratio_to_own_reference": round(0.62 / 0.41, 3)},
        {"epoch": 10, "cut_dev_wer": 0.57, "ratio_to_control": round(0.57 / 0.40, 3),
         "ratio_to_own_reference": round(0.57 / 0.41, 3)}]


def test_a_scored_cut_against_its_control(tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    control.write_text(json.dumps({"full_model": _full(0.40)}))
    report = tmp_path / "cut.json"
    point = {**_full(0.52)[0], "codebook_sizes": [64], "entropy_bps": 58.9}
    report.write_text(json.dumps({"full_model": _full(0.45), "points": [point]}))
    out = tmp_path / "ratios.json"
    done = _run("--control", str(control), "--cut", f"{report}:0:64", "--label", "k64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["k64"]["rows"]
    assert row["ratio_to_control"] == 1.3 and row["ratio_to_own_reference"] == round(0.52 / 0.45, 3)
    assert row["entropy_bps"] == 58.9


@pytest.mark.parametrize("args", [["--label", "x"], ["--label", "x", "--cut", "r.json:0:64"],
                                  ["--label", "x", "--own-log", "own.jsonl"]])
def test_what_to_compare_must_be_given_whole(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "ratios.json"
    if "--own-log" in args:
        _log(tmp_path / "own.jsonl", {20: 0.4})
        args = [a if a != "own.jsonl" else str(tmp_path / "own.jsonl") for a in args]
    done = _run(*args, "--out", str(out))
    assert done.returncode == 2 and "control_ratios:" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
