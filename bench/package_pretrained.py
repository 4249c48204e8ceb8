"""Package a finished training run as a shipped default model: core/pretrained/<task>/.

Copies full.pt and split.pt without optimizer state, records the command, seed and data that produced
them, and the metrics they reach on the regenerated test set (tests/training/test_pretrained.py checks
that the shipped files reproduce these numbers).

    python bench/package_pretrained.py --task ac --run runs/ac --data data/urban200 \
        --data-command "acom data synth-urban --out data/urban200 --clips-per-class 200 --seed 0"
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from acom.core.checkpoint import load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import cached_features
from acom.training.train_cli import evaluate_checkpoint

DEST = Path(__file__).resolve().parents[1] / "training" / "pretrained"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("asr", "ac"), required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--data-command", required=True, help="the command that generated --data")
    ns = p.parse_args()
    out = DEST / ns.task
    out.mkdir(parents=True, exist_ok=True)
    for name in ("full.pt", "split.pt"):
        payload = torch.load(ns.run / name, map_location="cpu", weights_only=True)
        for key in ("optimizer", "scheduler"):
            payload.pop(key, None)
        torch.save(payload, out / name)
    shutil.copy(ns.run / "command.json", out / "command.json")
    subset = TASKS[ns.task].test_subset
    record = {"data_command": ns.data_command, "test_subset": subset, "results": {}}
    for name in ("full.pt", "split.pt"):
        split, payload = load_checkpoint(out / name, ns.task)
        fs = cached_features(ns.task, subset, split.model.frontend.cfg.n_mels, root=ns.data)
        rows = evaluate_checkpoint(split, payload, fs)
        record["results"][name] = [{k: v for k, v in r.items() if k != "examples"} for r in rows]
        record["items"] = len(fs)
    (out / "metrics.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
