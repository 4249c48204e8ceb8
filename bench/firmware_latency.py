"""Benchmark: the Cortex-M firmware's latency, from the last sample of a packet's audio to the packet on the link.

Each board's firmware (built from one Cortex-M55 export's C: the classifier, and the speech recognizer where it
fits) runs under qemu-system-arm and is fed test audio over its UART at the audio's real rate, 10 ms at a time as
a microphone driver would; each packet's arrival is set against the moment its last sample was sent. Under
emulation the compute takes QEMU's time, not the board's: the report adds the latency on the board itself as the
window's wait plus the counted instructions of a window at the board's clock (reports/device_cost.json; a lower
bound: instructions, not cycles).

    python bench/firmware_latency.py --urban data/urban --speech data/speech
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from reportfile import merge_entry

from acom.boards import load_board
from acom.core.audio import load_audio
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.errors import AcomError
from acom.export.firmware import build_firmware
from acom.export.pipeline import ExportOptions, export
from acom.firmware_host.edge_c import pcm16
from acom.firmware_host.uart_audio import stream_audio
from acom.runtime.bundle import read_manifest
from acom.runtime.wire import Contexts, decode_packet

ROOT = Path(__file__).resolve().parents[1]
NOTE = ("a window's packets go when its last sample is in and its graph has run (window = packet = 1 s here); "
        "the emulated figure is dominated by QEMU delivering the UART's bytes one at a time (the emulated firmware "
        "falls ~1 s behind 32 kB/s of audio), not the board's compute; on a board the audio comes by I2S/PDM DMA "
        "(docs/firmware.md), and the latency is the board's compute per window (a lower bound)")
BOARDS = {"ac": ("cortex-m4", "cortex-m7", "cortex-m55-u55"), "asr": ("cortex-m7", "cortex-m55-u55")}


def latencies(run, samples_per_code: int) -> list[float]:
    """Per packet with frames: its arrival minus when the last sample of its audio was sent."""
    ctx, out = Contexts(), []
    for data, arrived in zip(run.packets, run.arrived):
        p = decode_packet(data, None, ctx)
        if not p.n_frames:
            continue
        last = (p.first_frame + p.n_frames) * samples_per_code
        sent = [t for s, n, t in run.fed if s == p.stream_id and n >= min(last, _length(run, p.stream_id))]
        out.append(arrived - sent[0])
    return out


def _length(run, stream: int) -> int:
    return max(n for s, n, _ in run.fed if s == stream)


def board_latency(task: str, board: str, bundle: Path, clips, work: Path) -> dict:
    m = read_manifest(bundle)
    elf = build_firmware(board, m, bundle / "c", work).files[m.firmware.elf]
    run = stream_audio(board, elf, clips, realtime_rate=m.sample_rate, timeout=300)
    spc = round(m.sample_rate / m.frame_rate)
    lat = latencies(run, spc)
    cost = json.loads((ROOT / "reports" / "device_cost.json").read_text())[task]["boards"][board]
    b = load_board(board)
    window_s = run.window_samples / m.sample_rate
    compute_s = cost["device_instructions_per_s"] * window_s / cost["issue_width"] / (b.clock_mhz * 1e6)
    return {"task": task, "board": board, "packets": len(lat), "audio_s": sum(len(p) for _, p in clips) / m.sample_rate,
            "window_s": window_s, "packet_s": m.firmware.settings["frames_per_packet"] / m.frame_rate,
            "emulated_latency_ms_median": round(1000 * statistics.median(lat), 1),
            "emulated_latency_ms_max": round(1000 * max(lat), 1),
            "board_compute_per_window_ms_lower_bound": round(1000 * compute_s, 1),
            "board_latency_ms_lower_bound": {"first packet of a window": round(1000 * (window_s - m.firmware.settings[
                "frames_per_packet"] / m.frame_rate + compute_s), 1),
                "last packet of a window": round(1000 * compute_s, 1)},
            "note": NOTE}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urban", type=Path, required=True)
    ap.add_argument("--speech", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "firmware_latency.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="acom-bench-latency-") as tmp:
        work = Path(tmp)
        for task, data in (("ac", args.urban), ("asr", args.speech)):
            bundle = work / task
            export(ExportOptions(board="cortex-m55-u55", task=task, out=bundle, data=data, keep_failed=True,
                                 calibration_windows=8, verify_items=4, log=lambda s: None))
            items = open_dataset(task, data, TASKS[task].test_subset).items[:2]
            clips = [(i, pcm16(load_audio(it.path, 16000))) for i, it in enumerate(items)]
            for board in BOARDS[task]:
                (work / board).mkdir(exist_ok=True)
                try:
                    entry = board_latency(task, board, bundle, clips, work / board)
                except AcomError as e:  # recorded, not hidden: the report says which run failed and why
                    entry = {"task": task, "board": board, "failed": str(e)}
                merge_entry(args.out, f"{task}/{board}", entry)
                print(json.dumps(entry), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
