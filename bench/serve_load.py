"""Benchmark: how many devices one `acom serve` serves in real time on this machine.

For each N, N simulated devices stream real codes (the shipped model's edge half on the data set's test audio,
utterance after utterance, one packet per second of audio sent when that second has been captured) over UDP
on 127.0.0.1 to an `acom serve` subprocess for ``--seconds``. Latency is end to end: a packet's send time to
the time of the first result line that covers it (same machine, same clock). N is served in real time when
every packet sent was accepted and answered and the median over ``--repeats`` runs of the p99 latency is at
most ``--p99-ms`` (single runs on this VM vary by 2x in p99). The first
``--warmup`` seconds are left out of the percentiles (first calls into torch are slow) and counted apart.
Writes reports/serve_load.json (one entry per task) and prints a table.

    python bench/serve_load.py --task asr --streams 25,50,75,100
    python bench/serve_load.py --task ac --streams 100,200,300,400
    python bench/serve_load.py --task asr --streams 100 --entropy     # devices send range-coded payloads
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from reportfile import merge_entry
from tqdm import tqdm

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.sender import stream_packets
from acom.runtime.wire import codebook_id

ROOT = Path(__file__).resolve().parents[1]


def real_codes(task: str, data: Path, n_q: int, items: int) -> list[np.ndarray]:
    """Codes [n_q, T] of the first ``items`` test items, from the shipped model's float edge half."""
    split, _ = load_checkpoint(PRETRAINED / task / "split.pt", task)
    ds = open_dataset(task, data, TASKS[task].test_subset)
    out = []
    with torch.inference_mode():
        for i in range(min(items, len(ds))):
            wave, _ = ds[i]
            out.append(split.edge(n_q)(torch.from_numpy(wave)[None])[0].numpy())
    return out


def schedule(codes: list[np.ndarray], n: int, seconds: float, frame_rate: float, fpp: int, book: int,
             sizes: list[int], seed: int, priors=None) -> list[tuple[float, tuple[int, int, int], bytes]]:
    """(send offset s, (device, stream, seq), packet) for n devices over ``seconds``, phases spread over 1 s;
    payloads range-coded under `priors` when given."""
    rng = np.random.default_rng(seed)
    out = []
    for dev in range(n):
        t, stream = float(rng.uniform(0, 1)), 0
        while t < seconds:
            c = codes[int(rng.integers(len(codes)))]
            for seq, pkt in enumerate(stream_packets(c, sizes, book, device_id=dev, stream_id=stream,
                                                     frames_per_packet=fpp, priors=priors)):
                end_frame = min((seq + 1) * fpp, c.shape[1])
                out.append((t + end_frame / frame_rate, (dev, stream, seq), pkt))
            t += c.shape[1] / frame_rate
            stream += 1
    return sorted((x for x in out if x[0] < seconds), key=lambda x: x[0])


def steal_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs: time the hypervisor gave to other guests (noise on a shared VM)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(bundle: Path, plan: list, seconds: float, warmup: float, work: Path, extra: list[str],
            sender_cpus: set[int] | None = None) -> dict:
    """One run: the server started with ``extra`` options, ``plan`` sent (from ``sender_cpus`` when given: this
    process keeps to them while it sends), the server's results matched to the packets sent."""
    out = work / f"out-{len(plan)}.jsonl"
    mask = os.sched_getaffinity(0)
    out.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "acom.cli", "serve", "--bundle", str(bundle), "--udp",
                             "127.0.0.1:0", "--out", str(out), *extra], stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stderr.readline())
        if sender_cpus:  # after the server started: it inherits this process's CPUs
            os.sched_setaffinity(0, sender_cpus)
        addr = tuple(ready["udp"])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent: dict[tuple[int, int, int], float] = {}
        cpu0, t0, steal0 = cpu_seconds(proc.pid), time.time() + 0.2, steal_ticks()
        for offset, key, pkt in plan:
            delay = t0 + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            sent[key] = time.time()
            sock.sendto(pkt, addr)
        time.sleep(1.0)
        cpu = cpu_seconds(proc.pid) - cpu0
        steal = [b - a for a, b in zip(steal0, steal_ticks())]
    finally:
        os.sched_setaffinity(0, mask)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    answered: dict[tuple[int, int, int], float] = {}
    for r in lines:
        if r["type"] in ("partial", "final") and r["seq"][0] >= 0:
            for seq in range(r["seq"][0], r["seq"][1] + 1):
                answered.setdefault((r["device"], r["stream"], seq), r["time"])
    lat = np.array([(answered[k] - t) * 1e3 for k, t in sent.items() if k in answered and t >= t0 + warmup])
    warm = [(answered[k] - t) * 1e3 for k, t in sent.items() if k in answered and t < t0 + warmup]
    summary = lines[-1]
    pct = {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 90, 99)} if lat.size else {}
    return {"packets_sent": len(sent), "packets_accepted": int(summary["packets"].get("accepted", 0)),
            "packets_answered": sum(k in answered for k in sent), "latency_ms": {**pct, "max": round(float(
                lat.max()), 2) if lat.size else None}, "warmup_latency_ms_max": round(max(warm), 2) if warm else None,
            "cpu_steal_share": round(steal[0] / max(1, steal[1]), 3), "server_latency_ms": summary["latency_ms"],
            "step_ms": summary.get("step_ms"), "server_cpu_s_per_s": round(cpu / seconds, 3),
            "packet_outcomes": summary["packets"], "streams_sent": len({k[:2] for k in sent}),
            "streams_answered": len({k[:2] for k in sent if k in answered}),
            "streams_open_max": int(summary.get("streams_open_max", 0)),
            "stream_slots_max": int(summary.get("stream_slots_max", 0)),
            "tail_steps": summary.get("tail_batches"), "mean_streams_per_step": round(
                summary.get("tail_batch_streams", 0) / max(1, summary.get("tail_batches", 1)), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["asr", "ac"], default="asr")
    ap.add_argument("--data", type=Path, help="data set for real codes (default data/speech90 or data/speech; "
                    "data/urban200 or data/urban)")
    ap.add_argument("--streams", default=None, help="comma-separated N to try (default asr 25,50,75,100; "
                    "ac 100,200,300,400)")
    ap.add_argument("--seconds", type=float, default=15.0, help="sending time per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per N (the machine is noisy: medians reported)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds left out of the percentiles")
    ap.add_argument("--packet-s", type=float, default=1.0, help="seconds of audio per packet")
    ap.add_argument("--n-q", type=int, default=1, help="quantizer stages sent")
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--items", type=int, default=40, help="test items whose codes the devices send")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_load.json")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `acom serve` argument (repeatable)")
    ap.add_argument("--entropy", action="store_true", help="devices range-code their payloads (`acom send "
                    "--entropy`): the server decodes each packet with the bundle's priors")
    args = ap.parse_args(argv)
    defaults = {"asr": ("data/speech90", "data/speech", "25,50,75,100"), "ac": ("data/urban200", "data/urban",
                                                                               "100,200,300,400")}[args.task]
    data = args.data or next((ROOT / d for d in defaults[:2] if (ROOT / d).is_dir()), ROOT / defaults[1])
    ns = [int(x) for x in (args.streams or defaults[2]).split(",")]
    codes = real_codes(args.task, data, args.n_q, args.items)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_server_bundle(PRETRAINED / args.task / "split.pt", work / "bundle", n_q=args.n_q)
        bundle = open_bundle(work / "bundle")
        fpp = max(1, round(args.packet_s * bundle.frame_rate))
        book, sizes = codebook_id(bundle.manifest.codebook_hash), list(bundle.codebook_sizes)
        runs = []
        for n in tqdm(ns, desc=f"serve load ({args.task})", unit="N"):
            plan = schedule(codes, n, args.seconds, bundle.frame_rate, fpp, book, sizes, seed=n,
                            priors=bundle.priors if args.entropy else None)
            reps = [run_one(work / "bundle", plan, args.seconds, args.warmup, work, args.server_arg)
                    for _ in range(args.repeats)]
            med = {q: round(float(np.median([x["latency_ms"].get(q, np.nan) for x in reps])), 2)
                   for q in ("p50", "p90", "p99", "max")}
            r = {"streams": n, "latency_ms": med, "p99_ms_per_repeat": [x["latency_ms"].get("p99") for x in reps],
                 "cpu_steal_share": [x["cpu_steal_share"] for x in reps],
                 "packets_sent": reps[0]["packets_sent"], "server_cpu_s_per_s": float(np.median(
                     [x["server_cpu_s_per_s"] for x in reps])), "mean_streams_per_step": float(np.median(
                         [x["mean_streams_per_step"] for x in reps])), "repeats": reps}
            r["all_answered"] = all(x["packets_accepted"] == x["packets_sent"] == x["packets_answered"] for x in reps)
            r["real_time"] = r["all_answered"] and med["p99"] <= args.p99_ms
            runs.append(r)
            tqdm.write(f"N={n}: p50 {med['p50']} ms p99 {med['p99']} ms, all answered {r['all_answered']}, "
                       f"cpu {r['server_cpu_s_per_s']} s/s, "
                       f"{r['mean_streams_per_step']} streams/step (medians of {args.repeats}; p99 each "
                       f"{r['p99_ms_per_repeat']}, CPU steal {r['cpu_steal_share']}) -> "
                       f"{'ok' if r['real_time'] else 'MISSED'}")
    ok = [r["streams"] for r in runs if r["real_time"]]
    report = {"task": args.task, "payload": "range-coded" if args.entropy else "bit-packed", "data": str(data),
              "items": len(codes), "n_q": args.n_q, "packet_s": args.packet_s,
              "seconds": args.seconds, "repeats": args.repeats, "server_args": args.server_arg, "warmup_s": args.warmup,
              "p99_target_ms": args.p99_ms,
              "cpu_count": os.cpu_count(),
              "largest_real_time_streams": max(ok) if ok else 0, "runs": runs}
    merge_entry(args.out, args.task + ("-entropy" if args.entropy else ""), report)
    print(f"{args.task}: largest N served in real time with p99 <= {args.p99_ms} ms: "
          f"{report['largest_real_time_streams']}"
          f" -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
