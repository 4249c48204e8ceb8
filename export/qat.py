"""`acom-export --qat`: quantization-aware fine-tuning of the edge part before post-training quantization.

Eager-mode fake quantization on the edge blocks' Linear and Conv1d layers, the layers the exporters make int8:
per-channel symmetric int8 weights and per-tensor int8 inputs (moving-average ranges), with straight-through
gradients. Only the edge blocks train, with the task loss through the frozen quantizer and server, so the
codebooks (and their hash) and the server tail stay exactly as they were. The fake quantizers are removed
afterwards and the exporters quantize the tuned float weights as usual, now near the int8 grid they saw.
"""

from __future__ import annotations

import random
import time

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver
from torch.nn.utils import parametrize
from tqdm import tqdm

from acom.core.ctc import CharVocab
from acom.core.split import SplitModel
from acom.core.tasks import TASKS
from acom.corpora.featcache import FeatureSet
from acom.errors import ExportError
from acom.training.augment import pad_batch
from acom.training.train import length_batches, task_loss


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric int8 fake quantization of a weight (a parametrization)."""

    def __init__(self) -> None:
        super().__init__()
        self.fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
                               dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.fq(w)


def _act_fake_quant() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_tensor_affine)


def _edge_layers(split: SplitModel) -> list[nn.Module]:
    return [m for block in split.model.blocks[: split.split_layer + 1] for m in block.modules()
            if isinstance(m, (nn.Linear, nn.Conv1d))]


def qat_finetune(split: SplitModel, train: FeatureSet, n_q: int, epochs: int = 2, lr: float = 1e-4,
                 batch_frames: int = 20000, seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``split``'s edge blocks in place with int8 fake quantization, coding with ``n_q`` stages (the
    rate the bundle sends); returns what was done and the loss per epoch."""
    if len(train) == 0:
        raise ExportError("--qat needs the train subset of --data to fine-tune on; it is empty")
    if epochs < 1:
        raise ExportError(f"--qat-epochs must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    layers = _edge_layers(split)
    hooks = []
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", _WeightFakeQuant())
        layer.act_fq = _act_fake_quant()
        hooks.append(layer.register_forward_pre_hook(lambda mod, args: (mod.act_fq(args[0]), *args[1:])))
    split.requires_grad_(False)
    for block in split.model.blocks[: split.split_layer + 1]:
        block.requires_grad_(True)
    for layer in layers:
        layer.act_fq.requires_grad_(False)
    # eval(): BatchNorm keeps its statistics and dropout is off; gradients still flow
    split.eval()
    params = [p for p in split.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    vocab = CharVocab() if TASKS[split.model.task].sequence else None
    rng = random.Random(seed)
    history = []
    try:
        for epoch in range(epochs):
            t0, total, n = time.time(), 0.0, 0
            batches = length_batches([f.shape[1] for f in train.feats], batch_frames, rng)
            for idx in tqdm(batches, desc=f"qat epoch {epoch + 1}", unit="batch", disable=not progress, leave=False):
                x, lengths = pad_batch([train.feats[i] for i in idx])
                out = split(x, lengths, n_q=n_q)
                loss = task_loss(split, out, [train.targets[i] for i in idx], vocab) + out.quant.loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                total, n = total + float(loss.detach()), n + 1
            history.append({"epoch": epoch + 1, "loss": round(total / max(n, 1), 4),
                            "seconds": round(time.time() - t0, 1)})
    finally:
        for h in hooks:
            h.remove()
        for layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            del layer.act_fq
        split.requires_grad_(True)
        split.eval()
    return {"epochs": epochs, "lr": lr, "layers": len(layers), "history": history}
