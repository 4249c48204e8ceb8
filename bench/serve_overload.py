"""Benchmark: admission control at 1x and 2x the measured capacity of `acom serve`.

The capacity is read from reports/serve_load.json (the largest N of devices served in real time,
bench/serve_load.py: a measurement, not a guess). A device streams utterance after utterance, each a new
stream, one packet per second of audio; the admission limit is measured too, as the most streams open at once
(`streams_open_max`) while the N devices are served without admission control (for the shipped ASR model at
N = 400 it came out N: a device's next stream opens before the server has ended its last). Then N devices
(1x) and 2N (2x) stream with the server's admission control on: at most that many streams open at once
(`--admit-streams`), and while the tail's measured lag is over `--admit-lag-ms` no new stream either; a packet
that would open a refused stream is counted (overload).
Reported per load: the p99 latency of the packets answered (the admitted streams'), the packets and streams
refused, and whether every admitted stream was answered. Target: at 2x the admitted keep p99 within the target
and the rest are refused and counted; at 1x nothing is refused. Writes reports/serve_overload.json.

    python bench/serve_overload.py --task asr
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from reportfile import merge_entry
from serve_load import real_codes, run_one, schedule

from acom.core.checkpoint import PRETRAINED
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.wire import codebook_id

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["asr", "ac"], default="asr")
    ap.add_argument("--data", type=Path, help="data set for real codes (default data/speech or data/urban)")
    ap.add_argument("--admit-lag-ms", type=float, default=250.0, help="the server's lag limit (acom serve's default)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_overload.json")
    args = ap.parse_args(argv)
    load = json.loads((ROOT / "reports" / "serve_load.json").read_text())[args.task]
    capacity, target = load["largest_real_time_streams"], load["p99_target_ms"]
    data = args.data or ROOT / ("data/speech" if args.task == "asr" else "data/urban")
    codes = real_codes(args.task, data, 1, 40)
    entry = {"task": args.task, "measured_capacity_streams": capacity, "p99_target_ms": target,
             "admit_lag_ms": args.admit_lag_ms, "seconds": args.seconds, "loads": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_server_bundle(PRETRAINED / args.task / "split.pt", work / "bundle", n_q=1)
        bundle = open_bundle(work / "bundle")
        fpp = round(bundle.frame_rate)
        book, sizes = codebook_id(bundle.manifest.codebook_hash), list(bundle.codebook_sizes)
        plan = schedule(codes, capacity, args.seconds, bundle.frame_rate, fpp, book, sizes, seed=capacity)
        measured = [run_one(work / "bundle", plan, args.seconds, args.warmup, work, ["--admit-lag-ms", "0"])
                    for _ in range(args.repeats)]
        admit = max(x["streams_open_max"] for x in measured)  # what the capacity's devices keep open at once
        entry["admit_streams"] = admit
        entry["streams_open_max_at_capacity"] = [x["streams_open_max"] for x in measured]
        print(json.dumps({"admit_streams": admit, "runs": entry["streams_open_max_at_capacity"]}), flush=True)
        for factor in (1, 2):
            n = factor * capacity
            plan = schedule(codes, n, args.seconds, bundle.frame_rate, fpp, book, sizes, seed=n)
            reps = [run_one(work / "bundle", plan, args.seconds, args.warmup, work,
                            ["--admit-lag-ms", str(args.admit_lag_ms), "--admit-streams", str(admit)])
                    for _ in range(args.repeats)]
            refused = [x["packet_outcomes"].get("overload", 0) for x in reps]
            row = {"load": f"{factor}x", "streams": n, "p99_ms_admitted": [x["latency_ms"].get("p99") for x in reps],
                   "p99_ms_median": round(float(np.median([x["latency_ms"].get("p99", np.nan) for x in reps])), 1),
                   "packets_sent": reps[0]["packets_sent"], "packets_refused_overload": refused,
                   "streams_sent": reps[0]["streams_sent"], "streams_answered": [x["streams_answered"] for x in reps],
                   "accepted_all_answered": [x["packets_accepted"] == x["packets_answered"] for x in reps]}
            row["met"] = (row["p99_ms_median"] <= target and (factor == 2 or not any(refused)))
            entry["loads"].append(row)
            print(json.dumps(row), flush=True)
    merge_entry(args.out, args.task, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
