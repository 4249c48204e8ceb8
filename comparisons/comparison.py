"""`acom bench codecs --task asr|ac`: ACoM against codec pipelines, clean and in noise, with the device's cost.

Adds to reports/<task>_rate_accuracy.json (made by `acom bench rate-accuracy` from the same runs):
- the uncut model and ACoM at each n_q on test-noisy, split by SNR (0, 5, 10, 20 dB);
- each codec pipeline (device: codec encoder; server: decoder + the full uncut model) on the clean test set and
  test-noisy by SNR, with the full model as trained and fine-tuned on decoded audio of the codec's family
  (`full_model`: 'as-trained' / 'fine-tuned'), `measured_bps` (payload bits) and `device_cpu_s_per_s`
  (encoder CPU time per second of audio, one thread, this machine);
- `device_macs_per_s` of the ACoM edge head (front-end with a real FFT + layers + quantizer) and the neural
  codec encoders (DAC 16 kHz, EnCodec 24 kHz; random weights, the cost needs none);
- the targets, each met or missed with its numbers.
Rows it wrote before are replaced, so it can be rerun. Also writes reports/<task>_comparison.md and redraws
the plot with every system. Fine-tuned models are kept in RUN/codec-ft/<family>/ and reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from acom.baselines import codecs as C
from acom.baselines.coded_sets import CodedSet, coded_set, encoder_cpu_s_per_s, subset_dataset
from acom.codes.framing import framed_bps
from acom.codes.priors import CodePriors
from acom.comparisons.rate_accuracy import BEAM_LM, _decoders, _metric, lm_weights, mean_over_seeds, tune_lm_weights
from acom.core.checkpoint import load_checkpoint, load_reference
from acom.core.macs import edge_macs_per_second
from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.training.decoding import WordNgramLM
from acom.training.evaluate import infer, rate_fields, score
from acom.training.train import TrainConfig, fit

TAG = "codecs"  # rows this bench wrote carry "bench": TAG
FT_EPOCHS = {"asr": 6, "ac": 10}
FT_LR = {"asr": 5e-4, "ac": 7.5e-4}  # a quarter of the recipe's stage-1 peak: adapt, do not retrain


def _score_rows(task: str, model, cs: CodedSet, lm, ab: tuple[float, float], base: dict,
                n_q: int | None = None, priors: CodePriors | None = None) -> list[dict]:
    """One row per SNR group and decoder of `model` on `cs` (with the codes' bit rate when n_q is given)."""
    outputs, codes = infer(model, cs.features, n_q)
    ncls = getattr(model.model.config, "num_classes", 0)
    rows = []
    for snr, idx in cs.by_snr().items():
        rate = rate_fields(model, n_q, [codes[i] for i in idx], priors) if n_q else {}
        for d in _decoders(task):
            m = score(task, [outputs[i] for i in idx], [cs.features.targets[i] for i in idx], lm, d.beam, ncls,
                      alpha=ab[0], beta=ab[1])
            rows.append({**base, **rate, "snr_db": snr, "decoder": d.name, "items": len(idx), **_metric(m)})
    return rows


def fine_tuned(run: Path, task: str, family: str, data: Path, seed: int, progress: bool, epochs: int):
    """The run's full model fine-tuned for `epochs` on `family`-decoded train audio (every mode of the family in
    turn, whichever codecs are scored; cached in RUN/codec-ft/FAMILY, resumed or reused)."""
    out = run / "codec-ft" / family
    full, _ = load_reference(run / "full.pt", task)
    n_mels = full.model.frontend.cfg.n_mels
    train = coded_set(task, data, "train", f"family:{family}", n_mels, progress=progress).features
    dev = coded_set(task, data, "dev", f"family:{family}", n_mels, progress=progress).features
    cfg = TrainConfig(epochs=epochs, lr=FT_LR[task], seed=seed)
    meta = {"command": f"acom bench codecs --task {task}: fine-tune on {family}-decoded train audio",
            "codec_family": family}
    fit(full, train, dev, cfg, out, "full", meta, resume=True, progress=progress)  # resumes or skips when done
    return full, dev


def run_rows(run: Path, task: str, data: Path, progress: bool, codecs: tuple[C.Codec, ...] = C.CODECS,
             ft_epochs: int | None = None) -> tuple[list[dict], list[dict]]:
    """(uncut rows on test-noisy, points: ACoM on test-noisy and every codec pipeline) of one run."""
    seed = json.loads((run / "command.json").read_text()).get("seed", 0) if (run / "command.json").is_file() else 0
    full, _ = load_reference(run / "full.pt", task)
    split, payload = load_checkpoint(run / "split.pt", task)
    lm = WordNgramLM.from_dict(json.loads(payload["lm"])) if "lm" in payload else None
    priors = CodePriors.from_tensors(payload["priors"])
    n_mels = full.model.frontend.cfg.n_mels
    sets = {name: coded_set(task, data, name, None, n_mels, progress=progress)
            for name in (TASKS[task].test_subset, "test-noisy", "dev")}
    stages = range(1, split.rvq.config.n_q + 1)
    weights = lm_weights(lm, sets["dev"].features, full, stages, split)[BEAM_LM]  # chosen on dev, never on a test set
    ab = weights[None]
    base = {"seed": seed, "bench": TAG}
    noisy = sets["test-noisy"]
    full_rows = _score_rows(task, full, noisy, lm, ab, {**base, "test_set": "test-noisy"})
    points = []
    for n_q in stages:
        points += _score_rows(task, split, noisy, lm, weights[n_q], {**base, "system": "acom", "test_set": "test-noisy",
                                                            "split_layer": split.split_layer,
                                                            "frame_rate": split.frame_rate}, n_q, priors)
    for family in dict.fromkeys(c.family for c in codecs):
        models = {"as-trained": (full, ab)}
        tuned, dev = fine_tuned(run, task, family, data, seed, progress, ft_epochs or FT_EPOCHS[task])
        models["fine-tuned"] = (tuned, tune_lm_weights(infer(tuned, dev)[0], dev.targets, lm) if lm else ab)
        for codec in (c for c in codecs if c.family == family):
            for ts in (TASKS[task].test_subset, "test-noisy"):
                cs = coded_set(task, data, ts, codec.system, n_mels, progress=progress)
                for kind, (model, w) in models.items():
                    points += _score_rows(task, model, cs, lm, w, {
                        **base, "system": codec.system, "family": family, "full_model": kind, "test_set": ts,
                        "nominal_bps": codec.target_bps, "measured_bps": round(cs.measured_bps, 1),
                        "wire_bps": framed_bps(cs.measured_bps, cs.seconds), "padded_clips": cs.padded})
    return full_rows, points


def device_costs(task: str, data: Path, split_ckpt: Path, codecs: tuple[C.Codec, ...] = C.CODECS) -> dict:
    """Device cost: codec encoders' CPU s per s (measured), MAC/s of neural codec encoders and of the edge head."""
    from acom.baselines.neural_codecs import neural_codec_costs
    ds = subset_dataset(task, str(data), TASKS[task].test_subset)
    audio = np.concatenate([ds[i][0] for i in range(min(len(ds), 40))])  # ~1-2 minutes of the test set
    cpu = {c.system: round(encoder_cpu_s_per_s(c, audio), 6) for c in codecs}
    split, _ = load_checkpoint(split_ckpt, task)
    edge = {n_q: edge_macs_per_second(split.edge(n_q))["total"] for n_q in range(1, split.rvq.config.n_q + 1)}
    return {"codec_encoder_cpu_s_per_s": cpu, "audio_seconds_timed": round(len(audio) / C.SAMPLE_RATE, 1),
            "acom_edge_macs_per_s": edge, "neural_codecs": neural_codec_costs()}


def merge(report: dict, full_rows: list[dict], points: list[dict], costs: dict) -> dict:
    """`report` with this bench's earlier rows replaced by the new ones (averaged over seeds)."""
    keep_full = [r for r in report["full_model"] if r.get("bench") != TAG]
    keep_pts = [p for p in report["points"] if p.get("bench") != TAG]
    full = mean_over_seeds(full_rows, ("bench", "test_set", "snr_db", "decoder"))
    pts = mean_over_seeds(points, ("bench", "system", "family", "full_model", "test_set", "snr_db", "decoder",
                                   "n_q", "codebook_sizes", "nominal_bps", "measured_bps", "padded_clips",
                                   "split_layer", "frame_rate", "items"))
    for r in keep_full + keep_pts:
        r.setdefault("snr_db", None)  # reports from before the noisy sets: their rows are the clean test set
    for p in keep_pts + pts:
        if p.get("system") == "acom":
            p["device_macs_per_s"] = round(costs["acom_edge_macs_per_s"][p["n_q"]])
        elif p.get("system") in costs["codec_encoder_cpu_s_per_s"]:
            p["device_cpu_s_per_s"] = costs["codec_encoder_cpu_s_per_s"][p["system"]]
        for k in [k for k in p if p[k] is None and k in ("family", "full_model", "n_q", "codebook_sizes",
                                                           "split_layer", "frame_rate", "measured_bps")]:
            del p[k]  # keys that do not apply to this system
    report = dict(report, full_model=keep_full + full, points=keep_pts + pts, device_cost=costs)
    from acom.comparisons.comparison_report import check_targets
    report["targets"] = [t for t in report["targets"] if t.get("bench") != TAG] + check_targets(report)
    return report


def parser() -> argparse.ArgumentParser:
    """The options of `acom bench codecs`."""
    p = argparse.ArgumentParser(prog="acom bench codecs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--runs", type=Path, nargs="+", required=True,
                   help="run folders (full.pt + split.pt), one per seed: the ones the rate-accuracy report used")
    p.add_argument("--data", type=Path, required=True, help="the data set the runs were trained on")
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("--codecs", default=",".join(c.system for c in C.CODECS),
                   help="comma-separated codec systems to score (default: all of them)")
    p.add_argument("--ft-epochs", type=int, default=None,
                   help=f"fine-tuning epochs per codec family (default: {FT_EPOCHS['asr']} asr, {FT_EPOCHS['ac']} ac)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    codecs = tuple(C.get_codec(name.strip()) for name in ns.codecs.split(",") if name.strip())
    if not codecs:
        raise AcomError("--codecs: give at least one codec system")
    from acom.comparisons.comparison_report import plot, write_markdown
    path = ns.out / f"{ns.task}_rate_accuracy.json"
    if not path.is_file():
        raise AcomError(f"{path} not found: run `acom bench rate-accuracy --task {ns.task} --runs ...` first")
    report = json.loads(path.read_text())
    if sorted(report.get("runs", [])) != sorted(str(r) for r in ns.runs):
        raise AcomError(f"{path} was made from runs {report.get('runs')}, not {[str(r) for r in ns.runs]}: "
                        "compare the same models (rerun rate-accuracy with these runs)")
    full_rows, points = [], []
    for run in ns.runs:
        f, pts = run_rows(run, ns.task, ns.data, not ns.quiet, codecs, ns.ft_epochs)
        full_rows += f
        points += pts
    report = merge(report, full_rows, points, device_costs(ns.task, ns.data, ns.runs[0] / "split.pt", codecs))
    path.write_text(json.dumps(report, indent=1))
    plot(report, ns.out / f"{ns.task}_rate_accuracy.png")
    write_markdown(report, ns.out / f"{ns.task}_comparison.md")
    for t in report["targets"]:
        if t.get("bench") == TAG:
            print(f"{'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']} (bound {t['bound']})")
    return 0
