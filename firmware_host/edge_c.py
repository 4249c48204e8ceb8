"""The edge graph in C on a microcontroller: an MCU bundle's ``c/acom_graph.c`` (export/c_graph.py) with the
firmware kernels (c/acom_kernels.c), built for a board and run under its emulator on real feature windows.

    python -m acom.firmware_host.edge_c --bundle export-cortex-m55-u55-ac --data data/urban [--board cortex-m4]

Features come from the Python front end, quantized to the graph's int8 input, or with ``--frontend c`` from
16-bit audio through the firmware's own front end. Compared, per window: the codes with TFLite Micro's (what
the board's interpreter would give), and the last int8 tensor of the graph's integer-only part (where any
rounding that differs would show) with TFLite's reference kernels in LiteRT. Exit 0: the codes equal TFLite
Micro's (with the C front end: at least 99%, the bar of every exported artifact); 1: they do not; 2: bad input
or a tool missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.firmware_host.cbuild import C_DIR, TEST_DIR, build, kind, run_command


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio [N] in [-1, 1) as the 16-bit samples a board's microphone gives the firmware: int16 [N]."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


BATCH = 8  # windows per firmware run: 8 s of 16-bit audio and the program fit the emulators' 512 KiB


def run_graph(board: str, model: bytes, inputs: list[np.ndarray], probe: int | None = None,
              timeout: float = 300.0, kernels: Path = C_DIR / "acom_kernels.c", frontend: dict | None = None
              ) -> tuple[list[np.ndarray], list[bytes], list[bytes]]:
    """The C graph of `model` on `board`: (codes int32, the `probe` tensor's bytes, the int8 features) per
    input. Inputs are int8 feature windows (the graph's input shape), or with `frontend` (a bundle manifest's
    entry) int16 audio windows that the firmware front end turns into features first. `kernels`: the kernel
    source to build (another one only to show that a check notices a change)."""
    out: tuple[list, list, list] = ([], [], [])
    for start in range(0, len(inputs), BATCH):
        part = _run_batch(board, model, inputs[start: start + BATCH], probe, timeout, kernels, frontend)
        for acc, got in zip(out, part):
            acc.extend(got)
    return out


def _run_batch(board: str, model: bytes, inputs: list[np.ndarray], probe: int | None, timeout: float,
               kernels: Path, frontend: dict | None) -> tuple[list[np.ndarray], list[bytes], list[bytes]]:
    from acom.export.c_graph import frontend_c, graph_c
    header, source = graph_c(model, probe=probe)
    size = int(inputs[0].size) if inputs else 0
    with tempfile.TemporaryDirectory(prefix="acom-edge-c-") as tmp:
        work = Path(tmp)
        (work / "acom_graph.h").write_text(header)
        (work / "acom_graph.c").write_text(source)
        rows = ",".join("{" + ",".join(str(int(v)) for v in np.asarray(x).ravel()) + "}" for x in inputs)
        sources = [TEST_DIR / "graph_codes.c", work / "acom_graph.c", kernels]
        if frontend is None:
            table = f"static const int8_t G_INPUT[G_N][{max(size, 1)}] = {{{rows}}};"
        else:
            table = f"#define G_AUDIO_SAMPLES {size}\nstatic const int16_t G_AUDIO[G_N][{max(size, 1)}] = {{{rows}}};"
            (work / "acom_frontend_tables.c").write_text(frontend_c(frontend, model))
            sources += [C_DIR / "acom_frontend.c", work / "acom_frontend_tables.c"]
        (work / "graph_in.h").write_text(f"#include <stdint.h>\n#define G_N {len(inputs)}\n{table}\n")
        exe = build(board, sources, work / "graph_codes", work)
        cmd = run_command(board, exe)
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AcomError(f"{' '.join(cmd[:3])}: no result after {timeout:.0f} s") from e
    if run.returncode != 0:
        raise AcomError(f"{' '.join(cmd[:3])}: exit {run.returncode}: {(run.stdout + run.stderr)[-500:]}")
    lines = run.stdout.splitlines()
    codes = [np.array(x.split()[2:], dtype=np.int32) for x in lines if x.startswith("codes ")]
    probes = [bytes.fromhex(x.split()[2]) for x in lines if x.startswith("probe ")]
    features = [bytes.fromhex(x.split()[2]) for x in lines if x.startswith("features ")]
    if len(codes) != len(inputs):
        raise AcomError(f"{' '.join(cmd[:3])}: {len(codes)} results for {len(inputs)} inputs: {run.stdout[-300:]}")
    return codes, probes, features


def reference_probe(model: bytes, inputs: list[np.ndarray], probe: int) -> list[bytes]:
    """The `probe` tensor's bytes per int8 input from LiteRT's reference kernels (TFLite Micro's arithmetic)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = []
    for x in inputs:
        interp.set_tensor(inp["index"], np.asarray(x).reshape(inp["shape"]))
        interp.invoke()
        out.append(interp.get_tensor(probe).tobytes())
    return out


def feature_windows(bundle: Path, data: Path, items: int, checkpoint: Path | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(float features [1, n_mels, F], 16-bit audio [window]) of the first test items' windows: the features
    from the Python front end (the bundle's checkpoint's, with its normalization), the audio as a device's
    microphone gives it (the data sets are 16-bit files, so the conversion is exact)."""
    from acom.core.checkpoint import load_checkpoint
    from acom.corpora.featcache import open_dataset
    from acom.export.graph import EdgeGraph
    from acom.export.verify import make_windows
    from acom.runtime.bundle import read_manifest
    m = read_manifest(bundle)
    if m.frontend.runs_in != "firmware":
        raise AcomError(f"{bundle}: board {m.board} runs the front end in the graph; the C graph is for "
                        "microcontroller bundles (front end in the firmware)")
    ckpt = checkpoint or Path(m.checkpoint["path"])
    split, _ = load_checkpoint(ckpt, m.task)
    if split.rvq is None or split.rvq.codebook_hash() != m.codebook_hash:
        raise AcomError(f"{ckpt}: not the bundle's model (codebook hash differs); give --checkpoint")
    graph = EdgeGraph(split, m.n_q, frontend=False).eval()
    ds = open_dataset(m.task, data, TASKS[m.task].test_subset)
    picked = [(ds[i][0], ds[i][1]) for i in range(min(items, len(ds)))]
    spc, window = round(m.sample_rate / m.frame_rate), m.graph.window_samples
    audio = []
    for wave, _ in picked:  # the same windows as make_windows: zero-padded to whole windows
        padded = np.zeros(max(1, -(-len(wave) // window)) * window, dtype=np.float32)
        padded[: len(wave)] = wave
        pcm = pcm16(padded)
        audio += [pcm[w: w + window] for w in range(0, len(pcm), window)]
    return make_windows(graph, picked, window, spc).inputs, audio


def check_bundle(bundle: Path, data: Path, board: str | None = None, items: int = 12,
                 checkpoint: Path | None = None, frontend: str = "python") -> dict:
    """Codes and last int8 tensor of the C graph on `board` (default the bundle's) against TFLite Micro and
    TFLite's reference kernels, on the windows of `items` test items. ``frontend="c"``: the firmware computes
    the features from 16-bit audio too (acom_frontend.c); its int8 features are compared with Python's and
    its codes with TFLite Micro's on Python's features."""
    from acom.export.c_graph import integer_part_end
    from acom.export.litert import to_model_input
    from acom.export.micro import run_tflm
    from acom.runtime.bundle import read_manifest
    m = read_manifest(bundle)
    board = board or m.board
    if kind(board) == "linux":
        raise AcomError(f"--board {board}: a Linux board runs the bundle's .pte/.tflite; the C graph is for "
                        "microcontrollers (or host)")
    model = (bundle / "edge_int8.tflite").read_bytes()
    if frontend not in ("python", "c"):
        raise AcomError(f"--frontend {frontend}: python or c")
    floats, audio = feature_windows(bundle, data, items, checkpoint)
    inputs = [to_model_input(model, x) for x in floats]
    probe = integer_part_end(model)
    if frontend == "c":
        codes, probes, features = run_graph(board, model, audio, probe, frontend=m.frontend.to_dict())
    else:
        codes, probes, features = run_graph(board, model, inputs, probe)
    want, _ = run_tflm(model, floats)
    same = sum(int((np.asarray(w).ravel() == c).sum()) for w, c in zip(want, codes))
    total = sum(int(np.asarray(w).size) for w in want)
    out = {"bundle": str(bundle), "board": board, "frontend": frontend, "windows": len(inputs), "codes": total,
           "codes_equal_tflm": same, "agreement": round(same / max(total, 1), 6)}
    if frontend == "c":
        mine = np.frombuffer(b"".join(features), dtype=np.int8).astype(int)
        ref = np.concatenate([x.ravel() for x in inputs]).astype(int)
        out.update(features=int(ref.size), features_equal_python=int((mine == ref).sum()),
                   features_max_abs_diff=int(np.abs(mine - ref).max()))
    else:  # the same int8 input: the integer part must match the reference kernels bit for bit
        want_probe = reference_probe(model, inputs, probe)
        out.update(probe_tensor=probe, probe_windows_equal_reference=sum(a == b for a, b in zip(probes, want_probe)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m acom.firmware_host.edge_c", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="an MCU bundle written by acom-export")
    p.add_argument("--data", type=Path, required=True, help="data set with the task's test subset")
    p.add_argument("--board", help="where to run (default: the bundle's board; host: this machine's gcc)")
    p.add_argument("--items", type=int, default=12, help="test items to cut into windows (default 12)")
    p.add_argument("--checkpoint", type=Path, help="the bundle's checkpoint, if not where its manifest says")
    p.add_argument("--frontend", choices=("python", "c"), default="python", help="who computes the features: "
                   "python (the graph alone is checked, bit for bit) or c (the firmware's front end on 16-bit "
                   "audio; features and codes compared, float rounding allowed to differ)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ns = p.parse_args(argv)
    try:
        r = check_bundle(ns.bundle, ns.data, ns.board, ns.items, ns.checkpoint, ns.frontend)
    except AcomError as e:
        print(f"edge_c: error: {e}", file=sys.stderr)
        return 2
    from acom.export.pipeline import CODE_AGREEMENT_MIN
    if ns.frontend == "c":  # float rounding of another FFT: held to the bar every exported artifact meets
        ok = r["agreement"] >= CODE_AGREEMENT_MIN
        detail = (f"int8 features equal to Python's {r['features_equal_python']}/{r['features']} (at most "
                  f"{r['features_max_abs_diff']} apart); agreement {r['agreement']:.2%} (bar {CODE_AGREEMENT_MIN:.0%})")
    else:
        ok = r["codes_equal_tflm"] == r["codes"]
        detail = (f"the integer part's last int8 tensor (#{r['probe_tensor']}) equal to TFLite's reference "
                  f"kernels' in {r['probe_windows_equal_reference']}/{r['windows']} windows")
    if ns.json:
        print(json.dumps({**r, "passed": ok}))
    else:
        print(f"{r['board']}, {ns.frontend} front end: {r['windows']} windows; codes equal to TFLite Micro's "
              f"{r['codes_equal_tflm']}/{r['codes']}; {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
