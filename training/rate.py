"""A rate term for stage 2: the bits the range coder would spend, made differentiable.

The range coder codes each stage's codes with a bigram model p(c_t | c_{t-1}) estimated from the train set's
codes (``acom.codes.priors.CodePriors``). ``BigramRate`` keeps an exponential moving average of the same
bigram counts during training and scores a soft assignment of each code frame,
q_t = softmax(<z_t, e_k> / temperature) over the stage's unit codewords e_k, under it:

    rate = sum_t sum_k q_t(k) * -log2 p(k | c_{t-1})    (bits, per code frame, valid frames t >= 1)

Its gradient moves the projections z towards codewords the bigram finds cheap after the previous code (often
that code again), so ``--rate-weight W`` trades W x bits per code frame against the task loss. Nothing on the
device or the server changes: the codes are still the nearest codewords, coded as before. The counts are not
saved: they are a training aid (the checkpoint's priors are estimated afresh from the final codes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class BigramRate(nn.Module):
    """Differentiable bits per code frame of a ResidualVQ's codes under EMA bigram counts, one table per stage."""

    def __init__(self, codebook_sizes: tuple[int, ...], temperature: float = 0.1, decay: float = 0.99,
                 alpha: float = 0.5) -> None:
        super().__init__()
        self.temperature, self.decay, self.alpha = temperature, decay, alpha
        for i, k in enumerate(codebook_sizes):
            self.register_buffer(f"counts{i}", torch.zeros(k, k))

    @torch.no_grad()
    def _update(self, stage: int, prev: Tensor, cur: Tensor) -> Tensor:
        """Fold this batch's bigram counts (prev, cur: int64 [N]) into the EMA (the first batch with codes starts
        it); returns log p(cur | prev) [K, K] in nats, each count plus ``alpha``."""
        counts = getattr(self, f"counts{stage}")
        k = counts.shape[0]
        batch = torch.bincount(prev * k + cur, minlength=k * k).view(k, k).to(counts)
        if counts.any():
            counts.mul_(self.decay).add_(batch, alpha=1.0 - self.decay)
        else:
            counts.copy_(batch)
        smoothed = counts + self.alpha
        return torch.log(smoothed / smoothed.sum(dim=1, keepdim=True))

    def forward(self, rvq, projections: tuple[Tensor, ...], codes: Tensor, lengths: Tensor | None
                ) -> tuple[Tensor, Tensor]:
        """Soft and hard bits per code frame, summed over the stages used.

        Args:
            rvq: the ResidualVQ whose unit codebooks the soft assignment uses.
            projections: each used stage's normalized projection z [B, C, T] (``QuantizedResult.projections``).
            codes: the codes chosen [B, n_q, T] (int64).
            lengths: valid code frames per item [B], or None (all valid).
        Returns:
            (soft bits: differentiable with respect to z; hard bits: the codes' cross-entropy under these counts,
            near what the range coder's Witten-Bell bigram spends), both scalars, mean over valid frames.
        """
        b, _, t = codes.shape
        if t < 2:
            zero = codes.new_zeros((), dtype=torch.float32)
            return zero, zero
        valid = torch.ones(b, t - 1, dtype=torch.bool, device=codes.device)
        if lengths is not None:
            valid = torch.arange(1, t, device=codes.device)[None] < lengths[:, None]
        soft, hard = projections[0].new_zeros(()), projections[0].new_zeros(())
        for s, z in enumerate(projections):
            prev, cur = codes[:, s, :-1], codes[:, s, 1:]
            logp = self._update(s, prev[valid], cur[valid])  # [K, K]
            sims = torch.einsum("bct,kc->btk", z[..., 1:], rvq.stages[s].unit_codebook())
            q = torch.softmax(sims / self.temperature, dim=-1)  # [B, T-1, K]
            cost = -logp[prev]  # [B, T-1, K] nats of each codeword after the previous code
            soft = soft + (q * cost).sum(-1)[valid].mean()
            hard = hard + cost.gather(-1, cur[..., None])[..., 0][valid].mean()
        return soft / math.log(2), hard / math.log(2)
