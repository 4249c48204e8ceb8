"""Cut points set against an uncut model trained as long: each cut's WER per seed, taken from the
`acom bench rate-accuracy` report that scored it, divided by the WER of the control report's uncut model of the
same seed (`acom train --init UNCUT.pt --epochs N --split-epochs 0`: the cut's epochs in all, no cut), and
beside it the ratio against the 20-epoch uncut model the cut's own report holds. Ratios of means over the
seeds given, as `acom bench rate-accuracy` computes them. With --log, the same at each evaluated stage-2 epoch
from the training logs; a stage 2 stopped before its end (no report) is compared by its logs alone (--own-log).

    python bench/control_ratios.py --control reports/asr-360-control/asr_rate_accuracy.json \
        --label "12.5 x 64, pooled stage 1, 40 stage-2 epochs" \
        --cut reports/asr-360-control-s0/asr_rate_accuracy.json:0:64 \
        --cut reports/asr-360-pool-stage1/asr_rate_accuracy.json:1:64 --out reports/asr-360-control/ratios.json
    python bench/control_ratios.py --label LABEL --own-log runs/UNCUT/log.jsonl \
        --log runs/CUT/log.jsonl:runs/CONTROL/log.jsonl --out reports/asr-360-control/ratios.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reportfile import merge_entry  # noqa: E402


def _per_seed(rows: list[dict], seed: int, test_set: str, decoder: str, codebook: int | None) -> tuple[float, dict]:
    """(WER of `seed`, the row) among a report's rows of one set and decoder (and first codebook size)."""
    for r in rows:
        if r.get("bench") == "codecs":  # rows `acom bench codecs` added: a codec pipeline, not a cut
            continue
        if r["test_set"] == test_set and r["decoder"] == decoder and r.get("snr_db") is None and (
                codebook is None or r["codebook_sizes"][0] == codebook) and seed in r["seeds"]:
            return r["wer_per_seed"][r["seeds"].index(seed)], r
    raise LookupError(f"no row for seed {seed}, {test_set}, {decoder}, first codebook {codebook}")


def ratios(control: dict, cuts: list[tuple[dict, int, int]], sets: list[str] | None = None) -> list[dict]:
    """One row per set (of `sets`, default all) and decoder: mean cut WER over the seeds, against the control's
    and the own reference's."""
    out = []
    for full in control["full_model"]:
        ts, dec = full["test_set"], full["decoder"]
        if sets and ts not in sets:
            continue
        cut, ctl, own, bps = [], [], [], []
        for report, seed, k in cuts:
            wer, row = _per_seed(report["points"], seed, ts, dec, k)
            cut.append(wer)
            bps.append(row["entropy_bps"])
            own.append(_per_seed(report["full_model"], seed, ts, dec, None)[0])
            ctl.append(_per_seed(control["full_model"], seed, ts, dec, None)[0])
        mean = statistics.fmean
        out.append({"test_set": ts, "decoder": dec, "seeds": [s for _, s, _ in cuts], "cut_wer_per_seed": cut,
                    "control_wer_per_seed": ctl, "own_reference_wer_per_seed": own,
                    "entropy_bps": round(mean(bps), 2), "ratio_to_control": round(mean(cut) / mean(ctl), 3),
                    "ratio_to_own_reference": round(mean(cut) / mean(own), 3)})
    return out


def _dev_wer_by_epoch(log: Path) -> dict[int, float]:
    """{epoch: dev WER} of an `acom train` log.jsonl (the rows of evaluated epochs)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {r["epoch"]: r["dev_wer"] for r in rows if "dev_wer" in r}


def _last_dev_wer(log: Path) -> float:
    """Dev WER at the last evaluated epoch of an `acom train` log.jsonl."""
    wer = _dev_wer_by_epoch(log)
    if not wer:
        raise ValueError(f"{log}: no epoch with a dev WER")
    return wer[max(wer)]


def by_epoch(own: list[float], logs: list[tuple[Path, Path]]) -> list[dict]:
    """Dev WER (greedy: what the training log scores) of the cuts during stage 2 against their controls at the
    same added epoch and against their own 20-epoch references (`own`: their dev WER, one per seed), mean over
    the seeds, at each epoch both logs evaluated."""
    cut_logs = [_dev_wer_by_epoch(c) for c, _ in logs]
    ctl_logs = [_dev_wer_by_epoch(k) for _, k in logs]
    epochs = sorted(set.intersection(*(set(x) for x in cut_logs + ctl_logs)))
    out = []
    for e in epochs:
        cut = statistics.fmean(c[e] for c in cut_logs)
        out.append({"epoch": e, "cut_dev_wer": round(cut, 4),
                    "ratio_to_control": round(cut / statistics.fmean(k[e] for k in ctl_logs), 3),
                    "ratio_to_own_reference": round(cut / statistics.fmean(own), 3)})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--control", type=Path, help="rate-accuracy report whose uncut rows are the control (with --cut)")
    p.add_argument("--cut", action="append", default=[], metavar="REPORT:SEED:K",
                   help="a report, the seed and the first codebook size of one cut (once per seed)")
    p.add_argument("--own-log", action="append", default=[], metavar="UNCUT_LOG",
                   help="instead of --cut, for a stage 2 still running or stopped: the stage-1 log.jsonl of each "
                   "cut's 20-epoch uncut model (its last dev WER is the own reference); only by_epoch is written")
    p.add_argument("--label", required=True)
    p.add_argument("--sets", help="comma-separated sets to compare (default: all the control's), e.g. dev where a "
                   "cut was scored on another generation of a test set than the control")
    p.add_argument("--log", action="append", default=[], metavar="CUT_LOG:CONTROL_LOG",
                   help="the stage-2 log.jsonl of a cut and its control's, once per --cut in the same order: adds "
                   "the dev WER ratios at each epoch both evaluated (by_epoch)")
    p.add_argument("--out", type=Path, required=True)
    ns = p.parse_args()
    try:
        if bool(ns.cut) == bool(ns.own_log) or bool(ns.cut) != bool(ns.control):
            raise ValueError("give --control with --cut (scored cuts), or --own-log with --log (a stage 2 known by "
                             "its log only)")
        cuts = []
        for spec in ns.cut:
            path, seed, k = spec.rsplit(":", 2)
            cuts.append((json.loads(Path(path).read_text()), int(seed), int(k)))
        sets = ns.sets.split(",") if ns.sets else None
        rows = ratios(json.loads(ns.control.read_text()), cuts, sets) if cuts else []
        own = ([_per_seed(report["full_model"], seed, "dev", "greedy", None)[0] for report, seed, _ in cuts]
               or [_last_dev_wer(Path(x)) for x in ns.own_log])
        if (ns.log or ns.own_log) and len(ns.log) != len(own):
            raise ValueError(f"{len(ns.log)} --log for {len(own)} cuts: give one per cut, in the same order")
        epochs = by_epoch(own, [tuple(Path(x) for x in spec.split(":")) for spec in ns.log]) if ns.log else None
    except (OSError, ValueError, LookupError, KeyError) as e:  # a file missing or not JSON, a bad spec, no row
        logs = f", --log {' '.join(ns.log)}" if ns.log else ""
        print(f"control_ratios: {e} (--control {ns.control}, --cut {' '.join(ns.cut) or '-'}{logs})", file=sys.stderr)
        return 2
    entry = {"control": str(ns.control) if ns.control else None, "cuts": ns.cut, "sets": ns.sets, "rows": rows,
             **({"own_logs": ns.own_log} if ns.own_log else {})}
    merge_entry(ns.out, ns.label, {**entry, "logs": ns.log, "by_epoch": epochs} if epochs else entry)
    for r in rows:
        print(f"{r['test_set']:10} {r['decoder']:8} {r['entropy_bps']:6.1f} bit/s  against the control "
              f"{r['ratio_to_control']:.3f}x, against its own reference {r['ratio_to_own_reference']:.3f}x")
    for r in epochs or []:
        print(f"stage-2 epoch {r['epoch']:3}: dev {r['cut_dev_wer']:.4f}, against the control "
              f"{r['ratio_to_control']:.3f}x, against its own reference {r['ratio_to_own_reference']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
