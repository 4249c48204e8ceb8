"""Benchmark: the device's range coder in C (firmware_host/c/acom_range.c) on real codes (the entropy-coded
payloads, sent by a device).

The test set's codes (the model's float edge half, n_q = 1) are cut into packets of ``--seconds`` of audio, as
``acom send`` cuts them, and every packet's payload is range-coded by the C built for this machine and for the
rpi4 (static aarch64 under ``qemu-aarch64``): the share of payloads byte-equal to Python's ``encode_codes``, and
the rates: bit-packed, range-coded per packet (what a device sends), and range-coded per utterance (the figure
the rate-accuracy reports give). Also the coder's size for a Cortex-M4 (.text at -O2 and -Os; the soft-float
double routines it calls come from libgcc on top). Writes reports/range_c.json, one entry per model.

    python bench/range_c.py                                  # the shipped ASR and sound-class models
    python bench/range_c.py --model asr360-k512:runs/asr360-k512e16-s0/split.pt:data/speech360
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from reportfile import merge_entry

from acom.codes.budget import nominal_bps
from acom.codes.priors import CodePriors, entropy_bps
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.firmware_host.cbuild import C_DIR
from acom.firmware_host.wire_c import entropy_record, run_encoder
from acom.runtime.wire import make_payload

ROOT = Path(__file__).resolve().parents[1]


def coder_size_cortex_m4(work: Path) -> dict:
    """.text bytes of acom_range.c for a Cortex-M4 at -O2 and -Os (arm-none-eabi-gcc, as cbuild flags it)."""
    out = {}
    for opt in ("-O2", "-Os"):
        obj = work / f"acom_range{opt}.o"
        subprocess.run(["arm-none-eabi-gcc", "-std=c99", opt, "-ffp-contract=off", "-mcpu=cortex-m4", "-mthumb",
                        "-c", str(C_DIR / "acom_range.c"), "-o", str(obj)], check=True)
        size = subprocess.run(["arm-none-eabi-size", str(obj)], check=True, capture_output=True, text=True)
        out[opt] = int(size.stdout.splitlines()[1].split()[0])
    return out


def model_codes(task: str, checkpoint: Path, data: Path, items: int) -> tuple[list[np.ndarray], CodePriors, float]:
    """The test items' codes [1, T], the checkpoint's priors and its frame rate."""
    split, payload = load_checkpoint(checkpoint, task)
    ds = open_dataset(task, data, TASKS[task].test_subset)
    with torch.inference_mode():
        codes = [split.edge(1)(torch.from_numpy(ds[i][0])[None])[0].numpy()
                 for i in range(min(items or len(ds), len(ds)))]
    return codes, CodePriors.from_tensors(payload["priors"]), float(split.frame_rate)


def measure(name: str, task: str, checkpoint: Path, data: Path, items: int, seconds: float) -> dict:
    codes, priors, rate = model_codes(task, checkpoint, data, items)
    sizes = list(priors.codebook_sizes)
    fpp = max(1, round(seconds * rate))
    pieces = [c[:, s: s + fpp] for c in codes for s in range(0, c.shape[1], fpp)]
    want = [make_payload(p, sizes, priors)[0] for p in pieces]
    records = b"".join(entropy_record(p, priors) for p in pieces)
    equal = {}
    for board in ("host", "rpi4"):
        got = run_encoder(board, records, timeout=600)
        equal[board] = sum(g == f"E {len(w)} {w.hex()}" for g, w in zip(got, want)) / len(want)
    audio_s = sum(c.shape[1] for c in codes) / rate
    packed = sum(len(make_payload(p, sizes)[0]) for p in pieces)
    row = {"model": name, "task": task, "checkpoint": str(checkpoint), "data": str(data), "items": len(codes),
           "codebook_sizes": sizes[:1], "seconds_per_packet": seconds, "packets": len(pieces),
           "c_payloads_equal_python": equal, "nominal_bps": round(nominal_bps(rate, sizes[:1]), 1),
           "bit_packed_bps": round(8 * packed / audio_s, 1),
           "range_coded_per_packet_bps": round(8 * sum(map(len, want)) / audio_s, 1),
           "range_coded_per_utterance_bps": round(entropy_bps(codes, priors, rate)["bps"], 1),
           # the device's tables for stage 0 (acom_prior): 3 doubles and an index a code, 6 bytes a bigram
           "prior_table_bytes": 28 * sizes[0] + 4 + 6 * int(priors.stages[0].bigram_count.size)}
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="NAME:CHECKPOINT:DATA",
                    help="an ASR split checkpoint and its data set (repeat); default: the shipped ASR and sound-class "
                    "models on data/speech90 (or data/speech) and data/urban")
    ap.add_argument("--items", type=int, default=40, help="test items per model (0: all)")
    ap.add_argument("--seconds", type=float, default=1.0, help="audio per packet (default 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "range_c.json")
    args = ap.parse_args(argv)
    models = []
    for spec in args.model:
        try:
            name, ckpt, data = spec.split(":")
        except ValueError:
            raise SystemExit(f"--model {spec}: expected NAME:CHECKPOINT:DATA") from None
        models.append((name, "asr", Path(ckpt), Path(data)))
    if not models:
        speech = next((ROOT / d for d in ("data/speech90", "data/speech") if (ROOT / d).is_dir()), None)
        urban = ROOT / "data" / "urban"
        if speech is None or not urban.is_dir():
            raise SystemExit("no data/speech90 (or data/speech) and data/urban: `make demo` generates them")
        models = [("shipped-asr", "asr", PRETRAINED / "asr" / "split.pt", speech),
                  ("shipped-ac", "ac", PRETRAINED / "ac" / "split.pt", urban)]
    with tempfile.TemporaryDirectory() as tmp:
        size = coder_size_cortex_m4(Path(tmp))
    for name, task, ckpt, data in models:
        if not ckpt.exists() or not data.is_dir():
            raise SystemExit(f"{name}: {ckpt} or {data} missing")
        merge_entry(args.out, name, {**measure(name, task, ckpt, data, args.items, args.seconds),
                                     "coder_text_bytes_cortex_m4": size})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
