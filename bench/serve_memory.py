"""Benchmark and check: the memory `acom serve` needs under the worst packets its limits allow.

Each of N streams sends P packets that each claim the most a packet may: ``--max-gap-s`` of lost audio before
it and ``--max-packet-s`` of frames in it (range-coded, a few bytes each), all at once so that the tail runs
them in the same steps. A plain stream first warms the server up; its peak resident memory (``VmHWM``) then
is the baseline. Reported: the peak after the worst traffic, its growth over the baseline, per stream, the
frames the packets claimed and the frames the tail ran (a long gap runs as ``gap_keep`` frames,
runtime/engine.py), and whether every stream got its final line. Writes reports/serve_memory.json; the
test tests/runtime/test_memory.py runs it small and checks the ceiling docs/serve.md states.

    python bench/serve_memory.py --task asr --streams 64 --packets 8
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from acom.codes.priors import encode_codes
from acom.core.checkpoint import PRETRAINED
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.engines import make_engine
from acom.runtime.wire import Packet, codebook_id, encode_packet

ROOT = Path(__file__).resolve().parents[1]


def peak_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process in MiB, from /proc (VmHWM, VmRSS)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS"))


def worst_packets(bundle, streams: int, packets: int, gap: int, frames: int, first_id: int) -> list[bytes]:
    """Per stream (device 9, ids first_id..), ``packets`` packets of ``frames`` frames, each after ``gap`` lost
    frames; range-coded with the likeliest code, the last one ending its stream."""
    book, priors = codebook_id(bundle.manifest.codebook_hash), bundle.priors
    payload = min((encode_codes(np.full((1, frames), c), priors) for c in range(bundle.codebook_sizes[0])), key=len)
    out = []
    for j in range(packets):  # stream-major within each round: every stream's packet j before any packet j + 1
        for s in range(streams):
            out.append(encode_packet(Packet(9, first_id + s, j, j * (gap + frames) + gap, book, 1, frames, payload,
                                            entropy_coded=True, end_of_stream=j == packets - 1,
                                            frames_per_packet=frames, stream_n_q=1)))
    return out


def finals(out: Path) -> dict:
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return {(r["device"], r["stream"]): r for r in lines if r.get("type") == "final"}


def measure(bundle_dir: Path, streams: int, packets: int, max_gap_s: float, max_packet_s: float,
            timeout: float = 300.0) -> dict:
    bundle = open_bundle(bundle_dir)
    gap, frames = math.ceil(max_gap_s * bundle.frame_rate), math.ceil(max_packet_s * bundle.frame_rate)
    keep = make_engine(bundle, "cpu").gap_keep
    with tempfile.TemporaryDirectory(prefix="acom-mem-") as tmp:
        out = Path(tmp) / "out.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "acom.cli", "serve", "--bundle", str(bundle_dir), "--udp",
                                 "127.0.0.1:0", "--out", str(out), "--no-partial", "--max-gap-s", str(max_gap_s),
                                 "--max-packet-s", str(max_packet_s), "--admit-lag-ms", "0"],
                                stderr=subprocess.PIPE, text=True)
        try:
            addr = tuple(json.loads(proc.stderr.readline())["udp"])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
                for p in worst_packets(bundle, 1, 2, 0, frames, 0):  # warm-up: one plain stream
                    sock.sendto(p, addr)
                _wait(lambda: len(finals(out)) == 1, proc, timeout)
                base, _ = peak_mb(proc.pid)
                worst = worst_packets(bundle, streams, packets, gap, frames, 1)
                for p in worst:
                    sock.sendto(p, addr)
                    time.sleep(0.0002)  # loopback drops a burst beyond the socket buffer
                _wait(lambda: len(finals(out)) == streams + 1, proc, timeout)
            peak, now = peak_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = [r for r in lines if r.get("type") == "final" and r["stream"] >= 1]
    return {"streams": streams, "packets_per_stream": packets, "bytes_per_packet": len(worst[0]),
            "max_gap_s": max_gap_s, "max_packet_s": max_packet_s, "frames_claimed_per_packet": gap + frames,
            "frames_run_per_packet": min(gap, keep) + frames, "gap_keep_frames": keep,
            "baseline_peak_mb": round(base, 1), "peak_mb": round(peak, 1), "rss_after_mb": round(now, 1),
            "growth_mb": round(peak - base, 1), "growth_mb_per_stream": round((peak - base) / streams, 2),
            "finals": len(got), "finals_complete": sum(r["frames"] == packets * (gap + frames) and not r.get("error")
                                                       for r in got),
            "packet_outcomes": lines[-1]["packets"]}


def _wait(done, proc, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"acom serve {'ended' if proc.poll() is not None else 'timed out'} before "
                               f"every stream's final line")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["asr", "ac"], default="asr")
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--packets", type=int, default=8, help="packets per stream")
    ap.add_argument("--max-gap-s", type=float, default=30.0, help="acom serve's limit (its default)")
    ap.add_argument("--max-packet-s", type=float, default=10.0, help="acom serve's limit (its default)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_memory.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="acom-mem-") as tmp:
        write_server_bundle(PRETRAINED / args.task / "split.pt", Path(tmp) / "bundle", n_q=1)
        row = measure(Path(tmp) / "bundle", args.streams, args.packets, args.max_gap_s, args.max_packet_s)
    print(json.dumps(row))
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.setdefault(args.task, {})[f"{args.streams}x{args.packets}"] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
