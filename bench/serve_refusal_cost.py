"""Benchmark: what refusing packets costs the streams admitted, with the tail pinned to its core or not.

N devices stream to `acom serve` (as in bench/serve_load.py), alone and beside N more devices whose packets the
server refuses at once (another codebook id: the cheapest refusal, counted as ``codebook``). Runs alternate
(alone, flooded, pinned alone, pinned flooded, ...) so that a drift of the machine's speed falls on all alike;
pinned: the server's ``--tail-cpus`` and the load generator beside its receiving loop. Reported per setting:
the median over ``--repeats`` of the admitted packets' p99 latency and of the tail's median step, and the
steps run. Writes reports/serve_refusal_cost.json.

    python bench/serve_refusal_cost.py --streams 350 --tail-cpus 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from serve_load import real_codes, run_one, schedule

from acom.core.checkpoint import PRETRAINED
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.serve_cli import parse_cpus
from acom.runtime.wire import codebook_id

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=350, help="devices admitted (and as many refused)")
    ap.add_argument("--tail-cpus", default="1", help="the pinned runs' --tail-cpus (default 1)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_refusal_cost.json")
    args = ap.parse_args(argv)
    codes = real_codes("asr", ROOT / "data/speech", 1, 40)
    sender = os.sched_getaffinity(0) - parse_cpus(args.tail_cpus)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_server_bundle(PRETRAINED / "asr" / "split.pt", work / "bundle", n_q=1)
        bundle = open_bundle(work / "bundle")
        fpp, sizes = round(bundle.frame_rate), list(bundle.codebook_sizes)
        book = codebook_id(bundle.manifest.codebook_hash)
        alone = schedule(codes, args.streams, args.seconds, bundle.frame_rate, fpp, book, sizes, seed=args.streams)
        flood = [(t, (dev + 1_000_000, s, q), p) for t, (dev, s, q), p in  # other devices, another codebook
                 schedule(codes, args.streams, args.seconds, bundle.frame_rate, fpp, (book + 1) % 65536, sizes,
                          seed=args.streams + 1)]
        plans = {"alone": alone, "flooded": sorted(alone + flood, key=lambda x: x[0])}
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for pinned in (False, True):
                for name, plan in plans.items():
                    extra = ["--tail-cpus", args.tail_cpus] if pinned else []
                    r = run_one(work / "bundle", plan, args.seconds, 3.0, work, extra, sender if pinned else None)
                    runs.setdefault(f"{'pinned ' if pinned else ''}{name}", []).append(r)
                    print(name, "pinned" if pinned else "", r["latency_ms"], flush=True)
    rows = {}
    for key, reps in runs.items():
        rows[key] = {"p99_ms": [x["latency_ms"]["p99"] for x in reps],
                     "p99_ms_median": round(float(np.median([x["latency_ms"]["p99"] for x in reps])), 1),
                     "step_ms_p50_median": round(float(np.median([x["step_ms"]["p50"] for x in reps])), 2),
                     "tail_steps": [x["tail_steps"] for x in reps],
                     "refused": [int(x["packet_outcomes"].get("codebook", 0)) for x in reps],
                     "admitted_all_answered": all(x["packets_answered"] == x["packets_accepted"] for x in reps)}
    report = {"streams": args.streams, "refused_streams": args.streams, "tail_cpus": args.tail_cpus,
              "seconds": args.seconds, "repeats": args.repeats, "runs": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: (v["p99_ms_median"], v["step_ms_p50_median"]) for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
