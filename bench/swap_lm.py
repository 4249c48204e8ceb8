"""Copy ASR run folders with another data set's word LM in split.pt (to part the LM's gain from the acoustic
model's): the LM is trained as `acom train` does (word trigram of the train transcripts), from that data set's
train feature file; weights, priors and logs are copied as they are. Then run `acom bench rate-accuracy` on the
copies.

    python bench/swap_lm.py --features data/speech360/features runs/asr-k512-s0 runs/asr-k512-s1
    # -> runs/asr-k512-s0-lm360, runs/asr-k512-s1-lm360 (--suffix)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from acom.corpora.featcache import FeatureSet, feature_path
from acom.training.decoding import WordNgramLM


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding split.pt (ASR)")
    ap.add_argument("--features", type=Path, required=True, help="feature folder whose train transcripts make the LM")
    ap.add_argument("--n-mels", type=int, default=40)
    ap.add_argument("--suffix", default="-lm360", help="the copies are RUN + this")
    args = ap.parse_args(argv)
    train = FeatureSet.load(feature_path(args.features, "asr", "train", args.n_mels))
    lm = json.dumps(WordNgramLM.train(train.targets, order=3).to_dict())
    print(f"word LM of {len(train.targets)} train transcripts ({args.features})")
    for run in args.runs:
        payload = torch.load(run / "split.pt", map_location="cpu", weights_only=True)
        if "lm" not in payload:
            raise SystemExit(f"{run / 'split.pt'}: no field 'lm' (not an ASR stage-2 checkpoint)")
        out = run.with_name(run.name + args.suffix)
        out.mkdir(exist_ok=True)
        torch.save({**payload, "lm": lm}, out / "split.pt")
        for name in ("full.pt", "command.json", "log.jsonl"):
            if (run / name).is_file():
                shutil.copy(run / name, out / name)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
