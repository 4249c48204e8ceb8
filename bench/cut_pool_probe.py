"""Research probe: speech with fewer code frames at the cut (pooled before the quantizer, repeated after it).

Not a recipe, and nothing it trains can be exported or served: the streaming tail does not repeat frames yet
(docs/training.md, "Half the bits"). It measures whether it is worth building: from an uncut ASR checkpoint,
stage 2 with the cut's features average-pooled by ``--pool`` in time before a one-stage RVQ of ``--codebook``
entries and each decoded frame repeated ``--pool`` times before the server's blocks; then greedy WER on dev and
test-clean beside the uncut model's, and the range-coded rate of the codes (bigram priors from the train set's
codes, as `acom train` stores). Writes reports/asr_cut_pool_probe.json (one entry per setting).

    python bench/cut_pool_probe.py --data data/speech90 --pool 2 --codebook 64 --epochs 12
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from reportfile import merge_entry

from acom.codes.priors import CodePriors
from acom.core.blocks import TimePool
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.split import SplitModel, SplitOutput, make_rvq
from acom.corpora.featcache import cached_features
from acom.training.evaluate import infer, rate_fields, score
from acom.training.recipes import RECIPES
from acom.training.train import TrainConfig, fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]


class PooledCut(SplitModel):
    """A SplitModel whose cut runs at 1/pool of the model's frame rate: features [B, D, T] are averaged over
    ``pool`` frames (the last group padded by repetition) before the RVQ, decoded frames repeated after it."""

    def __init__(self, model, split_layer: int, rvq, pool: int) -> None:
        super().__init__(model, split_layer, rvq)
        self.pool = pool
        self._pooled = TimePool(model.cut_dim(split_layer), pool)  # the classifier's pooling block

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate_at(self.split_layer) / self.pool

    def cut_features(self, feats, lengths=None):
        x, lengths = super().cut_features(feats, lengths)
        return self._pooled(x), None if lengths is None else (lengths + self.pool - 1) // self.pool

    def forward(self, feats, lengths=None, n_q=None) -> SplitOutput:
        x, full_lengths = super().cut_features(feats, lengths)
        steps = x.shape[-1]
        quant = self.rvq(self._pooled(x), n_q)
        y = quant.x.repeat_interleave(self.pool, dim=-1)[..., :steps]
        y, out_lengths = self.model.run_blocks(y, full_lengths, self.split_layer + 1, len(self.model.blocks))
        cut_lengths = None if full_lengths is None else (full_lengths + self.pool - 1) // self.pool
        return SplitOutput(self.model.head_forward(y, out_lengths), out_lengths, quant, cut_lengths)


def greedy_wer(split, fs) -> float:
    outputs, _ = infer(split, fs)
    return round(score("asr", outputs, fs.targets)["wer"], 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "speech90")
    ap.add_argument("--checkpoint", type=Path, default=PRETRAINED / "asr" / "full.pt", help="uncut ASR checkpoint")
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--codebook", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--distill", type=float, default=0.0, help="weight of the KL divergence from the uncut model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "asr_cut_pool_probe.json")
    args = ap.parse_args(argv)
    seed_everything(args.seed)
    full, _ = load_checkpoint(args.checkpoint, "asr")
    recipe = RECIPES["edge-asr"]
    n_mels = full.model.frontend.cfg.n_mels
    sets = {name: cached_features("asr", name, n_mels, root=args.data) for name in ("train", "dev", "test-clean")}
    uncut = {name: greedy_wer(full, sets[name]) for name in ("dev", "test-clean")}
    model = copy.deepcopy(full.model)
    rvq = make_rvq(model, recipe.split_layer, (args.codebook,), **recipe.rvq)
    split = PooledCut(model, recipe.split_layer, rvq, args.pool).eval()
    rows, have = [], 0
    with torch.no_grad():  # the codebook starts from real pooled features, as insert_quantizer does
        for i in np.random.default_rng(args.seed).permutation(len(sets["train"])):
            x, _ = split.cut_features(sets["train"].feats[i].float()[None])
            rows.append(x[0].T)
            have += x.shape[-1]
            if have >= 60000 // args.pool:
                break
    rvq.init_from_data(torch.cat(rows), seed=args.seed)
    cfg = TrainConfig(epochs=args.epochs, lr=recipe.lr / 2, seed=args.seed, eval_every=args.epochs,
                      distill=args.distill)
    with tempfile.TemporaryDirectory() as tmp:  # fit's checkpoints cannot be loaded as a PooledCut: not kept
        fit(split, sets["train"], sets["dev"], cfg, Path(tmp), "split", {}, teacher=full if args.distill else None)
    _, train_codes = infer(split, sets["train"])
    priors = CodePriors.estimate(train_codes, (args.codebook,))
    entry = {"checkpoint": str(args.checkpoint), "data": str(args.data), "pool": args.pool,
             "codebook": args.codebook, "epochs": args.epochs, "distill": args.distill, "seed": args.seed,
             "frame_rate": split.frame_rate, "uncut_wer_greedy": uncut, "sets": {}}
    for name in ("dev", "test-clean"):
        outputs, codes = infer(split, sets[name])
        wer = round(score("asr", outputs, sets[name].targets)["wer"], 4)
        rate = rate_fields(split, 1, codes, priors)
        entry["sets"][name] = {"wer_greedy": wer, "wer_over_uncut": round(wer / uncut[name], 3),
                               "entropy_bps": rate["entropy_bps"], "nominal_bps": rate["nominal_bps"]}
    print(entry)
    name = f"pool{args.pool}-k{args.codebook}-e{args.epochs}" + (f"-d{args.distill:g}" if args.distill else "")
    merge_entry(args.out, f"{name}-s{args.seed}", entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
