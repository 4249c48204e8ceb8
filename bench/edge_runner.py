"""Benchmark: acom-edge, the Raspberry Pis' device program, on this machine and under qemu-aarch64.

Per board (host, rpi4, rpi5), with the board's ASR bundle (exported here from the shipped model when --bundle
does not give one) on the speech set's test utterances:

- codes: agreement per stage with the Python ExecuTorch runtime on x86 (on aarch64, the first runs of the .pte on
  XNNPACK's Arm kernels);
- instructions per second of audio under qemu-aarch64 (a QEMU plugin counts guest instructions; the marginal
  cost of 3 more windows, so the runtime's start-up is left out and reported apart); QEMU models no cycles:
  a Cortex-A72/A76 retires up to 3/4 instructions a cycle, so instructions / width / clock is a lower bound on
  the share of one core;
- latency: audio written into acom-edge's standard input at its real-time rate, each datagram's arrival on a
  loopback UDP socket against the moment its last sample was written (the window the graph runs on, minus the
  packet's place in it, plus the compute; under emulation the compute is QEMU's, not the board's).

Writes reports/edge_runner.json. The shipped model is a demonstration trained on synthetic speech.

    python bench/edge_runner.py --data data/speech
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from reportfile import merge_entry

from acom.boards import load_board
from acom.core.audio import load_audio
from acom.export.pipeline import ExportOptions, export
from acom.firmware_host.client import artifact_encoder
from acom.firmware_host.edge_runner import build_edge, count_instructions, edge_command, to_wavs
from acom.profiling.measure import issue_width
from acom.runtime.bundle import read_manifest
from acom.runtime.wire import Contexts, decode_packet

ROOT = Path(__file__).resolve().parents[1]


def bundle_for(board: str, data: Path, given: Path | None, work: Path) -> Path:
    """The board's ASR bundle: `given`, or an ExecuTorch-only export of the shipped model into `work`."""
    if given is not None:
        return given
    out = work / f"export-{board}-asr"
    if not (out / "manifest.json").exists():
        export(ExportOptions(board=board, task="asr", out=out, data=data, keep_failed=True, force=True,
                             log=lambda s: print(f"  export {board}: {s}", file=sys.stderr)))
    return out


def agreement(board: str, bundle: Path, files: list[Path]) -> dict:
    m = read_manifest(bundle)
    run = subprocess.run([*edge_command(board, build_edge(board)), "--bundle", str(bundle), "--udp", "127.0.0.1:9",
                          "--print-codes", *map(str, files)], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    encode = artifact_encoder(bundle, m, "edge.pte")
    got = np.concatenate([np.array(r["codes"]) for r in lines], 1)
    want = np.concatenate([encode(load_audio(p, m.sample_rate)) for p in files], 1)
    ms = [r["graph_ms_median"] for r in lines]
    return {"utterances": len(files), "codes_per_stage": int(got.shape[1]),
            "agreement_per_stage": [round(float(a), 5) for a in (got == want).mean(axis=1)],
            "graph_ms_per_window_median": round(statistics.median(ms), 1),
            "window_s": m.graph.window_samples / m.sample_rate}


def instructions(board: str, bundle: Path, work: Path) -> dict:
    """Guest instructions per second of audio (firmware_host.edge_runner.count_instructions) and the lower bound
    on the share of one core they take."""
    counted = count_instructions(board, bundle, work)
    b = load_board(board)
    width = issue_width(b)
    return {"instructions_per_s_audio": round(counted["per_s_audio"]),
            "startup_and_first_window_instructions": counted["startup"],
            "clock_mhz": b.clock_mhz, "issue_width": width,
            "share_of_one_core_lower_bound": round(counted["per_s_audio"] / width / (b.clock_mhz * 1e6),
                                                   4)}


def latency(board: str, bundle: Path, seconds: float = 8.0) -> dict:
    """Audio paced into standard input in real time (10 ms writes); per packet: arrival minus the write time of
    its last sample."""
    m = read_manifest(bundle)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(60)
    proc = subprocess.Popen([*edge_command(board, build_edge(board)), "--bundle", str(bundle), "--udp",
                             f"127.0.0.1:{sock.getsockname()[1]}", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    pcm = (np.random.default_rng(1).standard_normal(int(seconds * m.sample_rate)) * 3000).astype("<i2")
    chunk, written = m.sample_rate // 100, []  # written[i]: when samples up to (i + 1) * chunk were written

    def feed() -> None:
        start = time.monotonic()
        for i in range(0, len(pcm), chunk):
            time.sleep(max(0.0, start + (i + chunk) / m.sample_rate - time.monotonic()))
            proc.stdin.write(pcm[i: i + chunk].tobytes())
            proc.stdin.flush()
            written.append(time.monotonic())
        proc.stdin.close()
    feeder = threading.Thread(target=feed)
    feeder.start()
    ctx, spc, out = Contexts(), round(m.sample_rate / m.frame_rate), []
    while True:
        data = sock.recv(2048)
        arrived = time.monotonic()
        p = decode_packet(data, None, ctx)
        if p.n_frames:
            last_sample = min((p.first_frame + p.n_frames) * spc, len(pcm))
            out.append(arrived - written[-(-last_sample // chunk) - 1])
        if p.end_of_stream:
            break
    feeder.join()
    proc.wait(timeout=60)
    return {"packets": len(out), "latency_ms_median": round(1000 * statistics.median(out), 1),
            "latency_ms_max": round(1000 * max(out), 1), "audio_s": seconds,
            "note": "the graph runs on whole windows: a packet waits for the rest of its window, then the compute"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="speech set (LibriSpeech layout) with test-clean")
    ap.add_argument("--board", action="append", choices=("host", "rpi4", "rpi5"), help="repeat; default all")
    ap.add_argument("--bundle", type=Path, action="append", default=[], metavar="BOARD=DIR",
                    help="a bundle to use for a board instead of exporting one")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "edge_runner.json")
    args = ap.parse_args(argv)
    given = {str(b).split("=", 1)[0]: Path(str(b).split("=", 1)[1]) for b in args.bundle}
    with tempfile.TemporaryDirectory(prefix="acom-bench-edge-") as tmp:
        work = Path(tmp)
        files = to_wavs(sorted(args.data.glob("test-clean/*/*/*.flac")), 16000, work)
        for board in args.board or ["host", "rpi4", "rpi5"]:
            target = "rpi4" if board == "host" else board
            bundle = bundle_for(target, args.data, given.get(target), work)
            entry = {"board": board, "bundle_board": target, "data": str(args.data),
                     "runtime": "executorch 1.5.1 (XNNPACK), acom-edge C++",
                     "emulator": "none (this machine)" if board == "host" else "qemu-aarch64 -cpu "
                     + load_board(board).emulator.cpu, **agreement(board, bundle, files)}
            if board != "host":
                entry.update(instructions(board, bundle, work))
            entry.update(latency(board, bundle))
            merge_entry(args.out, board, entry)
            print(json.dumps(entry), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
