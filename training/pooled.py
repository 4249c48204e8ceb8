"""Stage 1 with the cut already pooled: the uncut model trained on the features the quantizer will see."""
from __future__ import annotations

from pathlib import Path

import torch

from acom.core.checkpoint import load_checkpoint
from acom.core.rvq import pool_frames, repeat_frames
from acom.core.split import SplitModel, SplitOutput


class PooledCut(SplitModel):
    """The uncut model (no quantizer) whose cut averages each run of `time_pool` frames and repeats the mean
    `time_pool` times, as a quantizer with that ``time_pool`` does around its codes.

    Trained in stage 1 (``acom train --pool-stage1``), the blocks on both sides of the cut learn the lower frame
    rate before stage 2 adds the codebooks. No parameters of its own: its checkpoint holds the uncut model's
    weights and ``cut_pool`` (`load_as_trained` restores the pool; the benchmarks refuse it as an uncut reference).
    """

    def __init__(self, split: SplitModel, time_pool: int) -> None:
        super().__init__(split.model, split.split_layer, None)
        self.cut_pool = time_pool

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None, n_q: int | None = None
                ) -> SplitOutput:
        """Log-mels [B, n_mels, T] -> the model's output, the cut's features [B, D, T_cut] replaced by their
        pooled and repeated means (the last short run padded with copies of its last frame)."""
        x, lengths = self.cut_features(feats, lengths)
        p, steps = self.cut_pool, x.shape[-1]
        x = repeat_frames(pool_frames(x, p), p)[..., :steps]
        cut_lengths = None if lengths is None else (lengths + p - 1) // p
        x, lengths = self.model.run_blocks(x, lengths, self.split_layer + 1, len(self.model.blocks))
        return SplitOutput(self.model.head_forward(x, lengths), lengths, None, cut_lengths)


def load_as_trained(path: Path, task: str) -> tuple[SplitModel, dict]:
    """(model, payload) of a checkpoint as it was trained: a stage 1 trained with its cut pooled (its payload's
    ``cut_pool``) comes back as a PooledCut, so its scores are that model's."""
    split, payload = load_checkpoint(path, task)
    if payload.get("cut_pool"):
        split = PooledCut(split, payload["cut_pool"]).eval()
    return split, payload
