"""How much would a code model with more context save? Ideal bits of split models' codes under n-gram models.

The range coder codes each stage's codes with a Witten-Bell bigram of the train set's codes
(``acom.codes.priors``); the wire codes every 1 s packet on its own (a lost packet loses nothing else), so the
first code of a packet has no context. This measures, on the same codes, -log2 p per code frame under order 0,
the shipped bigram and Witten-Bell trigram and 4-gram models (each interpolated down to order 0), for whole
utterances and for 1 s packets, and the bit/s that follows. No model is changed; the C coder implements only
the bigram. The models are demonstrations trained on synthetic speech.

    python bench/code_context.py --runs runs/asr360-p2k64e30-s0 runs/asr360-p2k64e30-s1 --data data/speech360 \
        --out reports/code_context.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))
from acom.core.checkpoint import load_checkpoint  # noqa: E402
from acom.corpora.featcache import cached_features  # noqa: E402
from acom.training.evaluate import infer  # noqa: E402


class WittenBell:
    """Witten-Bell n-gram of one stage's codes, interpolated down to order 0 with add-0.5 smoothing."""

    def __init__(self, seqs: list[np.ndarray], k: int, order: int) -> None:
        self.k, self.order = k, order
        uni = np.bincount(np.concatenate(seqs), minlength=k) + 0.5
        self.p0 = uni / uni.sum()
        self.next: list[dict] = [defaultdict(Counter) for _ in range(order)]  # context length n -> counts
        for s in seqs:
            s = s.tolist()
            for t in range(len(s)):
                for n in range(1, order):
                    if t >= n:
                        self.next[n][tuple(s[t - n:t])][s[t]] += 1

    def bits(self, s: np.ndarray) -> float:
        """-log2 p of the codes s [T], each given up to order - 1 earlier codes of s."""
        s, total = s.tolist(), 0.0
        for t, c in enumerate(s):
            p = self.p0[c]
            for n in range(1, min(t, self.order - 1) + 1):
                seen = self.next[n].get(tuple(s[t - n:t]))
                if seen:
                    types, count = len(seen), sum(seen.values())
                    p = (seen.get(c, 0) + types * p) / (count + types)
            total -= np.log2(p)
        return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders with split.pt")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--sets", nargs="+", default=["dev", "test-clean"])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "code_context.json")
    ns = ap.parse_args(argv)
    report = {"what": __doc__.splitlines()[0], "command": "python bench/code_context.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "runs": {}}
    for run in ns.runs:
        split, _ = load_checkpoint(run / "split.pt", "asr")
        n_mels, rate = split.model.frontend.cfg.n_mels, split.frame_rate
        per_packet = max(1, round(rate))  # code frames in a 1 s packet
        train = [c[0] for c in infer(split, cached_features("asr", "train", n_mels, root=ns.data))[1]]
        k = split.rvq.config.codebook_sizes[0]
        models = {f"order {n}": WittenBell(train, k, n) for n in (1, 2, 3, 4)}
        row = {"frame_rate": rate, "codebook": k, "sets": {}}
        for name in ns.sets:
            codes = [c[0] for c in infer(split, cached_features("asr", name, n_mels, root=ns.data))[1]]
            frames = sum(len(c) for c in codes)
            packets = [c[i:i + per_packet] for c in codes for i in range(0, len(c), per_packet)]
            row["sets"][name] = {m: {"utterance_bps": round(sum(model.bits(c) for c in codes) / frames * rate, 2),
                                     "packet_bps": round(sum(model.bits(p) for p in packets) / frames * rate, 2)}
                                 for m, model in models.items()}
            print(run.name, name, json.dumps(row["sets"][name]), flush=True)
        report["runs"][run.name] = row
    ns.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
