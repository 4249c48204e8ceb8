"""`acom-export`: the edge head of a trained split model, int8, for a board, verified, as a bundle."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.runtime.manifest import Manifest

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNVERIFIED = 0, 1, 2, 3


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
    p.add_argument("--out", type=Path, help="bundle folder to write (default: export-BOARD-TASK)")
    p.add_argument("--n-q", type=int, help="quantizer stages the device sends (default 1: the lowest-rate "
                   "point, 150 bit/s nominal for the shipped ASR model, 30 for the classifier)")
    p.add_argument("--data", type=Path, help="data set for calibration (train) and verification (test) "
                   "(default: data/speech or data/urban, as `make demo` writes them)")
    p.add_argument("--calibration-windows", type=int, default=16, help="windows of real audio to calibrate on")
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
    return p


def _quiet_libraries() -> None:
    """torchao and the TF runtimes log optional-kernel and CPU-feature noise that says nothing to a user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("torchao", "torch._export", "executorch", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
    _quiet_libraries()
    from acom.export.pipeline import ExportOptions, export

    opts = ExportOptions(board=ns.board, task=ns.task, checkpoint=ns.checkpoint, out=ns.out, n_q=ns.n_q,
                         data=ns.data, calibration_windows=ns.calibration_windows,
                         verify_items=ns.verify_items, qat=ns.qat, qat_epochs=ns.qat_epochs,
                         force=ns.force, keep_failed=ns.keep_failed)
    try:
        with _stdout_to_stderr():  # converters print progress on stdout (C++ too): keep stdout for the result
            manifest = export(opts)
    except AcomError as e:
        print(f"acom-export: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("acom-export: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder that cannot be written: the bundle is not half-written
        print(f"acom-export: error: cannot write the bundle ({e}); nothing was written", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(manifest.to_dict(), indent=1))
    else:
        print(summary(manifest))
    return EXIT_OK if manifest.verification.passed else EXIT_UNVERIFIED


def summary(m: Manifest) -> str:
    """A few lines a person reads: where, what, and how well it matched."""
    v, d, cost = m.verification, m.verification.details, m.costs
    lines = [f"bundle {m.extra['out']}: {m.task} for {m.board}, n_q={m.n_q} ({m.nominal_bps:.0f} bit/s "
             f"nominal), codebook {m.codebook_hash[:16]}",
             f"  float model on {d['items']} {d['test_subset']} items: {d['float_metric']['metric']} "
             f"{d['float_metric']['points']:.2f}"]
    for c in d["checks"]:
        agree = ", ".join(f"{a:.2%}" for a in c["agreement_vs_quantized_reference"])
        lines.append(f"  {c['artifact']:<34} codes = quantized reference per stage: {agree}; "
                     f"{c['metric']['metric']} {c['metric']['points']:.2f} ({c['metric_loss_points']:+.2f})")
    lines.append(f"  device: {cost['macs_per_s_on_device'] / 1e6:.1f} M MAC/s, RAM "
                 f"{cost['peak_memory_bytes'] / 1024:.0f} KiB, flash {cost['model_flash_bytes'] / 1024:.0f} KiB; "
                 f"verification {'passed' if v.passed else 'FAILED: ' + '; '.join(v.failures)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
