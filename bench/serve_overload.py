"""Benchmark: admission control at 1x and 2x the capacity of `acom serve`, measured in the same run.

A device streams utterance after utterance, each a new stream, one packet per second of audio (as in
bench/serve_load.py). First the capacity: for each N of ``--streams``, N devices stream to a server without
admission control; the capacity is the largest N whose p99 latency is within ``--p99-ms`` in each of
``--repeats`` runs, with every packet answered (each run, not their median: this VM's latency drifts by more
than the margin between runs). The admission limit is measured at that N too: the most admission
slots its streams held at once (the summary's ``stream_slots_max``, the largest of the repeats: a device
streaming back to back holds one slot, runtime/admission.py). Then N devices (1x) and 2N (2x) stream to
servers started with ``--admit-streams`` at that limit and ``--admit-lag-ms``; a packet that would open a
refused stream is counted (overload). The 1x and 2x runs alternate (1x, 2x, 1x, 2x, ...), so that a drift of
the machine's speed falls on both alike.
Reported per load: the p99 latency of the packets answered (the admitted streams'), the packets and streams
refused, and whether every admitted packet was answered. Target: at 2x the admitted keep p99 within the target
and the rest are refused and counted; at 1x nothing is refused. Both loads run on the machine and day the
capacity was measured on. With ``--tail-cpus`` the servers run their tail on those CPUs and the receiving loop,
with this load generator, on the others. Writes reports/serve_overload.json.

    python bench/serve_overload.py --task asr --streams 250,300,350 --repeats 4 --tail-cpus 1   # the report's run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from reportfile import merge_entry
from serve_load import real_codes, run_one, schedule

from acom.core.checkpoint import PRETRAINED
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.serve_cli import parse_cpus
from acom.runtime.wire import codebook_id

ROOT = Path(__file__).resolve().parents[1]


def p99(reps: list[dict]) -> float:
    return round(float(np.median([x["latency_ms"].get("p99", np.nan) for x in reps])), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["asr", "ac"], default="asr")
    ap.add_argument("--data", type=Path, help="data set for real codes (default data/speech or data/urban)")
    ap.add_argument("--streams", default="300,350,400,450", help="comma-separated N tried for the capacity")
    ap.add_argument("--p99-ms", type=float, default=50.0, help="the latency target")
    ap.add_argument("--admit-lag-ms", type=float, default=250.0, help="the server's lag limit (acom serve's default)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tail-cpus", help="the servers' --tail-cpus (the tail on these CPUs, the receiving loop and "
                    "this load generator on the others); default: unpinned")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_overload.json")
    args = ap.parse_args(argv)
    data = args.data or ROOT / ("data/speech" if args.task == "asr" else "data/urban")
    codes = real_codes(args.task, data, 1, 40)
    entry = {"task": args.task, "p99_target_ms": args.p99_ms, "admit_lag_ms": args.admit_lag_ms,
             "tail_cpus": args.tail_cpus,
             "seconds": args.seconds, "repeats": args.repeats, "capacity_runs": [], "loads": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_server_bundle(PRETRAINED / args.task / "split.pt", work / "bundle", n_q=1)
        bundle = open_bundle(work / "bundle")
        fpp = round(bundle.frame_rate)
        book, sizes = codebook_id(bundle.manifest.codebook_hash), list(bundle.codebook_sizes)

        def plan(n: int) -> list:
            return schedule(codes, n, args.seconds, bundle.frame_rate, fpp, book, sizes, seed=n)

        pin = ["--tail-cpus", args.tail_cpus] if args.tail_cpus else []
        sender = os.sched_getaffinity(0) - parse_cpus(args.tail_cpus) if args.tail_cpus else None

        def run(devices: list, extra: list[str]) -> dict:
            return run_one(work / "bundle", devices, args.seconds, args.warmup, work, extra + pin, sender)

        capacity, limit = 0, None
        for n in sorted(int(x) for x in args.streams.split(",")):
            devices = plan(n)
            reps = [run(devices, ["--admit-lag-ms", "0"]) for _ in range(args.repeats)]
            ok = all(x["packets_accepted"] == x["packets_sent"] == x["packets_answered"] for x in reps)
            row = {"streams": n, "p99_ms_median": p99(reps), "p99_ms": [x["latency_ms"].get("p99") for x in reps],
                   "stream_slots_max": [x["stream_slots_max"] for x in reps], "all_answered": ok}
            row["real_time"] = ok and max(row["p99_ms"]) <= args.p99_ms
            entry["capacity_runs"].append(row)
            print(json.dumps(row), flush=True)
            if not row["real_time"]:
                break
            capacity, limit = n, max(row["stream_slots_max"])
        entry["measured_capacity_streams"], entry["admit_streams"] = capacity, limit
        if not capacity:
            print(f"no N of {args.streams} was served within {args.p99_ms} ms: try smaller ones", file=sys.stderr)
            return 1
        extra = ["--admit-lag-ms", str(args.admit_lag_ms), "--admit-streams", str(limit)]
        plans = {f: plan(f * capacity) for f in (1, 2)}
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(args.repeats):  # alternating: a drift of the machine falls on both loads alike
            for factor in (1, 2):
                runs[factor].append(run(plans[factor], extra))
        for factor, reps in runs.items():
            refused = [int(x["packet_outcomes"].get("overload", 0)) for x in reps]
            row = {"load": f"{factor}x", "streams": factor * capacity,
                   "p99_ms_admitted": [x["latency_ms"].get("p99") for x in reps],
                   "p99_ms_median": p99(reps), "packets_sent": reps[0]["packets_sent"],
                   "packets_refused_overload": refused, "streams_sent": reps[0]["streams_sent"],
                   "streams_answered": [x["streams_answered"] for x in reps],
                   "stream_slots_max": [x["stream_slots_max"] for x in reps],
                   "cpu_steal_share": [x["cpu_steal_share"] for x in reps],
                   "accepted_all_answered": [x["packets_accepted"] == x["packets_answered"] for x in reps]}
            answered = all(row["accepted_all_answered"])  # 2x: the admitted within the target, the rest refused
            row["met"] = answered and (row["p99_ms_median"] <= args.p99_ms and all(refused) if factor == 2
                                       else not any(refused))  # 1x: nothing refused
            entry["loads"].append(row)
            print(json.dumps(row), flush=True)
    merge_entry(args.out, args.task, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
