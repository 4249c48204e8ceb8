"""`acom serve`: argument parsing, device keys, signals. The server itself is runtime/server.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from pathlib import Path

from acom.errors import AcomError
from acom.runtime.engine import quiet_gc
from acom.runtime.server import ServeConfig, Server
from acom.runtime.streams import ReassemblyConfig


def load_keys(path: Path) -> dict[int, bytes]:
    """Device keys from a JSON object {"<device id>": "<key as hex>", ...}; AcomError naming the bad entry."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AcomError(f"{path}: cannot read the keys file ({e}); expected JSON {{\"7\": \"<hex key>\"}}") from e
    if not isinstance(raw, dict) or not raw:
        raise AcomError(f"{path}: expected a non-empty JSON object mapping device ids to hex keys")
    keys = {}
    for dev, key in raw.items():
        try:
            device = int(dev)
            value = bytes.fromhex(key)
        except (TypeError, ValueError):
            raise AcomError(f"{path}: entry {dev!r}: expected a device id 0..4294967295 and a key in hex") from None
        if not 0 <= device < 1 << 32 or len(value) < 16:
            raise AcomError(f"{path}: entry {dev!r}: device ids are 0..4294967295 and keys at least 16 bytes "
                            f"(got {len(value)})")
        keys[device] = value
    return keys


def parse_hostport(text: str) -> tuple[str, int]:
    """HOST:PORT or PORT (host 127.0.0.1) -> (host, port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise AcomError(f"--udp {text!r}: expected HOST:PORT or PORT with PORT 0..65535 (0: any free port)")
    return host or "127.0.0.1", number


def parse_cpus(text: str) -> frozenset[int]:
    """``--tail-cpus``: "1", "2,3" or "2-3" -> the CPU numbers; they must be this process's CPUs and leave at
    least one of them to the receiving loop."""
    allowed = os.sched_getaffinity(0)
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        cpus = set()
    listed = ",".join(map(str, sorted(allowed)))
    if not cpus or not cpus <= allowed or cpus == allowed:
        raise AcomError(f"--tail-cpus {text!r}: expected CPU numbers (1, 2,3 or 2-3) among this process's CPUs "
                        f"({listed}), leaving at least one of them to the receiving loop")
    return frozenset(cpus)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom serve", description="Receive RVQ codes from devices over UDP and serial ports and run the "
        "model's tail on them, batched across streams. Results are JSON lines: partial and final transcripts "
        "(ASR) or labels (classification), with latency; the last line is a summary of the counters.",
        epilog="Stops on SIGINT/SIGTERM (or after --duration), writing every open stream's final result first. "
        "Exit codes: 0 stopped cleanly, 2 bad input (bundle, keys, addresses), 1 other failures.")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder written by acom-export")
    p.add_argument("--udp", metavar="HOST:PORT", help="listen for UDP packets (PORT alone: 127.0.0.1)")
    p.add_argument("--serial", metavar="PORT", action="append", default=[],
                   help="a serial port to read (/dev/ttyUSB0, a pty, socket://HOST:PORT, loop://); repeatable")
    p.add_argument("--baudrate", type=int, default=115200, help="serial speed (default 115200)")
    p.add_argument("--keys", type=Path, help="JSON {device id: hex key}: packets must carry a valid HMAC tag")
    p.add_argument("--max-packet-s", type=float, default=10.0, metavar="S",
                   help="audio one packet may carry (default 10 s); more is refused and counted (packet_frames)")
    p.add_argument("--max-gap-s", type=float, default=30.0, metavar="S",
                   help="audio a packet may say was lost before it in its stream (default 30 s); more is refused "
                   "(gap): a device cut off for longer starts a new stream")
    p.add_argument("--max-step-frames", type=int, default=2048, metavar="N",
                   help="frames one tail step runs at most, all streams together (default 2048; a step's memory "
                   "grows with its frames, up to ~57 KB a frame for the shipped ASR tail): a burst runs over several "
                   "steps")
    p.add_argument("--max-backlog-s", type=float, default=60.0, metavar="S",
                   help="audio one stream may have waiting for the tail (default 60 s); its packets beyond it are "
                   "refused (backlog): a stream that sends faster than real time loses frames, the others nothing")
    p.add_argument("--admit-lag-ms", type=float, default=250.0, metavar="MS",
                   help="admission control: while the tail's measured lag (the latency of each step's oldest "
                   "update, smoothed) is over MS, packets that would open a new stream are refused (overload) "
                   "and open streams are served on; admitted again below MS/2 (default 250; 0: never refuse)")
    p.add_argument("--admit-streams", type=int, metavar="N",
                   help="admission control: at most N streams hold a slot (N: the devices this machine served "
                   "within its latency target, bench/serve_overload.py); a stream holds one from its first packet "
                   "until a packet's duration after its end, and its device's next stream takes it over; a "
                   "packet that would open a stream beyond N is refused (overload). Default: no limit")
    p.add_argument("--state", type=Path, metavar="FILE",
                   help="with --keys: keep the ended stream ids in FILE, so that replays stay refused after a "
                   "restart (written every second while streams end, and at shutdown)")
    p.add_argument("--max-bad-tags", type=int, default=64, metavar="N",
                   help="with --keys: a source that sends more than N bad tags in a minute is ignored for 5 "
                   "minutes (default 64), so a short tag cannot be guessed at line rate")
    p.add_argument("--out", type=Path, help="write JSON lines here (default: stdout)")
    p.add_argument("--metrics-port", type=int, help="Prometheus text endpoint on 127.0.0.1:PORT (0: any free port)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the tail runs")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for the tail (default: one less than the cores, at least 1; with --tail-cpus, "
                   "one per CPU given)")
    p.add_argument("--tail-cpus", metavar="LIST",
                   help="run the tail on these CPUs (1, 2,3 or 2-3) and receive packets on the others, so that "
                   "checking and refusing packets takes no CPU time from the tail (Linux)")
    p.add_argument("--max-batch", type=int, default=512, help="streams per tail step at most (default 512)")
    p.add_argument("--max-delay-ms", type=float, default=5.0,
                   help="how long an update may wait for others to share its tail step (default 5)")
    p.add_argument("--reorder-ms", type=float, default=200.0,
                   help="how long a missing packet is awaited before its frames count as lost (default 200)")
    p.add_argument("--idle-s", type=float, default=10.0, help="end a stream after this long without packets")
    p.add_argument("--engine", default="auto", choices=["auto", "slot", "stream"],
                   help="ASR tail: slot keeps every stream's state in shared tensors (a step's GPU work does not grow "
                   "with the number of streams), stream keeps it per stream; auto: slot on CUDA when the tail is "
                   "all Conformer blocks, else stream (docs/serve.md)")
    p.add_argument("--tf32", action="store_true", help="CUDA: TF32 matrix products (faster, 10-bit mantissa inputs)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="ASR slot engine: the tail blocks' number format; bfloat16 halves memory traffic and uses "
                   "tensor cores on a GPU, and changes a few characters of a transcript (docs/serve.md)")
    p.add_argument("--tail-buckets", action="store_true",
                   help="ASR slot engine: round each step's tensor sizes up to a few (4 per octave of streams, frames "
                   "to multiples of 8) so that batches of varying size reuse the GPU libraries' plans; the padding "
                   "costs up to 25%% more rows (docs/serve.md)")
    p.add_argument("--window-s", type=float, default=4.0, help="classifier: seconds each label covers (default 4)")
    p.add_argument("--no-partial", action="store_true", help="write final results only")
    p.add_argument("--duration", type=float, help="stop after this many seconds (for scripts)")
    return p


def _warn_if_exposed(args: argparse.Namespace, keys: dict | None) -> None:
    """Say so (on stderr) when anyone on the network may send packets, or other users may read the keys."""
    if args.keys and Path(args.keys).stat().st_mode & 0o077:
        print(f"acom serve: warning: {args.keys} can be read by other users (chmod 600 it): it holds the device "
              "keys", file=sys.stderr)
    if args.udp and keys is None and parse_hostport(args.udp)[0] not in ("127.0.0.1", "localhost", "::1"):
        print(f"acom serve: warning: listening on {args.udp} without --keys: anyone who can reach it can send "
              "packets that are accepted", file=sys.stderr)


def make_server(args: argparse.Namespace, out) -> Server:
    import torch

    from acom.runtime.bundle import open_bundle
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    tail_cpus = parse_cpus(args.tail_cpus) if args.tail_cpus else None
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif tail_cpus:
        torch.set_num_threads(len(tail_cpus))
    elif device == "cpu":  # leave a core to the receiving loop: measured p50 37 ms instead of 64 at 50 streams
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
    if device == "cuda" and not torch.cuda.is_available():
        raise AcomError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if args.tf32 and device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if args.admit_streams is not None and args.admit_streams < 1:
        raise AcomError(f"--admit-streams {args.admit_streams}: must be 1 or more")
    if not (args.admit_lag_ms >= 0 and math.isfinite(args.admit_lag_ms)):
        raise AcomError(f"--admit-lag-ms {args.admit_lag_ms}: must be a finite number of milliseconds, 0 or more")
    for name in ("max_batch", "max_delay_ms", "reorder_ms", "idle_s", "window_s", "max_bad_tags", "max_packet_s",
                 "max_gap_s", "max_step_frames", "max_backlog_s"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise AcomError(f"--{name.replace('_', '-')} {value}: must be a positive finite number")
    config = ServeConfig(max_batch=args.max_batch, max_delay=args.max_delay_ms / 1e3, device=device,
                         window_s=args.window_s, engine=args.engine, dtype=args.dtype, buckets=args.tail_buckets,
                         partial=not args.no_partial, max_bad_tags=args.max_bad_tags,
                         max_packet_s=args.max_packet_s, max_gap_s=args.max_gap_s, state=args.state,
                         max_step_frames=args.max_step_frames, max_backlog_s=args.max_backlog_s,
                         admit_lag_ms=args.admit_lag_ms or None, admit_streams=args.admit_streams, tail_cpus=tail_cpus,
                         reassembly=ReassemblyConfig(reorder_timeout=args.reorder_ms / 1e3, idle_timeout=args.idle_s))
    keys = load_keys(args.keys) if args.keys else None
    if args.state and keys is None:
        raise AcomError("--state keeps the ended stream ids of keyed devices: it needs --keys")
    server = Server(open_bundle(args.bundle), out, config, keys)
    if tail_cpus:  # the receiving loop (this thread) keeps off the tail's CPUs; the tail's thread pins itself
        os.sched_setaffinity(0, os.sched_getaffinity(0) - tail_cpus)
    quiet_gc()  # the model and imports are long-lived: later collections need not walk them (fewer long pauses)
    return server


async def serve(args: argparse.Namespace, out) -> dict:
    server = make_server(args, out)
    try:
        bound = await server.start(parse_hostport(args.udp) if args.udp else None, args.serial, args.baudrate,
                                   args.metrics_port)
    except OSError as e:
        raise AcomError(f"cannot listen on --udp {args.udp} / --metrics-port {args.metrics_port}: {e}") from e
    print(json.dumps({"type": "ready", "task": server.bundle.task, **{k: list(v) for k, v in bound.items()},
                      "serial": args.serial}), file=sys.stderr, flush=True)
    _warn_if_exposed(args, server.keys)  # after the ready line, which scripts read first
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(server.failed.wait())]
    await asyncio.wait(waiters, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    return await server.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.udp and not args.serial:
        raise AcomError("nothing to listen on: give --udp HOST:PORT and/or --serial PORT")
    out = open(args.out, "a") if args.out else sys.stdout
    try:
        summary = asyncio.run(serve(args, out))
    finally:
        if args.out:
            with contextlib.suppress(OSError):
                out.close()
    return 1 if "failure" in summary else 0
