"""`acom-export`: the edge head of a trained split model, int8, for a board, verified, as a bundle."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import textwrap
import warnings
from pathlib import Path

from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.runtime.manifest import Manifest

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 2, 3
PREFIX = "acom-export:"  # the start of every line acom-export itself writes on stderr
QUIET_ENV = {  # read when the libraries load or convert: set before importing them
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's and LiteRT's C++ INFO and WARNING lines
    "LITERT_TORCH_SHOW_PROGRESS": "n",  # litert-torch's console line per conversion pass (about 40 a model)
}
QUIET_LOGGERS = ("torch", "torchao", "executorch", "absl", "litert_torch", "ai_edge_litert", "tflite_micro")
QUIET_WARNINGS_FROM = r"(torch|torchao|executorch|litert_torch|ai_edge_litert|tflite_micro|tensorflow)(\.|$)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom-export",
        description=textwrap.fill("Export the device half of a split model (front-end, layers up to the cut, RVQ "
                    "nearest-codeword search) for a board: int8 post-training quantization calibrated on real "
                    "audio, lowering to ExecuTorch (.pte, XNNPACK) and LiteRT (.tflite) for Linux boards, or an "
                    "int8 .tflite checked in TFLite Micro (+ vela for Ethos-U, + C sources) for Cortex-M boards. "
                    "Every artifact is verified by the codes it emits against the PyTorch quantized reference, "
                    "and by the task metric the server tail gets from them.", 100),
        epilog="Examples:\n  acom-export --board rpi4\n"
               "  acom-export --board cortex-m55-u55 --task ac --out bundles/ac\n"
               "  acom-export --board rpi5 --checkpoint runs/asr/split.pt --n-q 1 --json\n"
               "Boards: `acom boards`. Exit codes: 0 exported and verified; 1 failure; 2 bad input, a model that "
               "does not fit the board, or failed verification (nothing written); 3 written with --keep-failed "
               "although verification failed.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, help="board profile name (see `acom boards`) or a .toml path")
    p.add_argument("--task", choices=list(TASKS), help="task of the shipped default model (default asr); "
                   "with --checkpoint it must match the checkpoint's task")
    p.add_argument("--checkpoint", type=Path, help="a split checkpoint from `acom train` (default: the shipped model)")
    p.add_argument("--out", type=Path, help="bundle folder to write (default: export-BOARD-TASK, TASK being --task, "
                   "the checkpoint's task, or asr)")
    p.add_argument("--n-q", type=int, help="quantizer stages the device sends (default 1: the lowest-rate "
                   "point, 150 bit/s nominal for the shipped ASR model, 30 for the classifier)")
    p.add_argument("--data", type=Path, help="data set for calibration (train) and verification (test) "
                   "(default: data/speech or data/urban, as `make demo` writes them; when it is missing the "
                   "error names the `acom data` command that makes it)")
    p.add_argument("--calibration-windows", type=int, default=16,
                   help="windows of real audio from the train subset to calibrate int8 on (default 16; more can "
                   "help a check that loses a little too much)")
    p.add_argument("--verify-items", type=int, help="test items to verify on, spread over the test subset "
                   "(default 40 utterances for asr, 200 clips for ac)")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning of the edge part (int8 fake "
                   "quantization, task loss, quantizer and server frozen) before quantizing; the metric is still "
                   "judged against the original float model")
    p.add_argument("--qat-epochs", type=int, default=2, help="epochs of --qat over the train subset of --data")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--keep-failed", action="store_true", help="write the bundle even if verification fails "
                   "(marked failed in the manifest; exit code 3)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON on stdout")
    p.add_argument("--verbose", action="store_true", help="also show what torch, ExecuTorch, LiteRT and TensorFlow "
                   "log while converting (warnings, CPU probing, per-pass progress), hidden by default")
    return p


def _quiet_libraries() -> None:
    """Silence the converters' and runtimes' own logging (deprecations, optional kernels, CPU features, progress
    of each conversion pass), which says nothing to a user: environment variables the libraries read, their
    Python loggers at ERROR, and their Python warnings ignored. Errors still show. What C++ code writes straight
    to stderr is held back by the export itself (pipeline.ExportOptions.verbose)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import torch  # noqa: F401  importing torch sets its loggers' levels: set ours after it

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)  # addressed to developers of the libraries
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module=QUIET_WARNINGS_FROM)


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if not ns.verbose:
        _quiet_libraries()
    from acom.export.pipeline import ExportOptions, export

    opts = ExportOptions(board=ns.board, task=ns.task, checkpoint=ns.checkpoint, out=ns.out, n_q=ns.n_q,
                         data=ns.data, calibration_windows=ns.calibration_windows,
                         verify_items=ns.verify_items, qat=ns.qat, qat_epochs=ns.qat_epochs,
                         force=ns.force, keep_failed=ns.keep_failed, verbose=ns.verbose)
    try:
        with _stdout_to_stderr():  # converters print progress on stdout (C++ too): keep stdout for the result
            manifest = export(opts)
    except AcomError as e:
        print(f"{PREFIX} error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PREFIX} interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder that cannot be written: the bundle is not half-written
        print(f"{PREFIX} error: cannot write the bundle ({e}); nothing was written", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(manifest.to_dict(), indent=1))
    else:
        print(summary(manifest))
    return EXIT_OK if manifest.verification.passed else EXIT_UNVERIFIED


def recorded_metric(m: Manifest) -> dict | None:
    """What the shipped model of the bundle scored when it was packaged (core/pretrained/TASK/metrics.json), at the
    bundle's n_q: {'points', 'items', 'test_subset', 'data_command'}; None for a checkpoint that is not shipped."""
    from acom.core.checkpoint import PRETRAINED

    path = Path(m.checkpoint["path"]).resolve()
    record_file = path.parent / "metrics.json"
    if path.parent.parent != PRETRAINED.resolve() or not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    rows = record.get("results", {}).get(path.name, [])
    row = next((r for r in rows if r.get("n_q") == m.n_q), None)
    metric = TASKS[m.task].metric
    if row is None or metric not in row:
        return None
    return {"points": 100 * row[metric], "items": record.get("items"), "test_subset": record.get("test_subset"),
            "data_command": record.get("data_command")}


def _stages(shares: list[float]) -> str:
    """Shares of equal codes, one per RVQ stage: '99.51%' or 'stage 1 99.51%, stage 2 98.90%'."""
    if len(shares) == 1:
        return f"{shares[0]:.2%}"
    return ", ".join(f"stage {i + 1} {a:.2%}" for i, a in enumerate(shares))


def summary(m: Manifest) -> str:
    """A few lines a person reads: where, what, what verification compared and how well it matched."""
    v, d, cost, task = m.verification, m.verification.details, m.costs, TASKS[m.task]
    name, limits, flt = task.unit.removesuffix(" %"), d["thresholds"], d["float_metric"]["points"]
    lines = [f"bundle {m.extra['out']}: {m.task} ({task.title}) for {m.board}, n_q={m.n_q} "
             f"({m.nominal_bps:.0f} bit/s nominal), codebook {m.codebook_hash[:16]}",
             f"verification on {d['items']} {d['test_subset']} items of {d['data']}: each artifact (the int8 edge "
             "program) against the float model (the same model unquantized, in PyTorch) on the same audio",
             f"  float model: {name} {flt:.2f}"]
    for c in d["checks"]:
        lines += [f"  {c['artifact']} ({c['runtime']}): {name} {c['metric']['points']:.2f}, "
                  f"{c['metric_loss_points']:+.2f} points lost against the float model "
                  f"(at most {limits['metric_loss_max_points']} allowed)",
                  f"    codes equal to the float model's: {_stages(c['agreement_vs_float'])}; to its int8 PyTorch "
                  f"reference: {_stages(c['agreement_vs_quantized_reference'])} "
                  f"(at least {limits['code_agreement_min']:.0%} per stage needed)"]
    lines += [f"  {a.file} ({a.runtime}): built, not run here (nothing here emulates it), so not verified"
              for a in m.artifacts if not a.verified]
    shipped = recorded_metric(m)
    if shipped is not None:
        lines += [f"shipped model: {name} {shipped['points']:.2f} recorded when it was packaged (float, "
                  f"{shipped['items']} {shipped['test_subset']} items of `{shipped['data_command']}`); "
                  f"{flt:.2f} measured here (float, {d['items']} items)",
                  "note: the shipped models are demonstrations trained on synthetic speech and sounds, so a "
                  f"{'high' if task.lower_is_better else 'low'} {name} on a tiny demo set is expected and not a "
                  "broken model"]
    lines += [f"device: {cost['macs_per_s_on_device'] / 1e6:.1f} M MAC/s, RAM {cost['peak_memory_bytes'] / 1024:.0f} "
              f"KiB, flash {cost['model_flash_bytes'] / 1024:.0f} KiB",
              "verification passed" if v.passed else "verification FAILED: " + "; ".join(v.failures)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
