"""Checkpoints: plain tensors and fields only, loadable with `torch.load(weights_only=True)` (no pickled code).

A checkpoint holds the task, the model config, the cut (split layer and quantizer config, or none for the
uncut model), the weights, and whatever the stage adds: optimizer state and epoch for resuming, the
entropy-coder priors, the word language model, the metrics and the command that produced it.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from acom.core.models import build_model, config_dict, default_split_layer
from acom.core.rvq import ResidualVQ, RVQConfig
from acom.core.split import SplitModel
from acom.errors import AcomError

# the shipped demonstration models (package data): pretrained/{asr,ac}/{full,split}.pt, trained on synthetic sets
PRETRAINED = Path(__file__).resolve().parent / "pretrained"

KIND, VERSION = "acom-checkpoint", 1


def save_checkpoint(path: Path, split: SplitModel, **extra) -> None:
    """Write `split` (and `extra` plain fields/tensors) to `path` atomically."""
    m = split.model
    if hasattr(m, "programs"):  # a user's own model: its layers travel as torch.export programs (core/custom.py)
        extra = {**extra, "programs": m.programs()}
    payload = {"kind": KIND, "version": VERSION, "task": m.task, "model_config": config_dict(m),
               "split_layer": split.split_layer,
               "rvq_config": asdict(split.rvq.config) if split.rvq is not None else None,
               "state_dict": {k: v.detach().cpu() for k, v in split.state_dict().items()}, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_checkpoint(path: Path) -> dict:
    """The raw payload, checked to be an acom checkpoint of a known version."""
    path = Path(path)
    if not path.is_file():
        raise AcomError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise AcomError(f"{path}: not a readable checkpoint (corrupt, truncated, or holding pickled code): "
                        f"{str(e).splitlines()[0][:200]}") from e
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise AcomError(f"{path}: not an acom checkpoint (expected kind {KIND!r})")
    if payload.get("version") != VERSION:
        raise AcomError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    return payload


def trained_epochs(payload: dict) -> int | None:
    """Epochs of training behind a checkpoint in all: those of the model it started from (``epochs_before``,
    written by `acom train`) plus its own. A stage 1 without the field was trained from scratch (its own epochs);
    a stage 2 without it started from a model of unknown training (None)."""
    if "epochs_before" in payload:
        return None if payload["epochs_before"] is None else int(payload["epochs_before"]) + int(payload["epoch"])
    return int(payload["epoch"]) if payload.get("stage") == "full" and "epoch" in payload else None


def load_reference(path: Path, task: str) -> tuple[SplitModel, dict]:
    """The uncut model a benchmark compares cuts with (a run folder's full.pt). AcomError for a stage 1 trained
    with its cut pooled (`acom train --pool-stage1`): its accuracy is not an uncut model's."""
    split, payload = load_checkpoint(path, task)
    if payload.get("cut_pool"):
        raise AcomError(f"{path}: trained with its cut pooled (acom train --pool-stage1), a start for stage 2, not "
                        f"the uncut model to compare with (stage 2's --reference names that one)")
    return split, payload


def read_uncut(path: Path, task: str, option: str) -> dict:
    """The payload of `path`, an uncut checkpoint of `task` given as command-line `option` (AcomError naming the
    option and what the checkpoint is instead: another task's, one with a quantizer, or a pooled stage 1)."""
    payload = read_checkpoint(path)
    if payload["task"] != task or payload["rvq_config"] is not None or payload.get("cut_pool"):
        what = "a quantizer" if payload["rvq_config"] else "its cut pooled" if payload.get("cut_pool") else "uncut"
        raise AcomError(f"{option} {path}: not an uncut {task} checkpoint (task {payload['task']!r}, {what})")
    return payload


def load_checkpoint(path: Path, task: str | None = None) -> tuple[SplitModel, dict]:
    """(model, payload) from `path`; AcomError if it is for another task or its weights do not fit."""
    payload = read_checkpoint(path)
    if task is not None and payload["task"] != task:
        raise AcomError(f"{path}: checkpoint is for task {payload['task']!r}, not {task!r}")
    return model_from_payload(path, payload), payload


def model_from_payload(path: Path, payload: dict) -> SplitModel:
    """The model (eval mode) a checkpoint's payload, read from `path`, describes; AcomError naming `path` if
    its weights do not fit."""
    custom = payload["model_config"].get("kind") == "custom"
    if custom:
        from acom.core.custom import CustomModel
        if "programs" not in payload:
            raise AcomError(f"{path}: a custom model's checkpoint without its programs (field 'programs')")
        model = CustomModel.from_programs(payload["task"], payload["model_config"], payload["programs"])
    else:
        model = build_model(payload["task"], payload["model_config"])
    rvq_cfg = payload["rvq_config"]
    rvq = None
    if rvq_cfg is not None:
        rvq = ResidualVQ(RVQConfig(**{**rvq_cfg, "codebook_sizes": tuple(rvq_cfg["codebook_sizes"])}))
    split = SplitModel(model, payload["split_layer"], rvq)
    state = payload["state_dict"]
    if custom:  # the halves' weights are in their programs; the rest (normalization, quantizer) is loaded here
        state = {k: v for k, v in state.items() if not k.startswith(("model.blocks.0.part.", "model.tail."))}
    try:
        missing, unexpected = split.load_state_dict(state, strict=False)
    except RuntimeError as e:  # tensor shapes differ: weights of another model
        raise AcomError(f"{path}: weights do not fit the model they claim: {str(e).splitlines()[1][:200]}") from e
    if custom:
        missing = [k for k in missing if not k.startswith(("model.blocks.0.part.", "model.tail."))]
    if missing or unexpected:
        raise AcomError(f"{path}: weights do not fit the model they claim: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    return split.eval()


def uncut(task: str, config: dict | None = None) -> SplitModel:
    """A new uncut model (no quantizer) of `task`, cut point at the task's default."""
    model = build_model(task, config)
    return SplitModel(model, default_split_layer(model), None)
