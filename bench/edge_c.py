"""Benchmark: the edge graph in C (export/c_graph.py + firmware_host/c/) on the microcontrollers' emulators.

Exports the shipped model for the Cortex-M55 bundle (acom-export), then for every Cortex-M board image runs
its C graph on the windows of ``--items`` test items, from Python's features and from 16-bit audio through the
C front end, against TFLite Micro's codes (firmware_host/edge_c.py); and measures the C's size for the M55
(arm-none-eabi-gcc -O2: flash of graph and weights, kernels, front end and tables; the static arena) beside
TFLite Micro's arena and flatbuffer. Writes reports/edge_c.json (one entry per task).

    python bench/edge_c.py --task ac --data data/urban200
    python bench/edge_c.py --task asr --data data/speech90
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reportfile import merge_entry

from acom.export.pipeline import ExportOptions, export
from acom.firmware_host.edge_c import check_bundle

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ("cortex-m4", "cortex-m7", "cortex-m55-u55")


def sizes(bundle: Path, work: Path) -> dict:
    """Bytes of .text (flash) and .bss (RAM) of the bundle's C graph, kernels and front end for the M55 (its FPU
    and Helium, as cbuild builds the firmware)."""
    out = {}
    for name in ("acom_graph.c", "acom_kernels.c", "acom_frontend.c", "acom_frontend_tables.c"):
        obj = work / (name + ".o")
        subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mfpu=auto", "-mfloat-abi=hard", "-mthumb", "-O2",
                        "-ffp-contract=off", "-std=c11", "-I",
                        str(bundle / "c"), "-c", str(bundle / "c" / name), "-o", str(obj)], check=True)
        text, data, bss = (int(x) for x in subprocess.run(["arm-none-eabi-size", str(obj)], check=True,
                                                           capture_output=True, text=True)
                           .stdout.splitlines()[1].split()[:3])
        out[name] = {"text": text, "data": data, "bss": bss}
    return out


def litert_reference_agreement(bundle: Path, data: Path, items: int) -> float:
    """Share of codes where LiteRT's reference kernels (BUILTIN_REF) give TFLite Micro's: why the C graph is
    judged by TFLite Micro's codes, and LiteRT only on the graph's integer-only part."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from acom.export.litert import to_model_input
    from acom.export.micro import run_tflm
    from acom.firmware_host.edge_c import feature_windows
    model = (bundle / "edge_int8.tflite").read_bytes()
    floats, _ = feature_windows(bundle, data, items)
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    same = total = 0
    for x, want in zip(floats, run_tflm(model, floats)[0]):
        interp.set_tensor(inp["index"], to_model_input(model, x).reshape(inp["shape"]))
        interp.invoke()
        got = interp.get_tensor(out["index"])
        same, total = same + int((got.ravel() == np.asarray(want).ravel()).sum()), total + got.size
    return round(same / total, 6)


def wire_code_cortex_m4(work: Path) -> dict:
    """The device's wire code (acom_wire.c, acom_sha256.c) for a Cortex-M4: .text at -O2 and -Os, and the
    stack of each function (gcc -fstack-usage at -O2)."""
    from acom.export import c_constants
    from acom.firmware_host.cbuild import C_DIR
    c_constants.write(work)  # acom_wire.h includes the generated acom_wire_constants.h
    out: dict = {"text_bytes": {}, "stack_bytes": {}}
    for opt in ("-O2", "-Os"):
        total = 0
        for name in ("acom_wire.c", "acom_sha256.c"):
            obj = work / f"{name}{opt}.o"
            subprocess.run(["arm-none-eabi-gcc", "-std=c99", opt, "-mcpu=cortex-m4", "-mthumb", "-fstack-usage",
                            "-I", str(work), "-c", str(C_DIR / name), "-o", str(obj)], check=True, cwd=work)
            size = subprocess.run(["arm-none-eabi-size", str(obj)], check=True, capture_output=True, text=True)
            total += int(size.stdout.splitlines()[1].split()[0])
            if opt == "-O2":
                for line in obj.with_suffix(".su").read_text().splitlines():
                    where, nbytes, _ = line.split("\t")
                    out["stack_bytes"][where.rsplit(":", 1)[-1]] = int(nbytes)
        out["text_bytes"][opt] = total
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=("ac", "asr"), required=True)
    ap.add_argument("--data", type=Path, required=True, help="data set with the task's train and test subsets")
    ap.add_argument("--items", type=int, default=12, help="test items cut into windows (default 12)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "edge_c.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        # kept even if the int8 model misses the accuracy bar on a small test set: what is measured here is
        # whether the C computes TFLite Micro's codes (the report says whether the export passed)
        manifest = export(ExportOptions(board="cortex-m55-u55", task=args.task, out=bundle, data=args.data,
                                        keep_failed=True, log=lambda s: None))
        if not manifest.c_graph.written:
            print(f"no C graph: {manifest.c_graph.reason}", file=sys.stderr)
            return 1
        runs = []
        for board in BOARDS:
            for frontend in ("python", "c"):
                t = time.perf_counter()
                r = check_bundle(bundle, args.data, board, args.items, frontend=frontend)
                r.pop("bundle")
                runs.append({**r, "seconds": round(time.perf_counter() - t, 1)})
                print(json.dumps(runs[-1]), flush=True)
        tflm = next(a for a in manifest.artifacts if a.runtime == "tflite-micro")
        entry = {"task": args.task, "data": str(args.data), "items": args.items, "bundle_board": "cortex-m55-u55",
                 "export_verified": manifest.verification.passed,
                 "runs": runs, "m55_sizes": sizes(bundle, Path(tmp)),
                 "tflm": {"arena_bytes": tflm.facts["arena_bytes"],
                          "flatbuffer_bytes": manifest.files["edge_int8.tflite"].bytes},
                 "litert_reference_codes_equal_tflm": litert_reference_agreement(bundle, args.data, args.items),
                 "wire_code_cortex_m4": wire_code_cortex_m4(Path(tmp))}
    merge_entry(args.out, args.task, entry)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
