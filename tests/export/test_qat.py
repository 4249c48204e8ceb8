"""--qat: the edge part learns under int8 fake quantization; quantizer, codebook hash and server stay as they were."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.corpora.featcache import FeatureSet, cached_features
from acom.errors import ExportError
from acom.export.qat import qat_finetune


def test_qat_tunes_only_the_edge_blocks(urban_set: Path, tmp_path: Path) -> None:
    split, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")
    before = {k: v.clone() for k, v in split.state_dict().items()}
    hash_before = split.rvq.codebook_hash()
    train = cached_features("ac", "train", 40, root=urban_set, cache=tmp_path, progress=False)
    report = qat_finetune(split, train, n_q=1, epochs=2, lr=1e-3, progress=False)
    assert report["layers"] > 0 and len(report["history"]) == 2
    assert all(math.isfinite(h["loss"]) for h in report["history"])
    after = split.state_dict()
    assert set(after) == set(before), "fake quantizers left behind in the state dict"
    edge = tuple(f"model.blocks.{i}." for i in range(split.split_layer + 1))
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith(edge) for k in changed), changed
    assert split.rvq.codebook_hash() == hash_before
    assert not any(hasattr(m, "act_fq") for m in split.modules())


def test_qat_refuses_an_empty_train_set() -> None:
    split, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")
    with pytest.raises(ExportError, match="train subset"):
        qat_finetune(split, FeatureSet("ac", [], [], [], 40), n_q=1)
