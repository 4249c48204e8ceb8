"""`acom triton`: export a bundle's tail to ONNX per number of stages, check each model in onnxruntime against
PyTorch, and write an NVIDIA Triton model repository (docs/triton.md)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from acom.errors import AcomError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom triton",
        description="Export the server tail of a bundle to ONNX (one model per number of quantizer stages), "
                    "check every model in onnxruntime against the PyTorch tail on random padded batches, and "
                    "write a Triton model repository (config.pbtxt + 1/model.onnx per model, README.md).",
        epilog="Exit codes: 0 written and checked; 1 a model differs from PyTorch by more than the tolerance "
               "(nothing written); 2 bad input (no bundle, --out exists without --force, bad --n-q).")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder (acom-export output)")
    p.add_argument("--out", type=Path, required=True, help="model repository folder to write")
    p.add_argument("--n-q", type=int, nargs="+", help="stages per model (default: every n_q 1..all stages)")
    p.add_argument("--max-batch-size", type=int, default=32, help="Triton max_batch_size of each model")
    p.add_argument("--instance-kind", choices=["KIND_GPU", "KIND_CPU"], default="KIND_GPU",
                   help="where Triton runs the models (the same model.onnx serves both)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print the summary and the checks as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    # exporter progress and "torchvision is not installed" notices (torch sets that child logger's level itself)
    for name in ("torch.onnx", "torch.onnx._internal.exporter._registration", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        summary = _build_and_check(ns)
    except AcomError as e:
        print(f"acom triton: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(summary, indent=1) if ns.json else _summary(summary))
    if summary["failures"]:
        print("acom triton: error: " + "; ".join(summary["failures"]) + f" (nothing written to {ns.out})",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _build_and_check(ns: argparse.Namespace) -> dict:
    """Build in a folder beside --out, check every model, and rename it into place only if all pass."""
    from acom.runtime.bundle import open_bundle
    from acom.runtime.onnx_tail import (
        TOLERANCE,
        TritonSettings,
        build_triton_repository,
        check_failures,
        check_out,
        check_tail_onnx,
        publish,
        relocated,
        staging_dir,
    )

    settings = TritonSettings(max_batch_size=ns.max_batch_size, instance_kind=ns.instance_kind)
    check_out(ns.out, ns.force)  # before loading and exporting, not after
    bundle = open_bundle(ns.bundle)
    tmp = staging_dir(ns.out, ns.force)
    try:
        summary = build_triton_repository(bundle, tmp, ns.n_q, settings)
        failures = []
        for m in summary["models"]:
            m["check"] = check_tail_onnx(bundle, Path(m["onnx"]), m["n_q"])
            failures += check_failures(m["check"], TOLERANCE)
        (tmp / "checks.json").write_text(json.dumps([m["check"] for m in summary["models"]], indent=1) + "\n")
        if not failures:
            publish(tmp, ns.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = relocated(summary, tmp, ns.out)
    for m in summary["models"]:  # the checks name the staging folder; point them at the published files
        m["check"]["onnx"] = m["onnx"]
    return {**summary, "tolerance": TOLERANCE, "failures": failures}


def _summary(s: dict) -> str:
    """A few lines a person reads: where, which models, how close to PyTorch."""
    lines = [f"Triton repository {s['repository']}: {s['task']} tail, codebook {s['codebook_hash'][:16]}, "
             f"{s['frame_rate']:g} frames/s, K={s['codebook_sizes']}"]
    for m in s["models"]:
        c = m["check"]
        lines.append(f"  {m['name']:<24} exported in {m['export_s']:.1f} s; onnxruntime vs torch over "
                     f"{len(c['cases'])} batches: max |diff| {c['max_abs_diff']:.2e} (tolerance "
                     f"{s['tolerance']:g}), argmax agreement {c['argmax_agreement']:.2%}")
    lines.append("  checks " + ("passed" if not s["failures"] else "FAILED: " + "; ".join(s["failures"])))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
