"""`acom-export` as a chain of small named stages:

load -> edge graph -> calibrate -> quantize + lower (per runtime of the board) -> verify -> fit -> bundle.

Each runtime yields an ``Artifact``: its bytes, a runner (window -> codes) and the PyTorch quantized reference
it is checked against. Verification compares codes per RVQ stage and the task metric through the server tail.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from acom.boards import Board, load_board
from acom.codes.budget import nominal_bps
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.macs import edge_macs_per_second
from acom.core.models import config_dict
from acom.core.tasks import TASKS
from acom.corpora.featcache import LOADERS, open_dataset
from acom.errors import AcomError, ExportError
from acom.export import verify
from acom.export.bundle import priors_tensors, sha256, tail_state, write_bundle
from acom.export.graph import EdgeGraph
from acom.export.reference import snap_biases
from acom.export.tflite_reference import tflite_runner
from acom.runtime.manifest import Artifact as ManifestArtifact
from acom.runtime.manifest import CGraph, FrontEnd, GraphSpec, Manifest, ModelSpec, Verification

CODE_AGREEMENT_MIN = 0.99  # per stage, artifact against its PyTorch quantized reference
METRIC_LOSS_MAX = 0.5  # points of WER or accuracy, artifact against the float model
# Per task: the layout its data sets have, and the command that writes its demo set (as `make demo` runs it)
@dataclass
class ExportOptions:
    board: str
    task: str | None = None  # None: the checkpoint's task, or "asr" for the shipped default
    checkpoint: Path | None = None
    out: Path | None = None
    n_q: int | None = None
    data: Path | None = None
    calibration_windows: int = 16
    verify_items: int | None = None  # None: 200 clips (ac: 0.5 points is one clip in 200) or 40 utterances (asr)
    qat: bool = False
    qat_epochs: int = 2
    force: bool = False  # replace --out if it exists
    keep_failed: bool = False  # write the bundle even if verification fails (marked failed)
    verbose: bool = False  # let the converters' and runtimes' own C++ output through while lowering
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr))


@dataclass
class Artifact:
    """One lowered edge graph: file name, bytes, runtime, a runner, its quantized reference and extra facts."""

    name: str
    data: bytes
    runtime: str
    runner: verify.Runner
    reference: verify.Runner
    facts: dict = field(default_factory=dict)
    extra_files: dict[str, bytes] = field(default_factory=dict)
    checked: bool = True  # False: built but cannot run here (an NPU command stream), reported, not verified
    save: bool = True  # False: the same file as another artifact (the .tflite that LiteRT and TFLM both run)
    quantized: torch.fx.GraphModule | None = None  # the PT2E graph it was lowered from (fake-quant, float rounding)


class _Stages:
    """Prints each stage as it starts and keeps its time, so a user sees where the minutes go."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.times = log, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        self.log(f"acom-export: {name} ...")
        yield
        self.times[name] = round(time.perf_counter() - t0, 2)


@contextlib.contextmanager
def _native_output_hidden(verbose: bool):
    """Hold back what C++ libraries write straight to file descriptors 1 and 2 meanwhile (ExecuTorch's CPU
    probing, TensorFlow's oneDNN notice at load, LiteRT's delegate notice), which no logging level or environment
    variable reaches. Shown after all if the block fails with an error that is not acom's own; with ``verbose``
    nothing is held back."""
    if verbose:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    crashed = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        try:
            yield
        except AcomError:
            raise
        except BaseException:
            crashed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            if crashed:  # the libraries' own words may say why
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))


def default_out(board: str, task: str) -> Path:
    """The bundle folder when --out is not given: ``export-BOARD-TASK`` in the current folder."""
    return Path(f"export-{board}-{task}")


def _load(opts: ExportOptions):
    """(split model, checkpoint payload, path): the given checkpoint, or the shipped model of the task."""
    path = Path(opts.checkpoint) if opts.checkpoint else PRETRAINED / (opts.task or "asr") / "split.pt"
    try:
        split, payload = load_checkpoint(path, task=opts.task)
    except AcomError as e:  # corrupt, truncated, pickled code, another task, weights that do not fit
        raise ExportError(str(e)) from e
    return split, payload, path


def _dataset_items(task: str, root: Path, subset: str, limit: int) -> list[tuple[np.ndarray, object]]:
    """Up to ``limit`` (audio, target) items spread evenly over a subset."""
    ds = open_dataset(task, root, subset)
    if len(ds) == 0:
        raise ExportError(f"{root}: subset {subset!r} is empty; export needs real audio to calibrate and verify")
    idx = np.unique(np.linspace(0, len(ds) - 1, min(limit, len(ds))).round().astype(int))
    out = []
    for i in idx:
        audio, item = ds[int(i)]
        out.append((audio, TASKS[task].target(item)))
    return out


def _data_root(opts: ExportOptions, task: str) -> Path:
    """--data, or the task's default folder; ExportError naming the missing folder and the command that makes it."""
    root = Path(opts.data) if opts.data is not None else Path(TASKS[task].default_data)
    if root.is_dir():
        return root
    layout, make = LOADERS[task].layout, LOADERS[task].demo_command.format(root=root)
    if opts.data is not None:
        raise ExportError(f"--data {root}: not a folder; give a data set in {layout}'s layout, or make the demo set "
                          f"there with `{make}`")
    raise ExportError(f"{root} is missing (no --data given, and {root} is the {task} task's default in the current "
                      f"folder): export calibrates and verifies on real audio. Make the demo set with `{make}`, "
                      f"or give a data set in {layout}'s layout with --data DIR; nothing was written")


def _check_budget(board: Board, macs: dict, frontend_in_graph: bool) -> float:
    need = macs["total_as_exported"] if frontend_in_graph else macs["total"]
    if need > board.macs_per_s_budget:
        raise ExportError(f"the model does not fit board {board.name}: {need / 1e6:.1f} M MAC per second of audio "
                          f"against a real-time budget of {board.macs_per_s_budget / 1e6:.1f} M "
                          f"({need / board.macs_per_s_budget:.1f}x over)")
    return need


def _c_graph_files(board: Board, model: bytes, frontend: dict, priors=None, n_q: int = 1) -> dict:
    """The int8 graph as C calls of the firmware kernels (export/c_graph.py), the kernels themselves, the
    firmware front end with its tables, the wire code and (with `priors`, a CodePriors) the range coder's tables,
    with a CMakeLists.txt for `board`, for an MCU bundle's c/ folder: {"files": {name: bytes}, "note": manifest
    entry}. A graph with an operator the kernels lack gets no C graph (TFLite Micro still runs it); the note
    says which."""
    from acom.export.c_bundle import library_files
    from acom.export.c_graph import frontend_c, graph_c
    try:
        header, source = graph_c(model)
        tables = frontend_c(frontend, model)
    except ExportError as e:
        return {"files": {}, "note": {"written": False, "reason": str(e)}}
    from acom.export.c_priors import bundle_sources
    files = {"c/acom_graph.h": header.encode(), "c/acom_graph.c": source.encode(),
             "c/acom_frontend_tables.c": tables.encode(),
             **library_files(board),
             **(bundle_sources(priors, n_q) if priors is not None else {})}
    send = ("acom_stream_packet(&stream, codes, ...) (c/acom_wire.h), range-coded with stream.priors = ACOM_PRIORS "
            "(c/acom_priors.h)" if priors is not None else "acom_stream_packet(&stream, codes, ...) (c/acom_wire.h)")
    return {"files": files, "note": {"written": True, "files": sorted(files), "run": "acom_features_i8(&acom_"
                                     "frontend_config, audio, n, features, scratch) (c/acom_frontend.h), then "
                                     "acom_graph_run(features, codes) (c/acom_graph.h); check them with python -m "
                                     "acom.firmware_host.edge_c --bundle DIR --data DATA [--frontend c]",
                                     "send": send + "; build with -ffp-contract=off (c/acom_range.h), as "
                                             "c/CMakeLists.txt does (add_subdirectory: the acom_bundle library)"}}


def _check_fit(board: Board, ram_bytes: int, flash_bytes: int, split, n_q: int, window: int,
               estimated: bool = False) -> None:
    """ExportError when the model's RAM or flash exceeds the board's budgets, naming the nearest configuration
    (cut, n_q) whose estimate fits (export/footprint.py) and `acom plan` for all of them."""
    over = []
    if ram_bytes > board.model_ram_budget_kib * 1024:
        over.append(f"RAM {ram_bytes / 1024:.0f} KiB > {board.model_ram_budget_kib} KiB "
                    f"(by {ram_bytes / 1024 - board.model_ram_budget_kib:.0f} KiB)")
    if flash_bytes > board.model_flash_budget_kib * 1024:
        over.append(f"flash {flash_bytes / 1024:.0f} KiB > {board.model_flash_budget_kib} KiB "
                    f"(by {flash_bytes / 1024 - board.model_flash_budget_kib:.0f} KiB)")
    if not over:
        return
    from acom.export.footprint import nearest_fit
    near = nearest_fit(split, board, n_q, window)
    if near is None:
        hint = "no cut and n_q of this model is estimated to fit it"
    else:
        cut, q, fp = near
        hint = (f"the nearest configuration estimated to fit is the cut after block {cut} with n_q {q} (RAM ~"
                f"{fp.ram / 1024:.0f} KiB, flash ~{fp.flash / 1024:.0f} KiB; a different cut means training its RVQ)")
    what = "estimated before lowering, by more than the estimates ever err" if estimated else "as lowered"
    raise ExportError(f"the model does not fit board {board.name} ({what}): " + "; ".join(over) + f"; {hint}. "
                      f"`acom plan --checkpoint CHECKPOINT --board {board.name}` lists every cut and n_q")


def _check_estimate(board: Board, split, n_q: int, window: int) -> None:
    """Refuse in seconds, before lowering, a configuration whose estimated footprint is over budget by more than
    the estimates' spread (export/footprint.py): it cannot fit; anything closer is lowered and measured."""
    from acom.export.census import census
    from acom.export.footprint import footprint, sure_over
    c = census(split, n_q, window, board.frontend == "graph")[(split.split_layer, n_q)]
    fp = footprint(board, c)
    if sure_over(board, fp):
        _check_fit(board, fp.ram, fp.flash, split, n_q, window, estimated=True)


def export(opts: ExportOptions) -> Manifest:
    """Run every stage; returns the manifest written to ``opts.out``."""
    board = load_board(opts.board)
    stage = _Stages(opts.log)
    with stage("load"):
        split, payload, ckpt_path = _load(opts)
        task = payload["task"]
    out = Path(opts.out) if opts.out else default_out(board.name, task)
    if out.exists() and not opts.force:  # before any work, not after minutes of it
        raise ExportError(f"{out} exists; choose another --out or pass --force to replace it")
    stages = 0 if split.rvq is None else len(split.rvq.config.codebook_sizes)
    if stages and opts.n_q is not None and not 1 <= opts.n_q <= stages:
        raise ExportError(f"--n-q {opts.n_q}: this model has 1..{stages} quantizer stages")
    frontend_in_graph = board.frontend == "graph"
    float_split, qat = split, None
    if opts.qat:
        data = _data_root(opts, task)
        with stage("quantization-aware fine-tuning"):
            from acom.corpora.featcache import cached_features
            from acom.export.qat import qat_finetune
            float_split = copy.deepcopy(split)  # the float model the result is judged against
            train = cached_features(task, "train", split.model.frontend.cfg.n_mels, root=data, progress=False)
            qat = qat_finetune(split, train, opts.n_q or 1, epochs=opts.qat_epochs, progress=False)
    with stage("edge graph"):
        graph = EdgeGraph(split, opts.n_q or 1, frontend=frontend_in_graph).eval()
        # a window holds whole code frames: the board's window rounded up to them (a 1 s window at 2.5 code
        # frames/s would end inside a pooled frame, which the graph would pad)
        spc = int(round(graph.frontend.cfg.sample_rate / split.frame_rate))  # samples per code frame
        window = math.ceil(board.window_s * split.frame_rate - 1e-9) * spc
        spec = graph.spec(window)
        macs = edge_macs_per_second(graph)
        need = _check_budget(board, macs, frontend_in_graph)
        _check_estimate(board, split, graph.n_q, window)
    data = _data_root(opts, task)  # after the checks that refuse in seconds
    with stage("calibration data"):
        calib_items = _dataset_items(task, data, "train", opts.calibration_windows)
        calib = verify.make_windows(graph, calib_items, window, spc)
        calibration = [torch.from_numpy(x) for x in calib.inputs[: opts.calibration_windows]]
        test_items = _dataset_items(task, data, TASKS[task].test_subset, opts.verify_items or TASKS[task].verify_items)
        windows = verify.make_windows(graph, test_items, window, spc)
    example = graph.example_input(window)
    artifacts: list[Artifact] = []
    for runtime in board.runtimes:
        with stage(f"quantize + lower ({runtime})"):
            artifacts.extend(_lower(runtime, graph, example, calibration, board, artifacts, opts.verbose))
    ram, flash = _footprint(board, artifacts)
    _check_fit(board, ram, flash, split, graph.n_q, window)  # before minutes of verification
    with stage("verify"):
        float_graph = graph if float_split is split else EdgeGraph(float_split, graph.n_q, frontend_in_graph).eval()
        # Codes are compared on the frames of real audio: the zero padding of each item's last window is
        # never sent, and its constant input makes one near-tie that flips all padded frames together.
        float_codes = verify.item_codes(verify.run(verify.torch_runner(float_graph), windows), windows)
        float_metric = verify.task_metric(split, float_codes, windows.targets)
        checks = []
        for art in artifacts:
            if not art.checked:
                continue
            codes = verify.item_codes(verify.run(art.runner, windows), windows)
            ref = verify.item_codes(verify.run(art.reference, windows), windows)
            metric = verify.task_metric(split, codes, windows.targets)
            checks.append({"artifact": art.name, "runtime": art.runtime,
                           "agreement_vs_quantized_reference": verify.agreement(codes, ref),
                           "agreement_vs_float": verify.agreement(codes, float_codes),
                           "metric": metric,
                           "metric_loss_points": verify.metric_loss_points(task, metric, float_metric)})
            if art.quantized is not None:  # the same graph with float rounding: what the integer arithmetic changes
                fake = verify.item_codes(verify.run(verify.torch_runner(art.quantized), windows), windows)
                checks[-1]["agreement_vs_fake_quant_reference"] = verify.agreement(codes, fake)
    return _finish(opts, board, out, split, payload, ckpt_path, graph, spec, macs, need, artifacts, checks,
                   float_metric, windows, stage, data, qat, (ram, flash))


def _lower(runtime: str, graph: EdgeGraph, example: torch.Tensor, calibration: list[torch.Tensor], board: Board,
           done: list[Artifact], verbose: bool = False) -> list[Artifact]:
    """The artifacts of one runtime of the board (the int8 .tflite is shared by LiteRT, TFLM and vela)."""
    if runtime == "executorch-xnnpack":
        from acom.export import executorch as et
        quantized = et.quantize(graph, example, calibration)
        pte = et.lower(quantized, example)
        with _native_output_hidden(verbose):  # the runtime's first start logs its CPU probing from C++
            runner = et.PteRunner(pte)
        reference, snapped = snap_biases(quantized)
        return [Artifact("edge.pte", pte, runtime, lambda xs: [runner(x) for x in xs], verify.torch_runner(reference),
                         {"portable_ops": et.delegated_ops(pte), **et.planned_memory(pte),
                          "reference_biases_on_int32_grid": snapped})]
    from acom.export import litert
    shared = next((a for a in done if a.save and a.runtime in ("litert", "tflite-micro")), None)
    new = []
    if shared is None:
        with _native_output_hidden(verbose):  # loading the converter logs TensorFlow's oneDNN setting from C++
            import litert_torch  # noqa: F401
        quantized = litert.quantize(graph, example, calibration)
        model = litert.convert(quantized, example)
        # Verified with LiteRT's builtin kernels (the default XNNPACK delegate rounds differently; its agreement is
        # reported) against the quantized graph run in those kernels' integer arithmetic; TFLite Micro, below,
        # against the same graph in its reference kernels' arithmetic (export/tflite_reference.py).
        name = "edge.tflite" if board.kind == "linux" else "edge_int8.tflite"
        facts = {"ops": dict(Counter(litert.tflite_ops(model))), "kernels": "builtin (no delegate)",
                 "reference_arithmetic": "tflite-integer (litert builtin kernels)"}
        if board.kind == "linux":
            xs = [x.numpy() for x in calibration[:4]]
            with _native_output_hidden(verbose):  # LiteRT logs "Created TensorFlow Lite XNNPACK delegate"
                delegate = litert.run_litert(model, xs, xnnpack=True)
            facts["agreement_xnnpack_delegate_vs_builtin"] = verify.agreement(delegate, litert.run_litert(model, xs))
        shared = Artifact(name, model, "litert", lambda xs: litert.run_litert(model, xs),
                          tflite_runner(quantized, "litert"), facts, quantized=quantized)
        new.append(shared)
    if runtime == "litert":
        return new
    if runtime == "tflite-micro":
        from acom.export import micro
        arena = tflm_arena_or_explain(shared.data, example.numpy(), board.name)
        # On a board without LiteRT the file is saved as the TFLM artifact, checked there alone.
        facts = {**shared.facts, "arena_bytes": arena,
                 "reference_arithmetic": "tflite-integer (tflm reference kernels)"}
        return [Artifact(shared.name, shared.data, runtime, lambda xs: micro.run_tflm(shared.data, xs)[0],
                         tflite_runner(shared.quantized, "tflm"), facts, save=bool(new), quantized=shared.quantized)]
    if runtime == "ethos-u-vela":
        import tempfile

        from acom.export import micro
        if board.npu is None:
            raise ExportError(f"board {board.name} lists ethos-u-vela but has no [npu] table")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "edge_int8.tflite"
            src.write_bytes(shared.data)
            summary = micro.run_vela(src, Path(tmp) / "vela", board.npu.accelerator, board.npu.system_config,
                                     board.npu.memory_mode)
            vela_model = Path(summary.pop("vela_model")).read_bytes()
        return [Artifact("edge_int8_vela.tflite", vela_model, runtime, shared.runner, shared.reference,
                         {"vela": summary}, checked=False)]
    raise ExportError(f"board {board.name}: runtime {runtime!r} has no exporter")


def tflm_arena_or_explain(model: bytes, example: np.ndarray, board: str) -> int:
    """Run ``model`` once in TFLite Micro and return its arena bytes; an operator TFLM lacks is an ExportError
    that names it and where it sits in the graph."""
    import re

    from acom.export import litert, micro
    result: dict = {}

    def attempt() -> None:
        try:
            result["arena"] = micro.run_tflm(model, [example])[1]
        except ExportError:
            raise
        except Exception as e:  # "failed to allocate tensors"; the reason is in TFLM's log on stderr
            result["error"] = e

    log = micro.captured_output(attempt)
    if "error" in result:
        e = result["error"]
        text = f"{log} {e}"
        found = re.search(r"opcode '?([A-Z0-9_]+)'?", text) or re.search(r"\b([A-Z][A-Z0-9_]{2,})\b", text)
        ops = litert.tflite_ops(model)
        if found and found.group(1) in ops:
            name = found.group(1)
            where = [i for i, op in enumerate(ops) if op == name]
            i = where[0]
            context = f"after {ops[i - 1]}" if i else "first"
            raise ExportError(
                f"board {board}: TFLite Micro cannot run operator {name} (operator {i + 1} of {len(ops)} in the "
                f"edge graph, {context}; {len(where)} such operator(s) in all). Rewrite that layer with operators "
                f"TFLM has, or export for a Linux board") from e
        raise ExportError(f"board {board}: TFLite Micro failed to run the edge graph: {text.strip()[:400]}") from e
    return result["arena"]


def _finish(opts, board, out, split, payload, ckpt_path, graph, spec, macs, need, artifacts, checks,  # noqa: PLR0913
            float_metric, windows, stage, data, qat, footprint: tuple[int, int]) -> Manifest:
    task, rvq = split.model.task, split.rvq
    failures = []
    for c in checks:
        low = [f"stage {i + 1}: {a:.2%}" for i, a in enumerate(c["agreement_vs_quantized_reference"])
               if a < CODE_AGREEMENT_MIN]
        if low:
            failures.append(f"{c['artifact']} code agreement below {CODE_AGREEMENT_MIN:.0%} with its int8 PyTorch "
                            f"reference ({', '.join(low)})")
        if c["metric_loss_points"] > METRIC_LOSS_MAX:
            failures.append(f"{c['artifact']} {TASKS[task].unit.removesuffix(' %')} {c['metric_loss_points']:.2f} "
                            f"points worse than the float model's (at most {METRIC_LOSS_MAX} allowed)")
    passed = not failures
    if failures and not opts.keep_failed:
        hint = "" if opts.qat else "; --qat fine-tunes the edge part for int8 first"
        raise ExportError("verification failed: " + "; ".join(failures) +
                          f". Nothing was written; --keep-failed writes the bundle anyway (marked failed){hint}")
    ram, flash = footprint
    files = {a.name: a.data for a in artifacts if a.save}
    for a in artifacts:
        files.update(a.extra_files)
    if board.kind == "mcu":
        from acom.export import micro
        tflm = next(a for a in artifacts if a.runtime == "tflite-micro")
        meta = {"codebook_hash": rvq.codebook_hash(), "frame_rate_hz": split.frame_rate,
                "codebook_sizes": list(rvq.config.codebook_sizes[: graph.n_q]),
                "sample_rate": graph.frontend.cfg.sample_rate, "window_samples": spec.window_samples,
                "arena_bytes": tflm.facts["arena_bytes"]}
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for path in micro.write_c_sources(tflm.data, Path(tmp), meta=meta):
                files[f"c/{path.name}"] = path.read_bytes()
        from acom.codes.priors import CodePriors
        priors = CodePriors.from_tensors(payload["priors"]) if "priors" in payload else None
        c_graph = _c_graph_files(board, tflm.data, {"runs_in": board.frontend, **graph.frontend.cfg.to_dict(),
                                                    "feature_mean": graph.feat_mean.flatten().tolist(),
                                                    "feature_std": graph.feat_std.flatten().tolist()},
                                 priors, graph.n_q)
        files.update(c_graph["files"])
    elif "priors" in payload:  # acom-edge's range coder reads its tables in place
        from acom.codes.priors import CodePriors
        from acom.export.c_priors import binary_tables
        files["edge_priors.bin"] = binary_tables(CodePriors.from_tensors(payload["priors"]), graph.n_q)
    fe = graph.frontend.cfg
    sizes = list(rvq.config.codebook_sizes[: graph.n_q])
    manifest = Manifest(
        task=task, board=board.name, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        checkpoint={"path": str(ckpt_path), "sha256": sha256(Path(ckpt_path).read_bytes()),
                    "command": payload.get("command")},
        codebook_hash=rvq.codebook_hash(), frame_rate=split.frame_rate, n_q=graph.n_q, codebook_sizes=tuple(sizes),
        nominal_bps=nominal_bps(split.frame_rate, sizes), sample_rate=fe.sample_rate,
        frontend=FrontEnd(board.frontend, fe.to_dict(), tuple(graph.feat_mean.flatten().tolist()),
                          tuple(graph.feat_std.flatten().tolist())),
        graph=GraphSpec(tuple(spec.input_shape), tuple(spec.codes_shape), spec.window_samples),
        artifacts=tuple(ManifestArtifact(a.name, a.runtime, a.checked, a.facts) for a in artifacts),
        c_graph=CGraph.from_dict(c_graph["note"], "c_graph") if board.kind == "mcu" else None,
        verification=Verification(passed, tuple(failures), {
            "data": str(data), "test_subset": TASKS[task].test_subset, "items": len(windows.targets),
            "windows": len(windows.inputs), "float_metric": float_metric,
            "thresholds": {"code_agreement_min": CODE_AGREEMENT_MIN, "metric_loss_max_points": METRIC_LOSS_MAX},
            "checks": checks}),
        costs={"macs_per_s": {k: round(v) for k, v in macs.items()}, "macs_per_s_on_device": round(need),
               "peak_memory_bytes": ram, "model_flash_bytes": flash},
        model=ModelSpec(config_dict(split.model), split.split_layer,
                        {**vars(rvq.config), "codebook_sizes": list(rvq.config.codebook_sizes)}),
        priors="priors.safetensors" if "priors" in payload else None,
        extra={"qat": qat, "stage_seconds": stage.times})
    if manifest.c_graph is not None and manifest.c_graph.written:
        with stage("firmware"):
            from acom.export.firmware import bundle_firmware
            firmware, built = bundle_firmware(opts.board, manifest, files)
            manifest = replace(manifest, firmware=firmware)
            files.update(built)
    tensors = {"tail.safetensors": tail_state(split)}
    if "priors" in payload:
        tensors["priors.safetensors"] = priors_tensors(payload["priors"])
    with stage("bundle"):
        manifest = write_bundle(out, files, tensors, manifest, force=opts.force)
    return replace(manifest, extra={**manifest.extra, "stage_seconds": stage.times, "out": str(out)})


def _footprint(board: Board, artifacts: list[Artifact]) -> tuple[int, int]:
    """(RAM, flash) bytes the model needs on the board: the largest over the artifacts the board runs."""
    if board.kind == "mcu":
        tflm = next(a for a in artifacts if a.runtime == "tflite-micro")
        ram, flash = tflm.facts["arena_bytes"], len(tflm.data)
        vela = next((a for a in artifacts if a.runtime == "ethos-u-vela"), None)
        if vela is not None:  # the NPU build replaces the CPU one: its SRAM and flash are what the board holds
            ram, flash = vela.facts["vela"]["sram_bytes"], len(vela.data)
        return int(ram), int(flash)
    ram = max(a.facts.get("planned_memory_bytes", 0) for a in artifacts)
    return int(ram), int(max(len(a.data) for a in artifacts))
