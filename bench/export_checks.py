"""Run `acom-export`'s int8 check on trained runs and collect pass/fail and WER points lost into one JSON report.

Each call exports every run in ``--runs`` for one board with one setting (the extra acom-export arguments after
``--``) into a temporary folder that is removed afterwards, and adds one row per run to ``--out`` (rows of earlier
calls are kept, so a matrix of boards and settings is a few calls). A failed check is a row too: its
``error`` is acom-export's last error line. The models are demonstrations trained on synthetic speech.

    python bench/export_checks.py --runs runs/asr360-pool2k56e50-s0 runs/asr360-pool2k56e50-s1 \\
        --board rpi4 --data data/speech360 --label "ptq, 128 windows" \\
        --out reports/asr-360-pool-k56/export_checks.json -- --calibration-windows 128
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

NOTE = ("acom-export int8 checks (verify: 40 test-clean items unless `verify_items` says otherwise, at most 0.5 "
        "WER points lost against the float model). Collected from `acom-export --json` and its error line by "
        "bench/export_checks.py; demonstration models trained on synthetic speech.")


def check(run: Path, board: str, data: Path, extra: list[str]) -> dict:
    """One export of ``run/split.pt`` for ``board``: its row of the report."""
    args = ["--board", board, "--checkpoint", str(run / "split.pt"), "--data", str(data), *extra, "--json"]
    row = {"run": str(run), "board": board, "command": "acom-export " + shlex.join(args)}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([Path(sys.executable).with_name("acom-export"), *args, "--out", f"{tmp}/bundle"],
                              capture_output=True, text=True)
    if proc.returncode == 0 or (proc.returncode == 3 and proc.stdout.strip()):  # 3: --keep-failed wrote it
        v = json.loads(proc.stdout)["verification"]
        return {**row, "verify_items": v["items"], "passed": v["passed"],
                "float_wer_points": v["float_metric"]["points"],
                "artifacts": {c["artifact"]: {"wer_points_lost": c["metric_loss_points"],
                                              "code_agreement_vs_float": c["agreement_vs_float"][0]}
                              for c in v["checks"]}}
    errors = [line for line in proc.stderr.splitlines() if "error: " in line] or ["(no error line)"]
    return {**row, "passed": False, "error": errors[-1].split("error: ", 1)[-1].split(" Nothing was written")[0]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders holding split.pt")
    p.add_argument("--board", required=True, help="board profile name (see `acom boards`)")
    p.add_argument("--data", type=Path, required=True, help="data set for calibration and verification")
    p.add_argument("--label", required=True, help="the setting, as the report's `quantization` field")
    p.add_argument("--out", type=Path, required=True, help="JSON report to add the rows to")
    p.add_argument("extra", nargs="*", help="further acom-export arguments, after --")
    ns = p.parse_args(argv)
    report = json.loads(ns.out.read_text()) if ns.out.exists() else {"note": NOTE, "runs": []}
    for run in ns.runs:
        row = check(run, ns.board, ns.data, ns.extra)
        report["runs"].append({**row, "quantization": ns.label})
        print(json.dumps(report["runs"][-1]))
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = ns.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
