"""The server's tail as ONNX, checked against the PyTorch ``ServerDecoder`` with onnxruntime, and an NVIDIA
Triton model repository of it (one model per number of quantizer stages).

One ONNX model serves one ``n_q``: ``rvq.decode`` loops over the stages in Python, so the count is fixed when
the graph is traced. Batch and time stay dynamic (``torch.export.Dim``). Exported with the ``torch.export``
based exporter (``dynamo=True``): it checks that nothing specializes B or T (the legacy TorchScript tracer
would silently bake a traced shape into a constant) and the legacy exporter is deprecated. It costs ~25 s per
ASR model on a CPU (the symbolic-shape decomposition), against ~1 s for the legacy tracer.

Graph I/O (names are the contract with Triton clients):
    codes        int64 [B, n_q, T]   stage-major codes, 0..K_s-1; frames at or beyond ``lengths`` are padding
    lengths      int64 [B]           valid frames per item
    log_probs    float32 [B, T, V]   ASR: CTC log-probabilities (blank 0, ``CharVocab``)
    out_lengths  int64 [B]           ASR: valid output frames
    logits       float32 [B, C]      AC: class logits
Layout of the repository and the batching rules: docs/triton.md.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch
from torch import nn

from acom.codes.budget import nominal_bps
from acom.core.tasks import TASKS
from acom.errors import ExportError
from acom.runtime.bundle import Bundle

OPSET = 18  # ONNX Runtime 1.14 or newer runs it, so older Triton releases too (the exporter's default is 20)
TOLERANCE = 1e-3  # max |onnxruntime - torch| on log-probs / logits; measured diffs are ~1e-5 (see docs/triton.md)
INPUTS = ("codes", "lengths")
# (batch, seconds) of the checks: one short and one long item alone, then padded batches of mixed lengths
DEFAULT_CASES = ((1, 0.4), (1, 4.0), (3, 2.0), (6, 6.0))


class OnnxTail(nn.Module):
    """``ServerDecoder`` for exactly ``n_q`` stages: (codes [B, n_q, T], lengths [B]) -> task output.

    The same modules and the same arithmetic as ``ServerDecoder``, without the code-range check of
    ``rvq.decode`` (a data-dependent branch cannot be exported; ``wire.packet_codes`` already rejects codes
    outside 0..K-1; ONNX Gather would wrap a negative one around) and with the output lengths returned for ASR.
    """

    def __init__(self, bundle: Bundle, n_q: int) -> None:
        super().__init__()
        self.split, self.n_q = bundle.split, check_n_q(bundle, n_q)

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        split, m = self.split, self.split.model
        x = None
        for i in range(self.n_q):
            stage = split.rvq.stages[i]
            part = stage.out_proj(stage.lookup(codes[:, i]))
            x = part if x is None else x + part
        x, lengths = split.rvq.unpool(x), lengths * split.time_pool  # tail frames
        x, out_lengths = m.run_blocks(x, lengths, split.split_layer + 1, len(m.blocks))
        out = m.head_forward(x, out_lengths)
        return (out, out_lengths) if TASKS[m.task].sequence else (out,)


def check_n_q(bundle: Bundle, n_q: int) -> int:
    """``n_q`` if the bundle's quantizer has that many stages, else ExportError naming the allowed range."""
    n = len(bundle.codebook_sizes)
    if not isinstance(n_q, int) or not 1 <= n_q <= n:
        raise ExportError(f"n_q {n_q!r}: this {bundle.task} bundle's quantizer has 1..{n} stages")
    return n_q


def export_tail_onnx(bundle: Bundle, out_path: Path, n_q: int) -> Path:
    """Write the tail for codes of ``n_q`` stages to ``out_path`` (one self-contained .onnx file).

    Inputs ``codes`` int64 [B, n_q, T], ``lengths`` int64 [B]; outputs ``log_probs`` [B, T, V] and
    ``out_lengths`` [B] (ASR) or ``logits`` [B, classes] (AC); B and T dynamic. The bundle's codebook hash,
    task, n_q, frame rate and codebook sizes go into the model's metadata (``custom_metadata_map``).
    """
    tail = OnnxTail(bundle, n_q).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(8, int(round(2 * bundle.frame_rate)))  # example input only: every shape stays symbolic
    codes = torch.zeros(2, n_q, frames, dtype=torch.int64)
    lengths = torch.tensor([frames, frames - 3], dtype=torch.int64)
    batch, time_ = torch.export.Dim("batch", min=1), torch.export.Dim("frames", min=1)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation and tracing chatter, none about this model
            torch.onnx.export(tail, (codes, lengths), str(out_path), dynamo=True, opset_version=OPSET,
                              input_names=list(INPUTS), output_names=list(TASKS[bundle.task].outputs),
                              dynamic_shapes={"codes": {0: batch, 2: time_}, "lengths": {0: batch}},
                              external_data=False, verbose=False)
    except Exception as e:  # the exporter raises many types; say which model failed and why
        raise ExportError(f"ONNX export of the {bundle.task} tail (n_q={n_q}) failed: {type(e).__name__}: {e}") from e
    model = onnx.load(str(out_path))
    onnx.helper.set_model_props(model, tail_metadata(bundle, n_q))
    onnx.save(model, str(out_path))
    return out_path


def tail_metadata(bundle: Bundle, n_q: int) -> dict[str, str]:
    """What a client checks before sending codes to a model (ONNX metadata and Triton parameters)."""
    return {"acom_task": bundle.task, "codebook_hash": bundle.manifest.codebook_hash, "n_q": str(n_q),
            "frame_rate": f"{bundle.frame_rate:g}",
            "codebook_sizes": ",".join(map(str, bundle.codebook_sizes[:n_q]))}


def pad_batch(items: Sequence[np.ndarray], bucket: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Stack codes of several streams, each [n_q, T_i] (as ``wire.packet_codes`` returns them, concatenated),
    into codes int64 [B, n_q, T] and lengths int64 [B], T = max T_i rounded up to a multiple of ``bucket``.

    Padding frames hold code 0. Requests padded to the same T can be batched by Triton (docs/triton.md).
    """
    if not items or bucket < 1:
        raise ExportError(f"pad_batch needs at least one item and bucket >= 1 (got {len(items)} items, "
                          f"bucket {bucket})")
    n_q = {np.shape(a)[0] if np.ndim(a) == 2 else None for a in items}
    if len(n_q) != 1 or None in n_q:
        raise ExportError(f"codes must all be [n_q, T] with the same n_q, got shapes {[np.shape(a) for a in items]}")
    lengths = np.array([np.shape(a)[1] for a in items], dtype=np.int64)
    t = max(bucket, -(-int(lengths.max()) // bucket) * bucket)
    codes = np.zeros((len(items), n_q.pop(), t), dtype=np.int64)
    for i, a in enumerate(items):
        codes[i, :, : a.shape[1]] = a
    return codes, lengths


def _random_items(bundle: Bundle, n_q: int, batch: int, seconds: float, rng: np.random.Generator
                  ) -> list[np.ndarray]:
    """``batch`` random code sequences of the stage sizes; the first is ``seconds`` long, the rest 50-100%."""
    frames = max(1, int(round(seconds * bundle.frame_rate)))
    sizes = np.array(bundle.codebook_sizes[:n_q])[:, None]
    lengths = [frames] + [int(rng.integers(max(1, frames // 2), frames + 1)) for _ in range(batch - 1)]
    return [(rng.random((n_q, t)) * sizes).astype(np.int64) for t in lengths]


def _reference(bundle: Bundle, codes: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """What the PyTorch server computes: ``ServerDecoder`` output and (ASR) the blocks' output lengths."""
    split = bundle.split
    with torch.no_grad():
        out = split.server()(torch.from_numpy(codes), torch.from_numpy(lengths)).numpy()
    if not TASKS[bundle.task].sequence:
        return [out]
    t, lens = codes.shape[2] * split.time_pool, torch.from_numpy(lengths) * split.time_pool
    for block in split.model.blocks[split.split_layer + 1:]:
        t = -(-t // block.stride)
        lens = block.out_lengths(lens).clamp(max=t)
    return [out, lens.numpy()]


def _compare(task: str, got: list[np.ndarray], ref: list[np.ndarray], lengths: np.ndarray) -> dict:
    """Max |onnx - torch| and argmax agreement (over valid frames for ASR, over items for AC)."""
    out, ref_out = got[0], ref[0]
    row = {"max_abs_diff": float(np.abs(out - ref_out).max()) if out.size else 0.0}
    same = out.argmax(-1) == ref_out.argmax(-1)  # [B, T] (ASR) or [B] (AC)
    if TASKS[task].sequence:
        valid = np.arange(out.shape[1])[None, :] < lengths[:, None]
        row["argmax_agreement"] = float(same[valid].mean()) if valid.any() else 1.0
        row["out_lengths_equal"] = bool(np.array_equal(got[1], ref[1]))
    else:
        row["argmax_agreement"] = float(same.mean())
    return row


def check_tail_onnx(bundle: Bundle, onnx_path: Path, n_q: int, *, cases: Sequence[tuple[int, float]] = DEFAULT_CASES,
                    seed: int = 0, providers: Sequence[str] = ("CPUExecutionProvider",)) -> dict:
    """Run the ONNX tail in onnxruntime and ``ServerDecoder`` on the same random codes; return the numbers.

    ``cases``: (batch, seconds) pairs; a batch of more than one is padded (the first item is the longest).
    Returns ``{task, n_q, onnx, providers, cases: [{batch, frames, lengths, max_abs_diff, argmax_agreement,
    (ASR) out_lengths_equal}], max_abs_diff, argmax_agreement (the worst case), (ASR) out_lengths_equal}``.
    """
    check_n_q(bundle, n_q)
    import onnxruntime as ort  # optional: only `acom triton` checks its export with it

    sess = ort.InferenceSession(str(onnx_path), providers=list(providers))
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    if set(shapes) != set(INPUTS) or shapes["codes"][1] != n_q:
        raise ExportError(f"{onnx_path}: inputs {shapes} are not codes [B, {n_q}, T] and lengths [B]")
    rng, rows = np.random.default_rng(seed), []
    for batch, seconds in cases:
        codes, lengths = pad_batch(_random_items(bundle, n_q, batch, seconds, rng))
        got = sess.run(list(TASKS[bundle.task].outputs), {"codes": codes, "lengths": lengths})
        rows.append({"batch": batch, "frames": int(codes.shape[2]), "lengths": lengths.tolist(),
                     **_compare(bundle.task, got, _reference(bundle, codes, lengths), lengths)})
    result = {"task": bundle.task, "n_q": n_q, "onnx": str(onnx_path), "providers": list(providers), "cases": rows,
              "max_abs_diff": max(r["max_abs_diff"] for r in rows),
              "argmax_agreement": min(r["argmax_agreement"] for r in rows)}
    if TASKS[bundle.task].sequence:
        result["out_lengths_equal"] = all(r["out_lengths_equal"] for r in rows)
    return result


def check_failures(check: dict, tolerance: float = TOLERANCE) -> list[str]:
    """What is wrong with a ``check_tail_onnx`` result (empty: it passed)."""
    failures = []
    if not check["max_abs_diff"] <= tolerance:  # also catches NaN
        failures.append(f"n_q={check['n_q']}: max |onnxruntime - torch| {check['max_abs_diff']:.3g} exceeds "
                        f"the tolerance {tolerance:g}")
    if check.get("out_lengths_equal") is False:
        failures.append(f"n_q={check['n_q']}: out_lengths differ from torch")
    return failures


# --- Triton model repository ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TritonSettings:
    """How Triton serves each tail model (written into its config.pbtxt)."""

    max_batch_size: int = 32  # items per batch; attention is [B, 4, T, T] floats: 1.2 GB for 32 x 60 s of ASR
    max_queue_delay_microseconds: int = 2000  # how long the dynamic batcher waits for more same-shape requests
    instance_kind: str = "KIND_GPU"  # or "KIND_CPU": the same model.onnx runs on either
    instance_count: int = 1  # model instances per GPU (or on the CPU)

    def __post_init__(self) -> None:
        if self.instance_kind not in ("KIND_GPU", "KIND_CPU"):
            raise ExportError(f"instance_kind {self.instance_kind!r}: allowed KIND_GPU, KIND_CPU")
        if self.max_batch_size < 1 or self.max_queue_delay_microseconds < 0 or self.instance_count < 1:
            raise ExportError(f"{self}: max_batch_size and instance_count must be >= 1, the delay >= 0")


def model_name(task: str, n_q: int) -> str:
    return f"acom_{task}_tail_nq{n_q}"


def _io_block(name: str, dtype: str, dims: Sequence[int], per_item_scalar: bool = False) -> str:
    reshape = "\n    reshape: { shape: [ ] }" if per_item_scalar else ""
    return (f"  {{\n    name: \"{name}\"\n    data_type: {dtype}\n    dims: [ {', '.join(map(str, dims))} ]"
            f"{reshape}\n  }}")


def triton_config(bundle: Bundle, n_q: int, settings: TritonSettings = TritonSettings()) -> str:
    """config.pbtxt (Triton ModelConfig in protobuf text) of the tail model for ``n_q`` stages.

    ``max_batch_size`` > 0, so every dims below leaves out the batch dimension; ``lengths`` and
    ``out_lengths`` are [B] in the model, [B, 1] on the wire (the ``reshape`` idiom: dims may not be empty).
    """
    inputs = [_io_block("codes", "TYPE_INT64", [n_q, -1]),
              _io_block("lengths", "TYPE_INT64", [1], per_item_scalar=True)]
    if TASKS[bundle.task].sequence:
        vocab = bundle.split.model.config.vocab_size
        outputs = [_io_block("log_probs", "TYPE_FP32", [-1, vocab]),
                   _io_block("out_lengths", "TYPE_INT64", [1], per_item_scalar=True)]
    else:
        outputs = [_io_block("logits", "TYPE_FP32", [bundle.split.model.config.num_classes])]
    params = "\n".join(f"parameters {{\n  key: \"{k}\"\n  value: {{ string_value: \"{v}\" }}\n}}"
                       for k, v in tail_metadata(bundle, n_q).items())
    return "\n".join([
        f"# acom {bundle.task} tail for codes of {n_q} stage(s); written by `acom triton` (docs/triton.md)",
        f"name: \"{model_name(bundle.task, n_q)}\"", "platform: \"onnxruntime_onnx\"",
        f"max_batch_size: {settings.max_batch_size}",
        "input [\n" + ",\n".join(inputs) + "\n]", "output [\n" + ",\n".join(outputs) + "\n]",
        "# Triton batches only requests whose codes have the same T: pad to a bucket (see README.md)",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {settings.max_queue_delay_microseconds}\n}}",
        "# KIND_CPU works too (the same model.onnx, onnxruntime's CPU provider)",
        f"instance_group [\n  {{\n    count: {settings.instance_count}\n    kind: {settings.instance_kind}\n  }}\n]",
        params, ""])


def _readme(bundle: Bundle, models: list[dict], settings: TritonSettings) -> str:
    sizes, rate = bundle.codebook_sizes, bundle.frame_rate
    rows = "\n".join(f"| `{m['name']}` | {m['n_q']} | {list(sizes[: m['n_q']])} | "
                     f"{nominal_bps(rate, sizes[: m['n_q']]):.0f} |" for m in models)
    out = ("`log_probs` FP32 [b, T, V] (CTC, blank 0) and `out_lengths` INT64 [b, 1]" if TASKS[bundle.task].sequence
           else "`logits` FP32 [b, classes]")
    return f"""# acom {bundle.task} tail: Triton model repository

Made by `acom triton` from the bundle `{bundle.path}`. Serve with `tritonserver --model-repository .`.

- codebook hash: `{bundle.manifest.codebook_hash}` (packets carry its first 8 bytes as `codebook_id`;
  each model's config.pbtxt repeats it as the parameter `codebook_hash`)
- frame rate: {rate:g} frames/s; codebook sizes: {list(sizes)}; task: {bundle.task}

| model | n_q | K per stage | bit/s (bit-packed) |
|---|---|---|---|
{rows}

## Packing inputs

Decode a stream's packets with `acom.runtime.wire.packet_codes` (each [n_q, n_frames]), concatenate them along
frames in `first_frame` order, and send them to the model of that n_q (if a stream's packets differ in n_q, keep
the smallest n_q's stages of every packet). One request holds b items (b <= {settings.max_batch_size}):

- `codes` INT64 [b, n_q, T]: stage-major codes, 0..K-1; frames beyond an item's length are padding (code 0)
- `lengths` INT64 [b, 1]: valid frames per item

Outputs: {out}. Triton batches only requests of equal T: pad T up to a bucket (e.g. a multiple of
{int(rate)} frames, `acom.runtime.onnx_tail.pad_batch`). Padding is masked in attention and pooling, but each
block's convolution reads 2 frames ahead, into the padding: an item's last frames (ASR: 2 per block after the
cut) and its logits (AC) change measurably, exactly as in the PyTorch server. Send exact T (no padding) where
results must equal an unpadded run; requests of equal T still batch.
"""


def build_triton_repository(bundle: Bundle, repo_dir: Path, n_q_values: Sequence[int] | None = None,
                            settings: TritonSettings = TritonSettings()) -> dict:
    """Export every model into ``repo_dir`` (new or empty): ``<name>/config.pbtxt``, ``<name>/1/model.onnx``
    and ``README.md``. Returns ``{repository, task, codebook_hash, frame_rate, codebook_sizes, models: [{name,
    n_q, onnx, config, export_s}]}``."""
    values = sorted({check_n_q(bundle, n) for n in (n_q_values or range(1, len(bundle.codebook_sizes) + 1))})
    repo_dir = Path(repo_dir)
    models = []
    for n_q in values:
        name = model_name(bundle.task, n_q)
        t0 = time.perf_counter()
        onnx_path = export_tail_onnx(bundle, repo_dir / name / "1" / "model.onnx", n_q)
        export_s = time.perf_counter() - t0
        config = repo_dir / name / "config.pbtxt"
        config.write_text(triton_config(bundle, n_q, settings))
        models.append({"name": name, "n_q": n_q, "onnx": str(onnx_path), "config": str(config),
                       "export_s": round(export_s, 2)})
    (repo_dir / "README.md").write_text(_readme(bundle, models, settings))
    return {"repository": str(repo_dir), "task": bundle.task, "codebook_hash": bundle.manifest.codebook_hash,
            "frame_rate": bundle.frame_rate, "codebook_sizes": list(bundle.codebook_sizes), "models": models}


def check_out(out: Path, force: bool) -> None:
    """ExportError if ``out`` exists and may not be replaced."""
    if Path(out).exists() and not force:
        raise ExportError(f"{out} exists; choose another --out or pass --force to replace it")


def staging_dir(out: Path, force: bool) -> Path:
    """A fresh folder beside ``out`` to build in; ExportError if ``out`` exists and not ``force``."""
    out = Path(out)
    check_out(out, force)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(staging: Path, out: Path) -> None:
    """Rename the finished ``staging`` folder to ``out``, replacing what was there (never half written)."""
    out = Path(out)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    Path(staging).rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_triton_repository(bundle: Bundle, repo_dir: Path, n_q_values: Sequence[int] | None = None, *,
                            settings: TritonSettings = TritonSettings(), force: bool = False) -> dict:
    """``build_triton_repository`` into a folder beside ``repo_dir``, then renamed into place (default n_q
    values: 1..all stages). ExportError if ``repo_dir`` exists and not ``force``."""
    tmp = staging_dir(repo_dir, force)
    try:
        summary = build_triton_repository(bundle, tmp, n_q_values, settings)
        publish(tmp, repo_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return relocated(summary, tmp, Path(repo_dir))


def relocated(summary: dict, old: Path, new: Path) -> dict:
    """The summary with paths under ``old`` (the staging folder) rewritten to ``new``."""
    def move(p: str) -> str:
        return str(new / Path(p).relative_to(old))
    models = [{**m, "onnx": move(m["onnx"]), "config": move(m["config"])} for m in summary["models"]]
    return {**summary, "repository": str(new), "models": models}
