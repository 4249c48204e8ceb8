"""How much the beam+LM weight grid moves a report: scores each run's uncut and split model with beam+LM at
every point of `comparisons.rate_accuracy.LM_GRID` (what `acom bench rate-accuracy` tries now) on dev, chooses
the weights on dev for each model from that grid and from the 3 x 3 grid the reports written before it used,
and gives dev and test-clean WER and the cut / uncut ratio under both, with whether each choice lies on its
grid's border.

    python bench/lm_grid.py --runs runs/asr360-pool2k64e40-s0 --data data/speech360 --label pool2k64e40-s0
    # -> reports/lm_grid.json, entry LABEL
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from acom.comparisons.rate_accuracy import BEAM_LM, LM_GRID
from acom.core.checkpoint import load_checkpoint, load_reference
from acom.corpora.featcache import cached_features
from acom.errors import AcomError
from acom.training.decoding import WordNgramLM
from acom.training.evaluate import infer, score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reportfile import merge_entry  # noqa: E402

# the grid of every report before reports/asr-360-pool-s0-probe/
OLD_GRID = [(a, b) for a in (0.3, 0.6, 1.0) for b in (0.0, 1.0, 2.5)]
SETS = ("dev", "test-clean")


def _wer(outputs: list, targets: list, lm: WordNgramLM, ab: tuple[float, float]) -> float:
    return score("asr", outputs, targets, lm, BEAM_LM.beam, alpha=ab[0], beta=ab[1])["wer"]


def _at_edge(grid: list, ab: tuple[float, float]) -> bool:
    """Whether `ab` lies on the border of `grid` (its lowest or highest alpha or beta)."""
    alphas, betas = {a for a, _ in grid}, {b for _, b in grid}
    return ab[0] in (min(alphas), max(alphas)) or ab[1] in (min(betas), max(betas))


def model_rows(outputs: dict, sets: dict, lm: WordNgramLM, progress: tqdm) -> dict:
    """Dev WER at every point of LM_GRID, then each grid's dev choice scored on every set."""
    dev = {}
    for ab in LM_GRID:
        dev[ab] = _wer(outputs["dev"], sets["dev"].targets, lm, ab)
        progress.update()
    out = {"dev_wer_grid": {f"{a},{b}": round(w, 4) for (a, b), w in dev.items()}}
    grids = {"old": OLD_GRID, "current": LM_GRID}
    chosen = {name: min(grid, key=lambda k: dev[k]) for name, grid in grids.items()}
    wer = {(s, ab): dev[ab] if s == "dev" else _wer(outputs[s], sets[s].targets, lm, ab)
           for ab in set(chosen.values()) for s in SETS}  # both grids often choose the same point: decode it once
    for name, ab in chosen.items():
        out[name] = {"alpha": ab[0], "beta": ab[1], "at_edge": _at_edge(grids[name], ab),
                     **{s: round(wer[s, ab], 4) for s in SETS}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="ASR run folders (full.pt + split.pt)")
    ap.add_argument("--data", type=Path, required=True, help="data set folder holding dev and test-clean")
    ap.add_argument("--label", required=True, help="entry name in the report")
    ap.add_argument("--out", type=Path, default=Path("reports/lm_grid.json"))
    args = ap.parse_args(argv)
    assert set(OLD_GRID) <= set(LM_GRID), "the current grid holds the old one, so both choices come from one pass"
    t0, rows = time.monotonic(), {}
    progress = tqdm(total=2 * len(args.runs) * len(LM_GRID), desc="beam+LM grid", unit="decode")
    for run in args.runs:
        full, _ = load_reference(run / "full.pt", "asr")
        split, payload = load_checkpoint(run / "split.pt", "asr")
        if "lm" not in payload:
            raise AcomError(f"{run / 'split.pt'}: no field 'lm' (not an ASR stage-2 checkpoint with its word LM)")
        lm = WordNgramLM.from_dict(json.loads(payload["lm"]))
        sets = {s: cached_features("asr", s, split.model.frontend.cfg.n_mels, root=args.data) for s in SETS}
        res = {}
        for key, model in (("uncut", full), ("cut", split)):
            outputs = {s: infer(model, sets[s])[0] for s in SETS}
            res[key] = model_rows(outputs, sets, lm, progress)
        res["ratio"] = {g: {s: round(res["cut"][g][s] / res["uncut"][g][s], 4) for s in SETS}
                        for g in ("old", "current")}
        rows[str(run)] = res
    progress.close()
    entry = {"runs": rows, "old_grid": [list(ab) for ab in OLD_GRID], "current_grid": [list(ab) for ab in LM_GRID],
             "beam": BEAM_LM.beam, "seconds": round(time.monotonic() - t0, 1),
             "note": "beam+LM WER with (alpha, beta) chosen on dev per model from each grid; ratio = cut / uncut"}
    merge_entry(args.out, args.label, entry)
    for run, res in rows.items():
        print(run, json.dumps(res["ratio"]), "uncut's choice:", res["uncut"]["current"])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AcomError as e:  # a run folder or data set that does not fit: say which, no traceback
        print(f"lm_grid: {e}", file=sys.stderr)
        sys.exit(2)
