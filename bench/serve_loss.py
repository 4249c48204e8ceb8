"""Benchmark: WER against packet loss, with reordering and duplication, through a real server on loopback.

Real codes of the test utterances (the shipped ASR model's float edge half) go as UDP packets to an in-process
`acom serve` server on 127.0.0.1, every stream in real time (a packet when its audio is captured). Per loss
rate, each packet except a stream's last is dropped with that probability; 20% of the rest are delayed by up
to 1.5 packet durations (reordering; past the 200 ms reorder timeout their frames count as lost and they
arrive late) and 10% are sent twice. The final
transcripts are scored against the reference texts (WER) and against the lossless transcripts. Accounting is
checked on every run: accepted + duplicate + late + closed (after the stream's end) + context (short packets
held for a full packet that never came, with --full-every > 1) = sent, and frames received + lost = frames of the audio.
Writes reports/serve_loss.json and reports/serve_loss.png.

    python bench/serve_loss.py --data data/speech90 --rates 0,0.05,0.1,0.2,0.3
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.sender import stream_packets
from acom.runtime.server import ServeConfig, Server
from acom.runtime.wire import Packet, codebook_id, pack_codes
from acom.runtime.wire_v2 import encode_v2
from acom.training.metrics import wer_cer

ROOT = Path(__file__).resolve().parents[1]


def v2_stream_packets(codes: np.ndarray, sizes: list[int], book: int, *, device_id: int, stream_id: int,
                      frames_per_packet: int, full_every: int) -> list[bytes]:
    """The packets a version 2 device sends for codes [n_q, T]: full first, one in ``full_every`` and last."""
    starts = list(range(0, codes.shape[1], frames_per_packet)) or [0]
    out = []
    for i, s in enumerate(starts):
        part = codes[:, s: s + frames_per_packet]
        p = Packet(device_id, stream_id, i, s, book, codes.shape[0], part.shape[1], pack_codes(part, sizes),
                   end_of_stream=i == len(starts) - 1, version=2)
        out.append(encode_v2(p, compact=i % full_every != 0 and i != len(starts) - 1))
    return out


def impaired(packets: list[bytes], loss: float, pace: float, rng: random.Random) -> tuple[list, set[int]]:
    """((send time s, packet) list, indices dropped). Packet i is due at (i + 1) * pace (when its audio is
    captured); each is lost with probability ``loss`` (never the end packet), 20% are delayed by up to 1.5
    packet durations (so they overtake or are overtaken: reordering) and 10% are sent twice (the copy up to
    one packet duration later)."""
    dropped = {i for i in range(len(packets) - 1) if rng.random() < loss}
    out = []
    for i, p in enumerate(packets):
        if i in dropped:
            continue
        due = (i + 1) * pace + (rng.uniform(0, 1.5 * pace) if rng.random() < 0.2 else 0.0)
        out.append((due, p))
        if rng.random() < 0.1:
            out.append((due + rng.uniform(0, pace), p))
    return out, dropped


async def serve_streams(bundle, plan: list[tuple[float, bytes]]) -> tuple[dict, dict, int]:
    """Send ``plan`` (send time, packet) on schedule to a fresh server; (finals, summary, streams)."""
    out = io.StringIO()
    server = Server(bundle, out, ServeConfig())
    addr = (await server.start(("127.0.0.1", 0)))["udp"]
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for due, packet in sorted(plan, key=lambda x: x[0]):
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            s.sendto(packet, tuple(addr))
    for _ in range(600):
        await asyncio.sleep(0.05)
        if not server.streams.streams and not server.pending:
            break
    summary = await server.shutdown()
    finals = {r["stream"]: r for r in (json.loads(x) for x in out.getvalue().splitlines()) if r["type"] == "final"}
    return finals, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="speech set (default data/speech90, else data/speech)")
    ap.add_argument("--rates", default="0,0.05,0.1,0.2,0.3", help="loss rates to try")
    ap.add_argument("--items", type=int, default=0, help="test-clean utterances (0: all)")
    ap.add_argument("--n-q", type=int, default=1)
    ap.add_argument("--packet-frames", type=int, default=5, help="frames per packet (5 = 200 ms)")
    ap.add_argument("--full-every", type=int, default=1, help="one full packet in N (and the last), the rest "
                    "short (1: all full; the server holds short packets that arrive before a full one)")
    ap.add_argument("--wire", type=int, default=3, choices=[2, 3], help="wire format version the devices send "
                    "(2: full and compact packets, which servers still read; for a comparison on the same codes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "serve_loss.json")
    args = ap.parse_args(argv)
    data = args.data or next((ROOT / d for d in ("data/speech90", "data/speech") if (ROOT / d).is_dir()), None)
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt", "asr")
    ds = open_dataset("asr", data, TASKS["asr"].test_subset)
    items = [ds[i] for i in range(min(args.items or len(ds), len(ds)))]
    with torch.inference_mode():
        codes = [split.edge(args.n_q)(torch.from_numpy(w)[None])[0].numpy() for w, _ in items]
    refs = [u.transcript for _, u in items]
    rows, clean = [], None
    with tempfile.TemporaryDirectory() as tmp:
        write_server_bundle(PRETRAINED / "asr" / "split.pt", Path(tmp) / "b", n_q=args.n_q)
        bundle = open_bundle(Path(tmp) / "b")
        book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
        for rate in [float(x) for x in args.rates.split(",")]:
            rng = random.Random(args.seed)
            plan, lost_frames = [], 0
            for i, c in enumerate(codes):
                send = stream_packets if args.wire == 3 else v2_stream_packets
                pk = send(c, sizes, book, device_id=1, stream_id=i, frames_per_packet=args.packet_frames,
                          full_every=args.full_every)
                wire, dropped = impaired(pk, rate, args.packet_frames / bundle.frame_rate, rng)
                phase = rng.uniform(0, 1.0)  # devices do not start in step
                plan += [(t + phase, p) for t, p in wire]
                lost_frames += sum(min(args.packet_frames, c.shape[1] - args.packet_frames * j) for j in dropped)
            finals, summary = asyncio.run(serve_streams(bundle, plan))
            hyps = [finals[i]["text"] if i in finals else "" for i in range(len(codes))]
            clean = hyps if clean is None else clean
            p = summary["packets"]
            sent = len(plan)
            row = {"loss": rate, "wer": wer_cer(refs, hyps)["wer"], "wer_vs_lossless": wer_cer(clean, hyps)["wer"],
                   "packets_sent": sent, "bytes_sent": sum(len(p) for _, p in plan),
                   "accepted": p.get("accepted", 0), "duplicate": p.get("duplicate", 0),
                   "late": p.get("late", 0), "closed": p.get("closed", 0), "context": p.get("context", 0),
                   "frames_lost_sent": lost_frames,
                   "frames_lost_server": summary["frames"].get("lost", 0), "finals": len(finals)}
            row["accounting_ok"] = (row["accepted"] + row["duplicate"] + row["late"] + row["closed"] + row["context"]
                                    == sent
                                    and row["frames_lost_server"] >= lost_frames and len(finals) == len(codes))
            row["frames_given_up_late"] = row["frames_lost_server"] - lost_frames  # delayed past the reorder timeout
            rows.append(row)
            print(f"loss {rate:.0%}: WER {row['wer']:.1%} (vs lossless {row['wer_vs_lossless']:.1%}), "
                  f"accepted {row['accepted']}/{sent}, lost frames {row['frames_lost_server']}, "
                  f"accounting {'ok' if row['accounting_ok'] else 'WRONG'}")
    report = {"data": str(data), "subset": TASKS["asr"].test_subset, "items": len(codes), "n_q": args.n_q,
              "packet_frames": args.packet_frames, "full_every": args.full_every, "wire_version": args.wire,
              "duplicates": 0.1,
              "reorder": "20% delayed by up to 1.5 packet durations",
              "lost_frames_enter_tail_as": "zero feature vectors", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0 if all(r["accounting_ok"] for r in rows) else 1


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = np.array([r["loss"] for r in rows]) * 100
    ax.plot(x, [r["wer"] * 100 for r in rows], "o-", label="WER vs reference")
    ax.plot(x, [r["wer_vs_lossless"] * 100 for r in rows], "s--", label="WER vs lossless transcript")
    ax.set_xlabel("packet loss (%)  (+10% duplicates, reordering)")
    ax.set_ylabel("WER (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
