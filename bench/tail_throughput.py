"""Benchmark: the batched tail alone (no sockets), on CUDA when present, else CPU.

Two arrival models (``--arrivals``), random codes of utterance lengths (the cost does not depend on the values):
- together (the worst case: every device synchronized): N streams each bring one packet (``--packet-s`` of
  audio) per step, all in one ``engine.step``; the step time is then the latency every stream sees. Reports
  the median and p99 step time over ``--steps`` steps (after 3 warm-up steps).
- spread (what bench/serve_load.py sends: each device at its own phase over the packet period): the server's
  batcher without sockets, on the real clock; each step takes every packet due by then, and a packet's
  latency runs from its due time to the end of the step that answered it (queueing counted). Reports the
  median, p99 and largest latency over ``--seconds`` (after ``--warmup-s``) and the streams per step.
Either way: the largest N whose p99 is at most ``--p99-ms`` (the latency target) and at most the packet
duration (real time). Writes reports/tail_throughput.json (one entry per task, device and options).

    python bench/tail_throughput.py --task asr --streams 50,100,200,500,1000,2000,5000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from reportfile import merge_entry

from acom.core.checkpoint import PRETRAINED
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.engine import Work, quiet_gc
from acom.runtime.engines import ENGINES, make_engine
from acom.runtime.streams import Chunk

ROOT = Path(__file__).resolve().parents[1]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def add_packet(work: dict, codes: list[np.ndarray], pos: list[int], stream: list[int], d: int, n: int,
               fpp: int) -> None:
    """Device d's next packet (fpp frames of its stream's utterance) into work, after any it already has
    there; at the utterance's end the device's next stream starts (its id n higher)."""
    c = codes[stream[d] % len(codes)]
    piece = c[:, pos[d]: pos[d] + fpp]
    end = pos[d] + fpp >= c.shape[1]
    key = (0, stream[d])
    chunk = Chunk(pos[d], piece.shape[1], piece, (pos[d], pos[d]), 0.0)
    work[key] = Work((work[key].chunks if key in work else []) + [chunk], end)
    pos[d] += fpp
    if end:
        pos[d], stream[d] = 0, stream[d] + n


class StepTime(NamedTuple):
    """One ``engine.step`` as seen from the host: what tells a stall's cause apart. Wall far above process CPU
    means the process waited: on the GPU, blocked, or descheduled; steal says the hypervisor ran someone else
    on this machine's CPUs (every CPU's steal ticks, /proc/stat); switches say the kernel preempted a thread."""
    wall_s: float
    cpu_s: float  # this process's CPU time (all threads)
    new_segments: int  # memory segments the CUDA allocator added (cudaMalloc calls)
    steal_ms: float  # CPU time stolen by the hypervisor from all CPUs during the step (10 ms ticks)
    switches: int  # involuntary context switches of this process during the step
    new_shapes: int  # slot engine: tensor sizes (per pass) this engine had not run before (plans, heuristics)


def _steal_ms() -> float:
    """Steal time of all CPUs so far (ms), from /proc/stat's first line; 0 where there is no /proc."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) * 1e3 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def timed_step(engine, work: dict, device: str) -> StepTime:
    """Run one ``engine.step`` (waiting for the GPU) and time it."""
    segments = (lambda: torch.cuda.memory_stats().get("segment.all.allocated", 0)) if device == "cuda" else (lambda: 0)
    seg, steal, sw = segments(), _steal_ms(), resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    t, c = time.perf_counter(), time.process_time()
    engine.step(work)
    sync(device)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    seen, shapes = engine.__dict__.setdefault("_bench_seen_shapes", set()), set(getattr(engine, "shapes", ()))
    new, _ = len(shapes - seen), seen.update(shapes)
    return StepTime(wall, cpu, segments() - seg, _steal_ms() - steal,
                    resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - sw, new)


def raw_fields(n: int, steps: list[tuple[int, StepTime]]) -> dict:
    """``--raw``'s fields of a row (every step: streams in it, its time, what the host saw meanwhile; and the
    stalls summed up), printing the summary."""
    columns = ["streams", "wall_ms", "process_cpu_ms", "new_cuda_segments", "steal_ms", "involuntary_switches",
               "new_shapes"]
    rows = [[k, round(st.wall_s * 1e3, 2), round(st.cpu_s * 1e3, 2), st.new_segments, round(st.steal_ms, 1),
             st.switches, st.new_shapes] for k, st in steps]
    summary = stalls([st for _, st in steps])
    print(f"N={n}: {summary}", flush=True)
    return {"steps_raw": rows, "steps_raw_columns": columns, "stalls": summary}


def stalls(steps: list[StepTime]) -> dict:
    """Steps over 3x the median wall time ("stalls") against the rest: how many, and per group the median
    share of wall time the process spent on the CPU, steal ms and involuntary switches."""
    wall = np.array([st.wall_s for st in steps])
    slow = wall > 3 * np.median(wall)
    def group(mask: np.ndarray) -> dict:
        picked = [st for st, m in zip(steps, mask) if m]
        if not picked:
            return {"steps": 0}
        return {"steps": len(picked), "wall_ms_median": round(float(np.median([st.wall_s for st in picked])) * 1e3, 2),
                "cpu_share_median": round(float(np.median([st.cpu_s / st.wall_s for st in picked])), 3),
                "steal_ms_median": round(float(np.median([st.steal_ms for st in picked])), 1),
                "switches_median": float(np.median([st.switches for st in picked])),
                "new_segments_total": int(sum(st.new_segments for st in picked)),
                "steps_with_new_shapes": int(sum(st.new_shapes > 0 for st in picked))}
    return {"stalled": group(slow), "others": group(~slow)}


def measure(engine, codes: list[np.ndarray], n: int, fpp: int, steps: int, device: str) -> list[StepTime]:
    """``timed_step`` of each step with n streams, each fed fpp frames of its own utterance per step
    (restarting at its end)."""
    pos, stream, times = [0] * n, list(range(n)), []
    for it in range(steps + 3):
        work = {}
        for i in range(n):
            add_packet(work, codes, pos, stream, i, n, fpp)
        sync(device)
        timed = timed_step(engine, work, device)
        if it >= 3:
            times.append(timed)
    return times


def spread(engine, codes: list[np.ndarray], n: int, fpp: int, packet_s: float, seconds: float, warmup: float,
           device: str, seed: int = 0) -> tuple[list[float], list[tuple[int, StepTime]]]:
    """Latencies (s) of every packet due after ``warmup``, and (streams, ``timed_step``) per step, with n devices
    whose packets are due at their own phase (uniform over one packet, as bench/serve_load.py sends them) plus k
    packets.

    The loop is the server's batcher without sockets: whenever the engine is free it takes every packet due
    by now (a device behind by several gets them in one step) and runs one step; a packet's latency runs from
    its due time (its audio captured) to the end of the step that answered it, so waiting for a busy engine
    counts. Real clock: if steps are too slow, packets queue and their latency grows."""
    rng = np.random.default_rng(seed)
    k = int(seconds / packet_s)
    due = (rng.uniform(0, packet_s, n)[:, None] + packet_s * np.arange(1, k + 1)).ravel()
    order = np.argsort(due, kind="stable")
    due, dev = due[order].tolist(), (order // k).tolist()
    pos, stream = [0] * n, list(range(n))
    lat, sizes, i, t0 = [], [], 0, time.perf_counter()
    while i < len(due):
        now = time.perf_counter() - t0
        if now > 2 * seconds:  # far behind: the rest counts as answered now (a lower bound on their latency)
            lat += [now - t for t in due[i:] if t >= warmup]
            break
        if due[i] > now:
            time.sleep(due[i] - now)
            continue
        j = int(np.searchsorted(due, now, side="right"))
        work: dict = {}
        for d in dev[i:j]:
            add_packet(work, codes, pos, stream, d, n, fpp)
        st = timed_step(engine, work, device)
        done = time.perf_counter() - t0
        lat += [done - t for t in due[i:j] if t >= warmup]
        sizes.append((len(work), st))
        i = j
    return lat, sizes


def profile(engine, codes: list[np.ndarray], n: int, fpp: int, device: str) -> int:
    """Warm up with n streams, then print the operators of three steps by self time (CPU and CUDA)."""
    measure(engine, codes, n, fpp, 2, device)
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        measure(engine, codes, n, fpp, 0, device)
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=14, max_name_column_width=40))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8, max_name_column_width=40))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["asr", "ac"], default="asr")
    ap.add_argument("--streams", default="10,50,100,200,500")
    ap.add_argument("--packet-s", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--engine", default="auto", choices=list(ENGINES),
                    help="ASR engine: slot (shared state tensors) or stream (per-stream state); auto: slot on CUDA")
    ap.add_argument("--tf32", action="store_true", help="CUDA: TF32 matrix products (10-bit mantissa inputs)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="slot engine: the tail blocks' number format")
    ap.add_argument("--buckets", action="store_true", help="slot engine: tensor sizes rounded up to a few buckets "
                    "(SlotAsrEngine(buckets=True)), so varying batches reuse shapes")
    ap.add_argument("--gc", choices=["quiet", "default", "off"], default="quiet",
                    help="quiet: engine.quiet_gc() as `acom serve` does; default: Python's collector untouched; "
                    "off: no collections at all (to tell collector pauses from other stalls)")
    ap.add_argument("--python-only", action="store_true", help="slot engine: skip the tensor work (each stream "
                    "gets 4 characters per step) to time the per-stream Python work alone")
    ap.add_argument("--arrivals", choices=["together", "spread"], default="together",
                    help="together: every stream's packet in each step (the step time is every stream's latency; "
                    "the worst case of synchronized devices); spread: packets due at each device's own phase, "
                    "batched as they come, as bench/serve_load.py sends them (latency from a packet's due time)")
    ap.add_argument("--seconds", type=float, default=12.0, help="spread: seconds of packets per N")
    ap.add_argument("--warmup-s", type=float, default=2.0, help="spread: leave out packets due before this")
    ap.add_argument("--raw", action="store_true", help="keep every step's time in the report (to see spikes)")
    ap.add_argument("--profile", type=int, default=0, help="print torch.profiler's top operators of one step at "
                    "this many streams (after warm-up) and exit")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: one less than the cores)")
    ap.add_argument("--pin", default="", help="run on these CPUs only, e.g. 2 or 2,3 (os.sched_setaffinity; to "
                    "tell scheduling stalls from others)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "tail_throughput.json")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.pin:
        try:
            os.sched_setaffinity(0, {int(c) for c in args.pin.split(",")})
        except (ValueError, OSError) as e:
            raise SystemExit(f"--pin {args.pin}: CPUs from 0 to {(os.cpu_count() or 1) - 1}, comma-separated ({e})")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif device == "cpu":  # as `acom serve` does: on this 2-vCPU VM two threads made a step 20x slower
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
    with tempfile.TemporaryDirectory() as tmp:
        write_server_bundle(PRETRAINED / args.task / "split.pt", Path(tmp) / "b", n_q=1)
        bundle = open_bundle(Path(tmp) / "b")
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    engine = make_engine(bundle, device, kind=args.engine, dtype=args.dtype, buckets=args.buckets)
    if args.python_only:
        if not hasattr(engine, "_decode"):
            raise SystemExit("--python-only needs the slot engine (--engine slot)")
        engine._decode = lambda rows, slots, codes, n_new, ended: (rows, None)
        engine._collect = lambda rows, done, texts: [texts.__setitem__(i, texts[i] + "AB C") for i in rows]
    if args.gc == "quiet":
        quiet_gc()  # as `acom serve` does once its model is loaded
    elif args.gc == "off":
        gc.disable()
    fpp = max(1, round(args.packet_s * bundle.frame_rate))
    # the tail's cost does not depend on the code values, only on how many frames arrive: random codes of
    # utterance lengths (2-15 s), streams ending and starting as they would
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, bundle.codebook_sizes[0], (1, int(rng.uniform(2, 15) * bundle.frame_rate)))
             for _ in range(64)]
    if args.profile:
        return profile(engine, codes, args.profile, fpp, device)
    rows = []
    for n in [int(x) for x in args.streams.split(",")]:
        if args.arrivals == "spread":
            measure(engine, codes, n, fpp, 0, device)  # 3 warm-up steps at this many streams
            lat, steps = spread(engine, codes, n, fpp, args.packet_s, args.seconds, args.warmup_s, device)
            lat_ms, sizes, step_ms = (np.array(lat) * 1e3, [s[0] for s in steps],
                                      np.array([s[1].wall_s for s in steps]) * 1e3)
            row = {"streams": n, "packets": len(lat), "steps": len(sizes),
                   "streams_per_step_median": int(np.median(sizes)),
                   "latency_ms_median": round(float(np.median(lat_ms)), 2),
                   "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 2),
                   "latency_ms_max": round(float(lat_ms.max()), 2),
                   "step_ms_median": round(float(np.median(step_ms)), 2),
                   "step_ms_p99": round(float(np.percentile(step_ms, 99)), 2)}
            if args.raw:
                row.update(raw_fields(n, steps))
            rows.append(row)
            print(f"N={n}: {len(sizes)} steps of median {row['streams_per_step_median']} streams; latency median "
                  f"{row['latency_ms_median']} ms, p99 {row['latency_ms_p99']} ms, max {row['latency_ms_max']} ms",
                  flush=True)
            continue
        timed = measure(engine, codes, n, fpp, args.steps, device)
        times = np.array([st.wall_s for st in timed]) * 1e3
        row = {"streams": n, "step_ms_median": round(float(np.median(times)), 2),
               "step_ms_p99": round(float(np.percentile(times, 99)), 2),
               "ms_per_stream_second": round(float(np.median(times)) / n / args.packet_s, 4)}
        if args.raw:
            row.update(raw_fields(n, [(n, st) for st in timed]))
        rows.append(row)
        print(f"N={n}: step median {row['step_ms_median']} ms, p99 {row['step_ms_p99']} ms "
              f"({row['ms_per_stream_second']} ms per stream-second)", flush=True)
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    kind = type(engine).__name__
    p99 = lambda r: r.get("latency_ms_p99", r.get("step_ms_p99"))  # noqa: E731  (spread rows / together rows)
    report = {"task": args.task, "arrivals": args.arrivals, "device": name, "engine": kind, "tf32": args.tf32,
              "dtype": args.dtype, "buckets": args.buckets, "gc": args.gc,
              "pin": args.pin or None, "threads": torch.get_num_threads(),
              "python_only": args.python_only, "packet_s": args.packet_s, "steps": args.steps,
              "largest_streams_p99_within_target": max([r["streams"] for r in rows if p99(r) <= args.p99_ms],
                                                       default=0),
              "largest_streams_real_time": max([r["streams"] for r in rows if p99(r) <= args.packet_s * 1e3],
                                               default=0),
              "p99_target_ms": args.p99_ms, "rows": rows}
    parts = [args.task, device, "spread" if args.arrivals == "spread" else "",
             {"SlotAsrEngine": "slot", "AsrEngine": "stream"}.get(kind, ""), "tf32" if args.tf32 else "",
             "bf16" if args.dtype == "bfloat16" else "", "buckets" if args.buckets else "",
             "python-only" if args.python_only else "",
             "" if args.gc == "quiet" else f"gc-{args.gc}", f"pin{args.pin.replace(',', '_')}" if args.pin else ""]
    merge_entry(args.out, "-".join(p for p in parts if p), report)
    print(f"{args.task} on {name}: p99 step <= {args.p99_ms} ms up to N={report['largest_streams_p99_within_target']}"
          f", real time up to N={report['largest_streams_real_time']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
