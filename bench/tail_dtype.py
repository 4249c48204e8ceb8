"""Benchmark: what bfloat16 does to the slot engine's transcripts, on CUDA when present, else CPU.

The shipped ASR model's edge half turns the test-clean features into codes (one stage, as
bench/tail_throughput.py serves); every utterance then streams through ``SlotAsrEngine`` in 1 s packets,
all streams in each step, once with the tail's blocks in float32 and once in bfloat16. Reports WER and CER
of each against the references, and the CER of the bfloat16 transcripts against the float32 ones (how much
the number format alone changes). Writes reports/tail_dtype.json (one entry per device).

    python bench/tail_dtype.py --data data/speech90                 # features computed and cached there
    python bench/tail_dtype.py --features data/speech90/features    # a machine without the audio (a GPU lease)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import jiwer
import numpy as np
import torch
from reportfile import merge_entry

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.corpora.featcache import cached_features
from acom.export.bundle import write_server_bundle
from acom.runtime.bundle import open_bundle
from acom.runtime.engine import Work
from acom.runtime.slot_engine import DTYPES, SlotAsrEngine
from acom.runtime.streams import Chunk

ROOT = Path(__file__).resolve().parents[1]


@torch.inference_mode()
def edge_codes(split, feats: list[torch.Tensor], n_q: int) -> list[np.ndarray]:
    """Codes [n_q, T_cut] per utterance from log-mels [n_mels, T] through the float edge half."""
    return [split.rvq.encode(split.cut_features(f[None].float())[0], n_q)[0].numpy() for f in feats]


def transcribe(engine: SlotAsrEngine, codes: list[np.ndarray], fpp: int) -> list[str]:
    """Every utterance as one stream of fpp-frame packets, all streams in each step; final transcripts."""
    texts, pos = [""] * len(codes), [0] * len(codes)
    while any(p < c.shape[1] for p, c in zip(pos, codes)):
        work = {}
        for i, c in enumerate(codes):
            if pos[i] < c.shape[1]:
                piece = c[:, pos[i]: pos[i] + fpp]
                work[(0, i)] = Work([Chunk(pos[i], piece.shape[1], piece, (0, 0), 0.0)], pos[i] + fpp >= c.shape[1])
                pos[i] += fpp
        for r in engine.step(work):
            texts[r.key[1]] = r.text
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="the speech set (features computed from it and cached)")
    ap.add_argument("--features", type=Path, help="feature cache folder (default: the one acom eval uses)")
    ap.add_argument("--n-q", type=int, default=1, help="stages sent (default 1, as the throughput bench)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "tail_dtype.json")
    args = ap.parse_args(argv)
    if args.data is None and args.features is None:
        ap.error("give --data or --features")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt")
    fs = cached_features("asr", "test-clean", split.model.frontend.cfg.n_mels, root=args.data, cache=args.features,
                         progress=False)
    codes = edge_codes(split.eval(), fs.feats, args.n_q)
    with tempfile.TemporaryDirectory() as tmp:
        write_server_bundle(PRETRAINED / "asr" / "split.pt", Path(tmp) / "b", n_q=args.n_q)
        bundle = open_bundle(Path(tmp) / "b")
    fpp = round(bundle.frame_rate)
    got = {d: transcribe(SlotAsrEngine(bundle, device, dtype=d), codes, fpp) for d in DTYPES}
    refs = fs.targets
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    report = {"device": name, "test_set": "test-clean", "utterances": len(refs), "n_q": args.n_q,
              "dtypes": {d: {"wer": round(jiwer.wer(refs, t), 4), "cer": round(jiwer.cer(refs, t), 4)}
                         for d, t in got.items()},
              "bfloat16_vs_float32_cer": round(jiwer.cer(got["float32"], got["bfloat16"]), 4),
              "utterances_changed": sum(a != b for a, b in zip(got["float32"], got["bfloat16"]))}
    merge_entry(args.out, "cuda" if device == "cuda" else "cpu", report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
