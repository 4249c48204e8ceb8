"""`acom bench rate-accuracy --task asr|ac`: task metric against bit/s for the split model at each number of
quantizer stages, beside the uncut model, over one or more training runs (seeds). Runs that share an uncut
model (cut systems trained from one `--init` checkpoint) score it once. `--uncut` compares each run's cut with
another uncut checkpoint instead of the run's full.pt: a control trained as many epochs as the cut.

Writes reports/<task>_rate_accuracy.json (keys task, test_set, training_epochs, full_model, points, targets:
training_epochs gives each run's epochs of training in all, uncut and cut, from the checkpoints; with --uncut,
uncut_models names the checkpoints compared with) and a PNG plot
(bit/s on a log axis against the metric, the uncut model as a line). The targets are checked against the
numbers measured here and reported as met or missed, with the margin.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
from pathlib import Path

from acom.codes.priors import CodePriors
from acom.core.checkpoint import (
    PRETRAINED,
    load_checkpoint,
    load_reference,
    read_checkpoint,
    read_uncut,
    trained_epochs,
)
from acom.core.tasks import TASKS
from acom.corpora.featcache import cached_features
from acom.errors import AcomError
from acom.training.decoding import WordNgramLM
from acom.training.evaluate import infer, rate_fields, score

# LM weight alpha and word bonus beta tried on dev for each model. Dev WER lies in a diagonal valley (the best
# bonus grows with the weight, about 5-7 x alpha on the speech360 models), so the grid runs along both axes;
# `bench/lm_grid.py` measured that the earlier 3 x 3 grid (alpha 0.3 / 0.6 / 1.0, beta 0 / 1 / 2.5) held the
# uncut model's optimum at its corner.
LM_GRID = [(a, b) for a in (0.3, 0.45, 0.6, 0.8, 1.0, 1.25) for b in (0.0, 1.0, 2.5, 4.0, 5.5, 7.0, 8.5)]


@dataclasses.dataclass(frozen=True)
class Decoder:
    """How model outputs become a prediction: greedy/argmax (beam 0) or CTC beam search with the word LM."""

    name: str
    beam: int = 0
    lexicon: bool = False  # spell only the LM's training words (closed vocabulary)


BEAM_LM = Decoder("beam+lm", 16)
BEAM_LM_LEX = Decoder("beam+lm+lex", 64, True)  # beam 64: the lexicon wants a wider beam (decoding.py)


def _decoders(task: str, lexicon: bool = False) -> list[Decoder]:
    if not TASKS[task].sequence:
        return [Decoder("argmax")]
    return [Decoder("greedy"), BEAM_LM] + ([BEAM_LM_LEX] if lexicon else [])


def tune_lm_weights(outputs: list, targets: list, lm: WordNgramLM, dec: Decoder = BEAM_LM) -> tuple[float, float]:
    """LM weight and word bonus (alpha, beta) with the lowest WER on the given (dev) outputs."""
    return min(LM_GRID, key=lambda ab: score("asr", outputs, targets, lm, dec.beam, alpha=ab[0], beta=ab[1],
                                             lexicon=dec.lexicon)["wer"])


def run_points(run: Path, task: str, sets: dict, seed: int, lexicon: bool = False, uncut: bool = True,
               full_path: Path | None = None) -> tuple[list[dict], list[dict]]:
    """(uncut rows, split rows) of one run folder holding split.pt and the uncut model (full_path, default its
    full.pt); no uncut rows when `uncut` is False (another run already scored the same uncut model)."""
    full, _ = load_reference(full_path or run / "full.pt", task)
    split, payload = load_checkpoint(run / "split.pt", task)
    lm = WordNgramLM.from_dict(json.loads(payload["lm"])) if "lm" in payload else None
    priors = CodePriors.from_tensors(payload["priors"])
    ncls = getattr(split.model.config, "num_classes", 0)
    full_rows, points = [], []
    stages = range(1, split.rvq.config.n_q + 1)
    decoders = _decoders(task, lexicon)
    ab = lm_weights(lm, sets.get("dev"), full if uncut else None, stages, split, tuple(d for d in decoders if d.beam))

    def metric(outputs, fs, d: Decoder, key):
        w = ab[d][key] if d.beam else (0.5, 1.0)
        return {**_metric(score(task, outputs, fs.targets, lm, d.beam, ncls, alpha=w[0], beta=w[1],
                                lexicon=d.lexicon)),
                **({"lm_alpha": w[0], "lm_beta": w[1]} if d.beam and lm is not None else {})}

    for name, fs in sets.items():
        outputs, _ = infer(full, fs) if uncut else (None, None)
        for d in decoders if uncut else ():
            full_rows.append({"seed": seed, "test_set": name, "snr_db": None, "decoder": d.name,
                              **metric(outputs, fs, d, None)})
        for n_q in stages:
            outputs, codes = infer(split, fs, n_q)
            rate = rate_fields(split, n_q, codes, priors)
            for d in decoders:
                points.append({"system": "acom", "seed": seed, "test_set": name, "snr_db": None, "decoder": d.name,
                               "split_layer": split.split_layer, "frame_rate": split.frame_rate, **rate,
                               **metric(outputs, fs, d, n_q)})
    return full_rows, points


def lm_weights(lm: WordNgramLM | None, dev, full, stages, split, decs: tuple[Decoder, ...] = (BEAM_LM,)) -> dict:
    """{decoder: LM weights} chosen on dev for each model scored: the uncut model (key None) and the split model
    at each number of stages, as every codec pipeline's fine-tuned model gets its own (`acom bench codecs`).
    `full` None: the split model's only (the uncut one is scored elsewhere)."""
    if lm is None or dev is None:
        return {d: {k: (0.5, 1.0) for k in (None, *stages)} for d in decs}
    outputs = {n_q: infer(split, dev, n_q)[0] for n_q in stages}  # once for all decoders
    if full is not None:
        outputs[None] = infer(full, dev)[0]
    return {d: {k: tune_lm_weights(o, dev.targets, lm, d) for k, o in outputs.items()} for d in decs}


def uncut_key(run: Path, full_path: Path | None = None) -> str:
    """What makes a run's uncut rows: its uncut model (full_path, default its full.pt) and the word LM in its
    split.pt (the beam decoders' LM), as a SHA-256. Stage-2 runs started with `--init` copy the same full.pt, so
    several cut systems over one uncut model share a key and the report scores that model once."""
    h = hashlib.sha256((full_path or run / "full.pt").read_bytes())
    h.update(str(read_checkpoint(run / "split.pt").get("lm", "")).encode())
    return h.hexdigest()


def _metric(m: dict) -> dict:
    keys = ("wer", "cer") if "wer" in m else ("accuracy", "macro_f1")
    return {k: round(float(m[k]), 4) for k in keys}


def mean_over_seeds(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Rows averaged over seeds, grouped by `keys`; each keeps the seeds and the per-seed values."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(json.dumps(r.get(k)) for k in keys), []).append(r)
    out = []
    for group in groups.values():
        row = {k: group[0].get(k) for k in keys}
        for m in ("wer", "cer", "accuracy", "macro_f1", "entropy_bps", "payload_bps", "wire_bps"):
            if m in group[0]:
                row[m] = round(statistics.mean(g[m] for g in group), 4)
                row[f"{m}_per_seed"] = [g[m] for g in group]
        for m in ("lm_alpha", "lm_beta"):  # chosen on dev per run
            if m in group[0]:
                row[f"{m}_per_seed"] = [g[m] for g in group]
        row["seeds"] = [g["seed"] for g in group]
        out.append(row)
    return out


# (bit/s at most, WER / full WER at most): the first operating points, then half the bits
ASR_TARGETS = ((150, 1.10), (100, 1.25), (60, 1.10), (40, 1.25))
AC_TARGETS = (50, 10)  # bit/s at most, for accuracy within 1 point of the full model


def check_targets(task: str, full: list[dict], points: list[dict]) -> list[dict]:
    """The issues' targets on the sets measured (a target on a set not scored is left out), each with the
    measured value and whether it is met."""
    out = []
    base = {(r["test_set"], r["decoder"]): r for r in full}
    if TASKS[task].sequence:
        decs = list(dict.fromkeys(r["decoder"] for r in full))  # those measured, in order
        for dec in decs:
            if ("dev", dec) in base:
                out.append(_target(f"full model dev WER <= 0.25 ({dec})", base[("dev", dec)]["wer"], 0.25, "<="))
            if ("test-clean", dec) in base:
                out.append(_target(f"full model test-clean CER <= 0.25 ({dec})", base[("test-clean", dec)]["cer"],
                                   0.25, "<="))
        for dec in decs:
            for bps, ratio in ASR_TARGETS:
                for ts in ("dev", "test-clean"):
                    if (ts, dec) not in base:
                        continue
                    cands = [p for p in points if p["test_set"] == ts and p["decoder"] == dec
                             and p["entropy_bps"] <= bps]
                    best = min((p["wer"] for p in cands), default=None)
                    value = None if best is None else round(best / base[(ts, dec)]["wer"], 3)
                    out.append(_target(f"cut model <= {bps} bit/s (entropy-coded), {dec}: WER / full WER on {ts} "
                                       f"<= {ratio}", value, ratio, "<="))
    else:
        dec = "argmax"
        for ts in dict.fromkeys(r["test_set"] for r in full if r["decoder"] == dec and r.get("snr_db") is None):
            acc = base[(ts, dec)]["accuracy"]
            out.append(_target(f"full model accuracy on {ts} >= 0.90", acc, 0.90, ">="))
            for bps in AC_TARGETS:
                cands = [p for p in points if p["test_set"] == ts and p["decoder"] == dec and p["entropy_bps"] <= bps]
                best = max((p["accuracy"] for p in cands), default=None)
                out.append(_target(f"cut model <= {bps} bit/s on {ts}: accuracy within 1 point of the full model",
                                   None if best is None else round(acc - best, 4), 0.01, "<="))
    return out


def _target(name: str, value: float | None, bound: float, op: str) -> dict:
    met = value is not None and (value <= bound if op == "<=" else value >= bound)
    return {"target": name, "value": value, "bound": bound, "met": met}


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metric = TASKS[report["task"]].metric
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    colors = {}
    for row in report["full_model"]:
        key = f"{row['test_set']} {row['decoder']}"
        line = ax.axhline(row[metric], ls="--", lw=1, color=colors.setdefault(key, f"C{len(colors)}"))
        line.set_label(f"uncut, {key}")
    for key in colors:
        pts = sorted((p for p in report["points"] if f"{p['test_set']} {p['decoder']}" == key
                      and p.get("system", "acom") == "acom"), key=lambda p: p["entropy_bps"])
        ax.plot([p["entropy_bps"] for p in pts], [p[metric] for p in pts], "o-", color=colors[key],
                label=f"ACoM (entropy-coded), {key}")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("bit/s (log scale)")
    ax.set_ylabel(metric.upper() if metric == "wer" else "accuracy")
    ax.set_title(f"{report['task']}: rate against {metric} ({len(set(report['seeds']))} seed(s))")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a curve
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _keep_codec_rows(path: Path, report: dict) -> dict:
    """`report` plus the rows `acom bench codecs` wrote into the old report, when it came from the same runs
    (rerunning rate-accuracy must not silently drop the baselines)."""
    if not path.is_file():
        return report
    old = json.loads(path.read_text())
    if sorted(old.get("runs", [])) != sorted(report["runs"]):
        return report
    for key in ("full_model", "points", "targets"):
        report[key] += [r for r in old.get(key, []) if r.get("bench") == "codecs"]
    if "device_cost" in old:
        report["device_cost"] = old["device_cost"]
    return report


def parser() -> argparse.ArgumentParser:
    """The options of `acom bench rate-accuracy`."""
    p = argparse.ArgumentParser(prog="acom bench rate-accuracy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--runs", type=Path, nargs="*", help="run folders (full.pt + split.pt), one per seed; "
                   "default: the shipped model")
    p.add_argument("--uncut", type=Path, nargs="+", metavar="FULL.pt", help="uncut checkpoints to compare the "
                   "cuts with, one per --runs folder in the same order (default: each run's full.pt); e.g. controls "
                   "trained as many epochs as the cuts (acom train --init UNCUT.pt --epochs N --split-epochs 0)")
    p.add_argument("--data", type=Path, help="data set folder holding the test subsets")
    p.add_argument("--cache", "--features", dest="features", type=Path,
                   help="feature cache folder (default: the one acom train and eval use, outside the data)")
    p.add_argument("--sets", help="comma-separated splits to score (default asr dev,test-clean; ac test): a "
                   "subset's own name (dev-clean, test-other), a role, UrbanSound8K folds (fold3, cv3-test)")
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("--no-lexicon", action="store_true", help="ASR: leave out the lexicon-constrained beam search "
                   "(decoder beam+lm+lex: beam 64, only the training words; about 3x the decoding time of beam+lm)")
    return p


def _uncut_paths(ns: argparse.Namespace, runs: list[Path]) -> list[Path]:
    """The uncut checkpoint of each run: --uncut's, checked before anything is scored (one per run, each an
    uncut checkpoint of the task), or the run's full.pt."""
    if not ns.uncut:
        return [run / "full.pt" for run in runs]
    if not ns.runs or len(ns.uncut) != len(runs):
        raise AcomError(f"--uncut: {len(ns.uncut)} checkpoint(s) for {len(ns.runs or [])} --runs folder(s); give "
                        "one uncut checkpoint per run, in the same order")
    for path in ns.uncut:
        read_uncut(path, ns.task, "--uncut")
    return list(ns.uncut)


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    runs = ns.runs or [PRETRAINED / ns.task]
    uncut = _uncut_paths(ns, runs)
    fulls, points, seeds, scored, epochs = [], [], [], set(), []
    for run, full_path in zip(runs, uncut):
        seed = json.loads((run / "command.json").read_text()).get("seed", 0) if (run / "command.json").is_file() else 0
        split, payload = load_checkpoint(run / "split.pt", ns.task)
        epochs.append({"run": str(run), "seed": seed, "uncut": trained_epochs(read_checkpoint(full_path)),
                       "cut": trained_epochs(payload)})
        n_mels = split.model.frontend.cfg.n_mels
        sets = {s: cached_features(ns.task, s, n_mels, root=ns.data, cache=ns.features)
                for s in (ns.sets.split(",") if ns.sets else TASKS[ns.task].eval_sets)}
        key = uncut_key(run, full_path)
        f, pts = run_points(run, ns.task, sets, seed, lexicon=not ns.no_lexicon, uncut=key not in scored,
                            full_path=full_path)
        scored.add(key)
        fulls += f
        points += pts
        seeds.append(seed)
    full = mean_over_seeds(fulls, ("test_set", "snr_db", "decoder"))
    pts = mean_over_seeds(points, ("system", "test_set", "snr_db", "decoder", "n_q", "codebook_sizes", "nominal_bps",
                                   "split_layer", "frame_rate"))
    report = {"task": ns.task, "test_set": TASKS[ns.task].test_subset, "seeds": seeds, "runs": [str(r) for r in runs],
              "training_epochs": epochs, **({"uncut_models": [str(u) for u in ns.uncut]} if ns.uncut else {}),
              "full_model": full, "points": pts,
              "targets": check_targets(ns.task, full, pts)}
    ns.out.mkdir(parents=True, exist_ok=True)
    path = ns.out / f"{ns.task}_rate_accuracy.json"
    report = _keep_codec_rows(path, report)
    path.write_text(json.dumps(report, indent=1))
    if any(p.get("bench") == "codecs" for p in report["points"]):
        from acom.comparisons.comparison_report import plot as plot_all
        plot_all(report, ns.out / f"{ns.task}_rate_accuracy.png")
    else:
        plot(report, ns.out / f"{ns.task}_rate_accuracy.png")
    for t in report["targets"]:
        print(f"{'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']}")
    for e in epochs:  # a cut trained longer than its reference is flattered by the training, not the codes
        if None not in (e["cut"], e["uncut"]) and e["cut"] != e["uncut"]:
            print(f"note: {e['run']}: the cut model had {e['cut']} epochs of training in all, the uncut model "
                  f"{e['uncut']} (training_epochs in the report)")
    return 0
