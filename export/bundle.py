"""The export bundle: artifacts + manifest.json + server tail + entropy-coder priors, written atomically.

Layout (``SCHEMA_VERSION`` 1):
    manifest.json        what the device sends and how it was checked (see docs/export.md)
    tail.safetensors     weights of the server half (quantizer codebooks, blocks after the cut, head)
    priors.safetensors   per-stage code statistics for the entropy coder
    <artifacts>          edge.pte, edge.tflite, edge_int8.tflite, vela/, c/ ... per board
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from acom.errors import ExportError
from acom.training.models import build_model
from acom.training.rvq import ResidualVQ, RVQConfig
from acom.training.split import SplitModel

SCHEMA_VERSION = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tail_state(split: SplitModel) -> dict[str, torch.Tensor]:
    """State of the server half: everything but the blocks up to the cut (the device runs those)."""
    edge = tuple(f"model.blocks.{i}." for i in range(split.split_layer + 1))
    return {k: v.detach().contiguous().clone() for k, v in split.state_dict().items() if not k.startswith(edge)}


def priors_tensors(priors: dict) -> dict[str, torch.Tensor]:
    """The checkpoint's priors as tensors only (scalars become 0-d tensors) for safetensors."""
    return {k: (v if isinstance(v, torch.Tensor) else torch.tensor(v)).contiguous() for k, v in priors.items()}


def load_tail(bundle: Path) -> SplitModel:
    """The server half of a bundle (rebuilt from the manifest and tail.safetensors), for ServerDecoder."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    m = manifest["model"]
    split = SplitModel(build_model(manifest["task"], m["config"]), m["split_layer"],
                       ResidualVQ(RVQConfig(**{**m["rvq_config"], "codebook_sizes": tuple(m["rvq_config"]
                                                                                          ["codebook_sizes"])})))
    state = load_file(str(bundle / "tail.safetensors"))
    missing, unexpected = split.load_state_dict(state, strict=False)
    edge = tuple(f"model.blocks.{i}." for i in range(m["split_layer"] + 1))
    if unexpected or any(not k.startswith(edge) for k in missing):
        raise ExportError(f"{bundle / 'tail.safetensors'}: weights do not fit the model in the manifest "
                          f"(missing {[k for k in missing if not k.startswith(edge)][:5]}, unexpected {unexpected[:5]})")
    return split.eval()


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: not a readable bundle manifest ({e})") from e
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{path}: schema_version {manifest.get('schema_version')!r} is not supported "
                          f"(expected {SCHEMA_VERSION})")
    return manifest


def write_bundle(out: Path, files: dict[str, bytes], tensors: dict[str, dict[str, torch.Tensor]],
                 manifest: dict, force: bool = False) -> dict:
    """Write everything to a temporary folder beside ``out``, then rename it into place.

    ``files``: relative path -> bytes (listed in the manifest with SHA-256 and size); ``tensors``: relative
    path -> tensors saved as safetensors. Never leaves a partly written bundle at ``out``. Returns the
    manifest as written (with ``files``).
    """
    out = Path(out)
    if out.exists() and not force:
        raise ExportError(f"{out} exists; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        listed = {}
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            listed[rel] = {"sha256": sha256(data), "bytes": len(data)}
        for rel, state in sorted(tensors.items()):
            save_file(state, str(tmp / rel))
            data = (tmp / rel).read_bytes()
            listed[rel] = {"sha256": sha256(data), "bytes": len(data)}
        manifest = {**manifest, "files": listed}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
