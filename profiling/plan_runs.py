"""Trained runs under a folder, matched to the plan's configurations by cut (split layer) and n_q.

Two kinds of results are read:

- ``acom train`` run folders: each ``*.pt`` split checkpoint (``split.pt``) holds its split layer, quantizer and
  ``dev_metrics`` (scored on the dev set with all of its stages);
- ``acom bench rate-accuracy`` reports (``*rate_accuracy*.json``): per point its split layer, n_q, codebook sizes,
  nominal bit/s and the task metric per test set and decoder; the task's test set and main decoder are taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from acom.codes.budget import nominal_bps
from acom.core.checkpoint import read_checkpoint
from acom.core.tasks import Task
from acom.errors import AcomError


@dataclass(frozen=True)
class RunResult:
    """One measured point: the task metric of a trained configuration and its bit rate."""

    split_layer: int
    n_q: int
    codebook_sizes: tuple[int, ...]
    metric: float
    bps: float
    source: str  # file and what was scored (test set, decoder)


def find_runs(root: Path, task: Task) -> list[RunResult]:
    """Every result of ``task`` under ``root`` (AcomError naming ``--runs`` if it is not a folder)."""
    if not root.is_dir():
        raise AcomError(f"--runs {root}: not a folder; give the folder that holds `acom train` runs or "
                        "`acom bench rate-accuracy` reports")
    out = []
    for path in sorted(root.rglob("*.pt")):
        out.extend(_from_checkpoint(path, task))
    for path in sorted(root.rglob("*rate_accuracy*.json")):
        out.extend(_from_rate_accuracy(path, task))
    return out


def _from_checkpoint(path: Path, task: Task) -> list[RunResult]:
    try:
        payload = read_checkpoint(path)
    except AcomError:
        return []  # not a checkpoint (or not ours): nothing to match
    metrics, rvq = payload.get("dev_metrics") or {}, payload.get("rvq_config")
    if payload.get("task") != task.name or rvq is None or task.metric not in metrics:
        return []
    sizes = tuple(rvq["codebook_sizes"])
    frame_rate = _frame_rate(payload)
    bps = nominal_bps(frame_rate, sizes) if frame_rate else float("nan")
    return [RunResult(int(payload["split_layer"]), len(sizes), sizes, float(metrics[task.metric]), bps,
                      f"{path} (dev set, all {len(sizes)} stages)")]


def _frame_rate(payload: dict) -> float | None:
    """Code frames per second at the checkpoint's cut, from its model and quantizer configs (no weights loaded)."""
    from acom.core.models import build_model
    try:
        model = build_model(payload["task"], payload["model_config"])
        pool = int((payload.get("rvq_config") or {}).get("time_pool", 1))
        return model.frame_rate_at(int(payload["split_layer"])) / pool
    except (AcomError, KeyError, TypeError):
        return None


def _from_rate_accuracy(path: Path, task: Task) -> list[RunResult]:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(report, dict) or report.get("task") != task.name:
        return []
    out = []
    for p in report.get("points", []):
        if (p.get("system") != "acom" or p.get("test_set") != task.test_subset or p.get("snr_db") is not None
                or p.get("decoder", task.main_decoder) != task.main_decoder or task.metric not in p
                or "split_layer" not in p or "n_q" not in p):
            continue
        sizes = tuple(p.get("codebook_sizes", ()))
        out.append(RunResult(int(p["split_layer"]), int(p["n_q"]), sizes, float(p[task.metric]),
                             float(p.get("nominal_bps", float("nan"))),
                             f"{path} ({task.test_subset}, {task.main_decoder})"))
    return out


def match(runs: list[RunResult], cut: int, n_q: int, sizes: tuple[int, ...], task: Task) -> RunResult | None:
    """The run at this cut and n_q: one with the plan's codebook sizes if any, a test-set report before a dev
    score, then the best metric."""
    found = [r for r in runs if r.split_layer == cut and r.n_q == n_q]
    if not found:
        return None
    same = [r for r in found if r.codebook_sizes == sizes] or found
    tested = [r for r in same if "dev set" not in r.source] or same
    return task.best(tested, key=lambda r: r.metric)
