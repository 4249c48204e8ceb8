"""The plan's flash and RAM estimates against real exports: reports/plan_check.json (--sweep: plan_fit.json).

Default: every shipped board x both shipped models (ASR with n_q 1, the classifier with n_q 2) through
``acom.export.pipeline.export`` (small calibration and verification: only the sizes matter here), and the plan's
estimate of the same configuration; estimate / real per figure, and the plan's time. An export refused for its
budgets still reports the figures it exceeded (rounded to KiB in its message).

``--sweep``: the points the fits of ``acom.profiling.plan_estimate`` come from: edge graphs lowered with export's
own functions at cuts the shipped models were not trained at (a new RVQ of the same sizes), no verification.

    python -m acom.bench.plan_check [--data-asr data/speech --data-ac data/urban] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import torch

from acom.boards import known_boards, load_board
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.errors import ExportError
from acom.export.census import split_at
from acom.profiling.plan import make_plan

CONFIGS = (("asr", 1), ("ac", 2))


def _export(board: str, task: str, n_q: int, data: Path, out: Path) -> dict:
    """Real RAM and flash bytes of one export, or what its refusal says."""
    from acom.export.pipeline import ExportOptions, export

    t0 = time.perf_counter()
    try:
        m = export(ExportOptions(board=board, task=task, n_q=n_q, out=out, data=data, calibration_windows=8,
                                 verify_items=8, keep_failed=True, log=lambda s: None)).to_dict()
    except ExportError as e:
        found = dict(re.findall(r"(RAM|flash) (\d+) KiB >", str(e)))
        return {"refused": str(e), "seconds": round(time.perf_counter() - t0, 1),
                **({"ram_bytes": int(found["RAM"]) * 1024} if "RAM" in found else {}),
                **({"flash_bytes": int(found["flash"]) * 1024} if "flash" in found else {}), "rounded_kib": True}
    return {"ram_bytes": m["peak_memory_bytes"], "flash_bytes": m["model_flash_bytes"],
            "seconds": round(time.perf_counter() - t0, 1), "split_layer": m["model"]["split_layer"]}


def check(data: dict[str, Path]) -> dict:
    rows = []
    for board in known_boards():
        for task, n_q in CONFIGS:
            t0 = time.perf_counter()
            ckpt = PRETRAINED / task / "split.pt"
            plan = make_plan(ckpt, board)
            plan_s = round(time.perf_counter() - t0, 2)
            split, _ = load_checkpoint(ckpt, task)
            est = next(r for r in plan.rows if r.cut == split.split_layer and r.n_q == n_q)
            with tempfile.TemporaryDirectory() as tmp:
                real = _export(board, task, n_q, data[task], Path(tmp) / "bundle")
            row = {"board": board, "task": task, "n_q": n_q, "cut": split.split_layer, "plan_seconds": plan_s,
                   "estimate": {"ram_bytes": est.ram_bytes, "flash_bytes": est.flash_bytes}, "real": real}
            for k in ("ram_bytes", "flash_bytes"):
                if k in real:
                    row[f"{k.split('_')[0]}_ratio"] = round(est.__dict__[k] / real[k], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    within = [r for r in rows if all(abs(r.get(f"{k}_ratio", 9) - 1) <= 0.15 for k in ("ram", "flash"))]
    return {"what": "acom plan's estimate / acom-export's measured RAM and flash at the shipped models' own cuts "
                    "(shipped models: demonstrations trained on synthetic data)",
            "machine": "x86_64 host; TFLM arena measured on the 64-bit host as export does", "rows": rows,
            "within_15_percent": [f"{r['board']} {r['task']} n_q {r['n_q']}" for r in within]}


def sweep() -> list[dict]:
    """Sizes of lowered edge graphs at several cuts (see the module docstring)."""
    from acom.export import executorch as et
    from acom.export import litert, micro
    from acom.export.graph import EdgeGraph

    points = [("ac", c, 1) for c in range(7)] + [("ac", 3, 2), ("ac", 4, 2), ("asr", 0, 1), ("asr", 0, 2),
                                                   ("asr", 1, 1), ("asr", 2, 1), ("asr", 2, 3),
                                                   ("asr", 3, 1), ("asr", 4, 1)]
    out = []
    for task, cut, n_q in points:
        split = split_at(load_checkpoint(PRETRAINED / task / "split.pt", task)[0], cut)
        torch.manual_seed(0)
        rec = {"task": task, "cut": cut, "n_q": n_q}
        g = EdgeGraph(split, n_q, frontend=False).eval()
        x = g.example_input(16000)
        model = litert.convert(litert.quantize(g, x, [x + 0.5 * torch.randn_like(x) for _ in range(2)]), x)
        rec.update(tflite_bytes=len(model), tflm_arena=micro.run_tflm(model, [x.numpy()])[1])
        npu = load_board("cortex-m55-u55").npu
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m.tflite").write_bytes(model)
            try:
                s = micro.run_vela(Path(tmp) / "m.tflite", Path(tmp) / "v", npu.accelerator, npu.system_config,
                                   npu.memory_mode)
                rec.update(vela_sram=s["sram_bytes"], vela_model_bytes=len(Path(s["vela_model"]).read_bytes()))
            except ExportError as e:  # vela's legacy compiler crashes on the ASR model's 144-wide blocks
                rec["vela_error"] = str(e)[:300]
        g = EdgeGraph(split, n_q, frontend=True).eval()
        x = g.example_input(64000)
        pte = et.lower(et.quantize(g, x, [0.1 * torch.randn_like(x) for _ in range(2)]), x)
        rec.update(pte_bytes=len(pte), **et.planned_memory(pte))
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-asr", type=Path, default=Path("data/speech"))
    p.add_argument("--data-ac", type=Path, default=Path("data/urban"))
    p.add_argument("--sweep", action="store_true", help="lower at several cuts (the fits' points) instead")
    p.add_argument("--out", type=Path, help="default: reports/plan_check.json (reports/plan_fit.json with --sweep)")
    ns = p.parse_args(argv)
    torch.set_num_threads(1)
    result = {"sweep": sweep()} if ns.sweep else check({"asr": ns.data_asr, "ac": ns.data_ac})
    out = ns.out or Path("reports") / ("plan_fit.json" if ns.sweep else "plan_check.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
