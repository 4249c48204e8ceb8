"""Shared by the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.corpora.datasets import UrbanSound8K
from acom.corpora.synth.urban import generate_urban
from acom.export import pipeline
from acom.export.graph import EdgeGraph

WINDOW = 16000  # 1 s at 16 kHz


def edited_board(tmp_path: Path, base: str, **changes: str) -> Path:
    """A copy of board profile ``base`` with some top-level fields replaced (values as TOML literals)."""
    text = (Path(pipeline.__file__).parent.parent / "boards" / f"{base}.toml").read_text()
    lines = [f"{k} = {changes[k]}" if (k := line.split("=")[0].strip()) in changes else line
             for line in text.splitlines()]
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ac_graph_and_windows(root: Path, clips_per_class: int, seed: int) -> tuple[EdgeGraph, list[torch.Tensor]]:
    """The shipped classifier's edge graph (features in) and the normalized log-mel [1, 40, F] of the first
    second of each clip of a small synthetic set generated under ``root``."""
    split, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")
    graph = EdgeGraph(split, frontend=False).eval()
    generate_urban(root, clips_per_class=clips_per_class, seed=seed, workers=1, progress=False)
    ds = UrbanSound8K(root, folds=range(1, 11))
    out = []
    for i in range(len(ds)):
        audio = ds[i][0][:WINDOW]
        wave = torch.from_numpy(np.pad(audio, (0, WINDOW - len(audio))))[None]
        with torch.no_grad():
            out.append(graph.logmel(wave))
    return graph, out
