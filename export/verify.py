"""Verification of exported artifacts: the codes they emit and the task metric the server gets from them.

Audio is cut into the graph's fixed windows (the last one zero-padded), each window is coded, and an item's codes
are the windows' codes in order, trimmed to the item's length. Every artifact, the PyTorch quantized reference
and the float graph see the same windows, so code agreement and the metric difference measure the export alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from acom.core.split import SplitModel
from acom.core.tasks import TASKS
from acom.export.graph import EdgeGraph
from acom.training.evaluate import score

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]  # graph input windows -> int32 codes [1, n_q, T] each


@dataclass
class Windows:
    """Graph inputs of a set of items, cut into fixed windows."""

    inputs: list[np.ndarray]  # per window: the graph's input ([1, N] waveform or [1, n_mels, F] features)
    owner: list[int]  # per window: index of the item it belongs to
    code_frames: list[int]  # per item: number of code frames its audio yields
    targets: list  # per item: transcript (asr) or class id (ac)


def make_windows(graph: EdgeGraph, items: Sequence[tuple[np.ndarray, object]], window: int,
                 samples_per_code: int) -> Windows:
    """Cut each (audio float32 [N], target) into windows of ``window`` samples and make the graph's inputs."""
    out = Windows([], [], [], [])
    for k, (audio, target) in enumerate(items):
        n_win = max(1, -(-len(audio) // window))
        padded = np.zeros(n_win * window, dtype=np.float32)
        padded[: len(audio)] = audio
        for w in range(n_win):
            wave = torch.from_numpy(padded[w * window: (w + 1) * window])[None]
            x = wave if graph.use_frontend else graph.logmel(wave).detach()
            out.inputs.append(x.numpy().astype(np.float32))
            out.owner.append(k)
        out.code_frames.append(max(1, -(-len(audio) // samples_per_code)))
        out.targets.append(target)
    return out


def run(runner: Runner, windows: Windows) -> list[np.ndarray]:
    """Codes ``[1, n_q, T]`` of every window."""
    return [np.asarray(c) for c in runner(windows.inputs)]


def torch_runner(module: torch.nn.Module) -> Runner:
    """A Runner of a PyTorch module (the float graph or a quantized reference)."""
    @torch.no_grad()
    def run_all(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [module(torch.from_numpy(x)).numpy() for x in xs]
    return run_all


def agreement(codes: list[np.ndarray], reference: list[np.ndarray]) -> list[float]:
    """Share of codes identical to ``reference``, per RVQ stage (arrays ``[..., n_q, T]`` in pairs)."""
    a = np.concatenate([c.reshape(c.shape[-2], -1) for c in codes], axis=1)
    b = np.concatenate([c.reshape(c.shape[-2], -1) for c in reference], axis=1)
    return [round(float(x), 5) for x in (a == b).mean(axis=1)]


def item_codes(codes: list[np.ndarray], windows: Windows) -> list[np.ndarray]:
    """Per item: the codes of its windows joined in time and trimmed, int64 ``[n_q, T_i]``."""
    parts: list[list[np.ndarray]] = [[] for _ in windows.code_frames]
    for c, k in zip(codes, windows.owner):
        parts[k].append(c[0])
    return [np.concatenate(p, axis=1)[:, :n].astype(np.int64) for p, n in zip(parts, windows.code_frames)]


@torch.no_grad()
def task_metric(split: SplitModel, codes: list[np.ndarray], targets: list) -> dict:
    """The server tail on each item's codes -> {'metric', 'points'} (WER or accuracy, points are x100)."""
    tail, task = split.server().eval(), split.model.task
    outputs = []
    for c in codes:
        out = tail(torch.from_numpy(c)[None], torch.tensor([c.shape[1]]))
        outputs.append(out[0].numpy())
    num_classes = getattr(split.model.config, "num_classes", 10)
    m = score(task, outputs, targets, num_classes=num_classes)
    name = TASKS[task].metric
    return {"metric": name, "value": round(float(m[name]), 5), "points": round(100 * float(m[name]), 3)}


def metric_loss_points(task: str, artifact: dict, reference: dict) -> float:
    """How many points worse the artifact is than the reference (WER up, or accuracy down)."""
    return round(TASKS[task].loss(artifact["points"], reference["points"]), 3) + 0.0  # + 0.0: no '-0.0'
