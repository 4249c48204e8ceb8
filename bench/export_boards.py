"""Benchmark: `acom-export` of the shipped models for every board, with its targets checked.

Targets: code agreement >= 99% per stage for every artifact against its PyTorch quantized reference;
task metric within 0.5 points of the float model; default models on cortex-m55-u55 within 256 KiB RAM and
512 KiB flash; one board's export under 2 minutes here. Exports run with --keep-failed so that a failed verification
is still measured (the report says it failed). Writes reports/export.json and reports/export.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from acom.boards import known_boards
from acom.errors import ExportError
from acom.export.cli import _quiet_libraries, _stdout_to_stderr
from acom.export.pipeline import ExportOptions, export

ALL_STAGES = {"asr": 3, "ac": 2}  # stages of the shipped models


def run_one(board: str, task: str, n_q: int | None, data: Path | None, tmp: Path) -> dict:
    t0 = time.perf_counter()
    m = export(ExportOptions(board=board, task=task, n_q=n_q, data=data, out=tmp / f"{board}-{task}-{n_q}",
                             force=True, keep_failed=True, log=lambda s: None))
    seconds = time.perf_counter() - t0
    v = m.verification.details
    vela = next((a.facts["vela"] for a in m.artifacts if "vela" in a.facts), None)
    return {"board": board, "task": task, "n_q": m.n_q, "nominal_bps": m.nominal_bps,
            "seconds": round(seconds, 1), "passed": m.verification.passed, "failures": list(m.verification.failures),
            "items": v["items"], "float_metric": v["float_metric"],
            "checks": [{k: c[k] for k in ("artifact", "runtime", "agreement_vs_quantized_reference",
                                          "agreement_vs_fake_quant_reference", "agreement_vs_float", "metric",
                                          "metric_loss_points") if k in c} for c in v["checks"]],
            "ram_bytes": m.costs["peak_memory_bytes"], "flash_bytes": m.costs["model_flash_bytes"],
            "macs_per_s_on_device": m.costs["macs_per_s_on_device"], "vela": vela,
            "stage_seconds": m.extra["stage_seconds"]}


def table(rows: list[dict]) -> str:
    out = ["| board | task | n_q | artifact | codes = quantized ref (per stage) | codes = fake-quant graph "
           "| codes = float "
           "| metric (loss, points) | RAM KiB | flash KiB | export s |", "|" + "---|" * 11]
    for r in rows:
        for c in r["checks"]:
            agree = " / ".join(f"{a:.2%}" for a in c["agreement_vs_quantized_reference"])
            fake = " / ".join(f"{a:.1%}" for a in c.get("agreement_vs_fake_quant_reference", [])) or "-"
            flt = " / ".join(f"{a:.1%}" for a in c["agreement_vs_float"])
            out.append(f"| {r['board']} | {r['task']} | {r['n_q']} | {c['artifact']} ({c['runtime']}) "
                       f"| {agree} | {fake} "
                       f"| {flt} "
                       f"| {c['metric']['metric']} {c['metric']['points']:.1f} ({c['metric_loss_points']:+.1f}) "
                       f"| {r['ram_bytes'] / 1024:.0f} | {r['flash_bytes'] / 1024:.0f} | {r['seconds']:.0f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--boards", nargs="*", default=known_boards())
    p.add_argument("--tasks", nargs="*", default=["asr", "ac"])
    p.add_argument("--all-stages", action="store_true", help="also export every model with all its stages")
    p.add_argument("--data-asr", type=Path, help="speech set (default data/speech)")
    p.add_argument("--data-ac", type=Path, help="urban set (default data/urban)")
    p.add_argument("--out", type=Path, default=Path("reports/export.json"))
    ns = p.parse_args()
    _quiet_libraries()
    rows, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for task in ns.tasks:
            data = ns.data_asr if task == "asr" else ns.data_ac
            for board in ns.boards:
                # n_q None: the export's default (1 stage); with --all-stages also every stage the model has
                for n_q in [None, ALL_STAGES[task]] if ns.all_stages else [None]:
                    try:
                        with _stdout_to_stderr():
                            rows.append(run_one(board, task, n_q, data, Path(tmp)))
                        print(json.dumps({k: rows[-1][k] for k in ("board", "task", "n_q", "seconds", "passed")}),
                              flush=True)
                    except ExportError as e:  # e.g. a model that does not fit a board: a result, not a crash
                        refused.append({"board": board, "task": task, "n_q": n_q or 1, "error": str(e)})
                        print(json.dumps(refused[-1]), flush=True)
    m55 = [r for r in rows if r["board"] == "cortex-m55-u55" and r["n_q"] == 1]
    targets = {
        "code_agreement_min_99": all(a >= 0.99 for r in rows for c in r["checks"]
                                     for a in c["agreement_vs_quantized_reference"]),
        "metric_within_0.5_points": all(c["metric_loss_points"] <= 0.5 for r in rows for c in r["checks"]),
        "m55_ram_256KiB_flash_512KiB": all(r["ram_bytes"] <= 256 * 1024 and r["flash_bytes"] <= 512 * 1024
                                           for r in m55) if m55 else None,
        "export_under_120s": all(r["seconds"] < 120 for r in rows),
    }
    report = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "targets": targets,
              "exports": rows, "refused": refused}
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    report["data"] = {"asr": str(ns.data_asr or "data/speech"), "ac": str(ns.data_ac or "data/urban")}
    ns.out.write_text(json.dumps(report, indent=1) + "\n")
    ns.out.with_suffix(".md").write_text("# acom-export of the shipped models\n\nFrom `python bench/export_boards.py"
                                         f"{' --all-stages' if ns.all_stages else ''}`; calibrated on train, "
                                         "verified on up to 40 "
                                         f"test items of {report['data']['asr']} (asr) and {report['data']['ac']} (ac)"
                                         ".\n\n" + table(rows) + "\n\nTargets: " +
                                         ", ".join(f"{k}: {v}" for k, v in targets.items()) + "\n\nRefused:\n\n" +
                                         "\n".join(f"- {r['board']} {r['task']} n_q={r['n_q']}: {r['error']}"
                                                   for r in refused) + "\n")
    print(json.dumps(targets))


if __name__ == "__main__":
    main()
