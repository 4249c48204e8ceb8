"""Benchmark: what the whole device in C costs a microcontroller per second of audio, in instructions executed.

An MCU bundle (exported here for the Cortex-M55, its C graph for any Cortex-M) runs as firmware
(firmware_host/c/app/device_app.c) under ``qemu-system-arm`` on test clips of 16-bit audio, four times, each
doing one stage more: the audio alone, + the front end (log-mel by FFT), + the graph (codes), + packets on the
UART (bit-packed, then range-coded). A QEMU plugin (c/test/qemu_insn.c) counts the guest instructions each run
executes; a stage's cost is the difference, per second of audio. QEMU does not model cycles: a core retires at
most its issue width of instructions a cycle (1 for the M4 and the M55, scalar pipelines; 2 for the dual-issue
M7), so instructions / width per second is a lower bound on the clock the device needs, and times the board's
uW/MHz (its profile, with the source) a lower bound on the energy. Writes reports/device_cost.json (one entry
per task).

    python bench/device_cost.py --task ac --data data/urban
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from reportfile import merge_entry

from acom.boards import load_board
from acom.core.audio import load_audio
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.pipeline import ExportOptions, export
from acom.firmware_host.cbuild import insn_plugin
from acom.firmware_host.device_c import AUDIO_PER_RUN, app_instructions
from acom.firmware_host.edge_c import pcm16
from acom.runtime.bundle import load_priors, read_manifest

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ("cortex-m4", "cortex-m7", "cortex-m55-u55")
STAGES = ("audio", "front_end", "graph", "packets")
ISSUE_WIDTH = {"cortex-m4": 1, "cortex-m7": 2, "cortex-m55-u55": 1}  # instructions a cycle, at most


def clips(task: str, data: Path, rate: int) -> list[tuple[int, np.ndarray]]:
    """Test items as 16-bit audio, as many as one firmware image holds (device_c.AUDIO_PER_RUN samples)."""
    out, total = [], 0
    for i, item in enumerate(open_dataset(task, data, TASKS[task].test_subset).items):
        pcm = pcm16(load_audio(item.path, rate))
        if total + len(pcm) > AUDIO_PER_RUN:
            break
        out.append((i, pcm))
        total += len(pcm)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=("ac", "asr"), required=True)
    ap.add_argument("--data", type=Path, required=True, help="data set with the task's train and test subsets")
    ap.add_argument("--board", action="append", choices=BOARDS, help="repeat; default: all three")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "device_cost.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work, bundle = Path(tmp), Path(tmp) / "bundle"
        # the instructions do not depend on how well the model scores: a bundle that misses the accuracy bar on a
        # small data set is measured too (the entry says whether it passed)
        export(ExportOptions(board="cortex-m55-u55", task=args.task, out=bundle, data=args.data, keep_failed=True,
                             log=lambda s: None))
        manifest = read_manifest(bundle)
        priors = load_priors(bundle, manifest)
        if manifest.c_graph is None or not manifest.c_graph.written or priors is None:
            raise SystemExit(f"the bundle has no C graph or no priors: {manifest.c_graph}")
        audio = clips(args.task, args.data, manifest.sample_rate)
        seconds = sum(len(p) for _, p in audio) / manifest.sample_rate
        plugin = insn_plugin(work)
        rows = {}
        for board in args.board or BOARDS:
            totals = [app_instructions(board, bundle, audio, k, False, plugin, work)[0] for k in range(4)]
            coded, functions = app_instructions(board, bundle, audio, 3, True, plugin, work, by_function=True)
            per_s = {s: round((b - a) / seconds) for s, a, b in zip(STAGES[1:], totals, totals[1:])}
            per_s["packets_range_coded"] = round((coded - totals[2]) / seconds)
            device = per_s["front_end"] + per_s["graph"] + per_s["packets_range_coded"]
            profile = load_board(board)
            uw, cycles = profile.energy.get("uw_per_mhz"), device / ISSUE_WIDTH[board]
            rows[board] = {"instructions_total": dict(zip(STAGES, totals)), "instructions_total_range_coded": coded,
                           "instructions_per_s": per_s, "device_instructions_per_s": device,
                           "issue_width": ISSUE_WIDTH[board], "clock_mhz": profile.clock_mhz,
                           "share_of_clock_lower_bound": round(cycles / (profile.clock_mhz * 1e6), 4),
                           "mw_lower_bound": round(cycles * uw.value * 1e-12 * 1e3, 3) if uw else None,
                           "uw_per_mhz": uw.value if uw else None, "uw_per_mhz_source": uw.source if uw else None,
                           # where the range-coded device's instructions go: the 12 largest functions, per second
                           "top_functions_per_s": {f: round(n / seconds) for f, n in list(functions.items())[:12]}}
            print(json.dumps({"board": board, **per_s, "device": device}), flush=True)
    entry = {"task": args.task, "data": str(args.data), "clips": len(audio), "audio_s": round(seconds, 2),
             "bundle": "cortex-m55-u55 export (C graph, C front end, priors)", "n_q": manifest.n_q,
             "frames_per_packet": max(1, round(manifest.frame_rate)),
             "export_verified": manifest.verification is not None and manifest.verification.passed,
             "what": "guest instructions executed under qemu-system-arm (QEMU plugin c/test/qemu_insn.c); not cycles",
             "boards": rows}
    merge_entry(args.out, args.task, entry)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
