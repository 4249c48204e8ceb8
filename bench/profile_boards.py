"""Benchmark: `acom profile` of the shipped classifier and speech recognizer on every board, every radio link,
beside the codec pipelines. Exports each (task, board) bundle into a temporary folder (a refused export is
recorded with its reason), profiles it with the emulator runs, and writes reports/profile.json,
reports/profile_<task>_<board>.png and reports/profile.md (the energy ratios per board and link).

    python bench/profile_boards.py --urban data/urban --speech data/speech
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from reportfile import merge_entry

from acom.boards import known_boards
from acom.boards.link import known_links
from acom.errors import AcomError
from acom.export.pipeline import ExportOptions, export
from acom.profiling.plot import energy_png
from acom.profiling.profile import profile

ROOT = Path(__file__).resolve().parents[1]


def markdown(report: dict) -> str:
    lines = ["# acom profile: energy per second of audio, per board and link", "",
             "Written by `bench/profile_boards.py` (`acom profile` on each bundle). Demonstration models trained on "
             "synthetic audio. Compute from counted instructions is a lower bound (QEMU counts instructions, not "
             "cycles); Codec2's compute is its x86-64 instruction count (a proxy); Opus's compute is not measured; "
             "DAC/EnCodec are counted MACs x the board's pJ/MAC. Ratio: the pipeline's device energy (compute + "
             "radio) over ACoM's; below 1, ACoM loses.", ""]
    for key, entry in report.items():
        if "refused" in entry:
            lines += [f"## {key}", "", f"refused by acom-export: {entry['refused']}", ""]
            continue
        acom_bps = entry["links"][next(iter(entry["links"]))]["systems"][0]["bps_on_wire"]
        lines += [f"## {key}", "", f"ACoM: {acom_bps} bit/s on the wire; compute "
                  f"{_mw(entry['links'][next(iter(entry['links']))]['systems'][0]['compute_w'])}", "",
                  "| link | " + " | ".join(r["system"] for r in entry["links"]["ble"]["systems"][1:]) + " |",
                  "|---|" + "---|" * (len(entry["links"]["ble"]["systems"]) - 1)]
        for link, data in entry["links"].items():
            cells = [("unknown" if r["vs_acom"] is None else f"{r['vs_acom']:.2f}" + (" (ACoM loses)"
                      if r["vs_acom"] < 1 else "")) for r in data["systems"][1:]]
            lines.append(f"| {link} | " + " | ".join(cells) + " |")
        lines += ["", f"![{key}](profile_{key.replace('/', '_')}.png)", ""]
    return "\n".join(lines) + "\n"


def _mw(w: float | None) -> str:
    return "unknown" if w is None else f"{w * 1e3:.3g} mW (lower bound)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urban", type=Path, required=True)
    ap.add_argument("--speech", type=Path, required=True)
    ap.add_argument("--board", action="append", choices=known_boards(), help="repeat; default all")
    ap.add_argument("--task", action="append", choices=("ac", "asr"), help="repeat; default both")
    ap.add_argument("--out", type=Path, default=ROOT / "reports")
    args = ap.parse_args(argv)
    report_path = args.out / "profile.json"
    with tempfile.TemporaryDirectory(prefix="acom-bench-profile-") as tmp:
        for task in args.task or ["ac", "asr"]:
            data = args.urban if task == "ac" else args.speech
            for board in args.board or known_boards():
                key, bundle = f"{task}/{board}", Path(tmp) / f"{task}-{board}"
                try:
                    export(ExportOptions(board=board, task=task, out=bundle, data=data, keep_failed=True,
                                         calibration_windows=8, verify_items=8, log=lambda s: None))
                except AcomError as e:
                    merge_entry(report_path, key, {"refused": str(e)})
                    print(json.dumps({key: str(e)[:200]}), flush=True)
                    continue
                result = profile(bundle, known_links(), 1.0)
                energy_png(result, args.out / f"profile_{task}_{board}.png")
                merge_entry(report_path, key, result)
                print(json.dumps({key: {k: v["systems"][0]["total_w"] for k, v in result["links"].items()}}),
                      flush=True)
    (args.out / "profile.md").write_text(markdown(json.loads(report_path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
