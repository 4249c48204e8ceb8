"""`acom train --split-dropout P`: stage 2 trains the split model with every dropout layer at P (a cut that
underfits its information bottleneck need not be regularized), recorded in split.pt; out-of-range P refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from acom.cli import main as acom
from acom.core.checkpoint import read_checkpoint, uncut
from acom.corpora.featcache import feature_path
from acom.training.train_cli import set_dropout
from tests.core.test_split import _toy_features


def test_set_dropout_reaches_every_block() -> None:
    torch.manual_seed(0)
    model = uncut("asr")
    model.train()
    feats = torch.randn(1, 40, 200)  # log-mels [B, n_mels, T]
    assert not torch.equal(model(feats).logits, model(feats).logits)  # the recipe's dropout at work
    n = set_dropout(model, 0.0)
    assert n >= 4 * (2 + 4)  # feed-forward x2, attention and conv module in each of the 6 Conformer blocks
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert torch.equal(model(feats).logits, model(feats).logits)  # training mode, yet deterministic


def test_split_dropout_is_recorded_and_bounded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--batch-frames", "2000", "--device", "cpu",
            "--epochs", "1", "--split-epochs", "1"]
    assert acom(base + ["--out", str(tmp_path / "run"), "--split-dropout", "0"]) == 0
    assert read_checkpoint(tmp_path / "run" / "split.pt")["split_dropout"] == 0.0
    capsys.readouterr()
    for bad in ("-0.1", "0.95"):
        assert acom(base + ["--out", str(tmp_path / "bad"), "--split-dropout", bad]) == 2
        err = capsys.readouterr().err
        assert f"--split-dropout {float(bad)}: allowed 0 to 0.9" in err and "Traceback" not in err, err
    assert not (tmp_path / "bad").exists()
