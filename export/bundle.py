"""The export bundle: artifacts + manifest.json + server tail + entropy-coder priors, written atomically.

Layout:
    manifest.json        what the device sends and how it was checked (``acom.runtime.manifest.Manifest``)
    tail.safetensors     weights of the server half (quantizer codebooks, blocks after the cut, head)
    priors.safetensors   per-stage code statistics for the entropy coder
    <artifacts>          edge.pte, edge.tflite, edge_int8.tflite, vela/, c/ ... per board
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from acom.core.split import SplitModel
from acom.errors import ExportError
from acom.runtime.manifest import FileEntry, FrontEnd, Manifest, ModelSpec


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tail_state(split: SplitModel) -> dict[str, torch.Tensor]:
    """State of the server half: everything but the blocks up to the cut (the device runs those). A user's
    own model (core/custom.py): its tail as a torch.export program ("programs.tail") instead of its weights."""
    edge = tuple(f"model.blocks.{i}." for i in range(split.split_layer + 1))
    custom = hasattr(split.model, "programs")
    skip = (*edge, "model.tail.") if custom else edge
    state = {k: v.detach().contiguous().clone() for k, v in split.state_dict().items() if not k.startswith(skip)}
    if custom:
        state["programs.tail"] = split.model.programs()["tail"]
    return state


def priors_tensors(priors: dict) -> dict[str, torch.Tensor]:
    """The checkpoint's priors as tensors only (scalars become 0-d tensors) for safetensors."""
    return {k: (v if isinstance(v, torch.Tensor) else torch.tensor(v)).contiguous() for k, v in priors.items()}


def _remove_stale(out: Path) -> None:
    """Remove the temporary folders of exports to ``out`` that were killed (their process is gone)."""
    for old in out.parent.glob(f".{out.name}.tmp-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)


def write_bundle(out: Path, files: dict[str, bytes], tensors: dict[str, dict[str, torch.Tensor]],
                 manifest: Manifest, force: bool = False) -> Manifest:
    """Write everything to a temporary folder beside ``out``, then rename it into place.

    ``files``: relative path -> bytes (listed in the manifest with SHA-256 and size); ``tensors``: relative
    path -> tensors saved as safetensors. Never leaves a partly written bundle at ``out``. Returns the
    manifest as written (with ``files``).
    """
    out = Path(out)
    if out.exists() and not force:
        raise ExportError(f"{out} exists; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        listed = {}
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            listed[rel] = FileEntry(sha256(data), len(data))
        for rel, state in sorted(tensors.items()):
            save_file(state, str(tmp / rel))
            data = (tmp / rel).read_bytes()
            listed[rel] = FileEntry(sha256(data), len(data))
        manifest = replace(manifest, files=listed)
        (tmp / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def write_server_bundle(checkpoint: Path, out: Path, n_q: int | None = None, force: bool = False) -> Manifest:
    """A bundle with the server's part only (no device artifacts, ``board`` null) from a split checkpoint.

    For serving codes that a reference encoder (``EdgeEncoder`` in PyTorch) or an earlier export produced,
    for tests and for load benchmarks. ``n_q``: stages the devices send (default: all trained stages).
    """
    import time

    from acom.core.checkpoint import config_dict, load_checkpoint
    split, payload = load_checkpoint(checkpoint)
    if split.rvq is None:
        raise ExportError(f"{checkpoint}: an uncut model has no codes to serve; train stage 2 (acom train) first")
    sizes = list(split.rvq.config.codebook_sizes)
    n_q = len(sizes) if n_q is None else n_q
    if not 1 <= n_q <= len(sizes):
        raise ExportError(f"--n-q {n_q}: this model has 1..{len(sizes)} quantizer stages")
    fe = split.model.frontend.cfg
    manifest = Manifest(
        task=payload["task"], board=None, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        checkpoint={"path": str(checkpoint), "sha256": sha256(Path(checkpoint).read_bytes()),
                    "command": payload.get("command")},
        codebook_hash=split.rvq.codebook_hash(), frame_rate=split.frame_rate, n_q=n_q,
        codebook_sizes=tuple(sizes[:n_q]), sample_rate=fe.sample_rate,
        frontend=FrontEnd(None, fe.to_dict(), tuple(split.model.feat_mean.flatten().tolist()),
                          tuple(split.model.feat_std.flatten().tolist())),
        model=ModelSpec(config_dict(split.model), split.split_layer, {**vars(split.rvq.config),
                                                                      "codebook_sizes": sizes}),
        priors="priors.safetensors" if "priors" in payload else None)
    tensors = {"tail.safetensors": tail_state(split)}
    if "priors" in payload:
        tensors["priors.safetensors"] = priors_tensors(payload["priors"])
    return write_bundle(out, {}, tensors, manifest, force=force)
