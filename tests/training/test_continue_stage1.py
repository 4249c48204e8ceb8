"""`acom train --init FULL.pt --epochs N`: stage 1 trains a given uncut model further (the control for a stage 2
of N epochs: as much training, no cut), and refuses what it cannot continue as asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from acom.cli import main as acom
from acom.core.checkpoint import read_checkpoint, trained_epochs
from acom.corpora.featcache import feature_path
from tests.core.test_split import _toy_features


def test_init_with_epochs_trains_the_uncut_model_further(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    common = ["--batch-frames", "2000", "--device", "cpu", "--split-epochs", "0"]
    base = ["train", "--task", "ac", "--features", str(feats), *common]
    plain, pooled = tmp_path / "plain", tmp_path / "pooled"
    assert acom(base + ["--out", str(plain), "--epochs", "1"]) == 0
    assert acom(base + ["--out", str(pooled), "--epochs", "1", "--time-pool", "2", "--pool-stage1"]) == 0
    assert acom(base + ["--out", str(tmp_path / "cut"), "--epochs", "0", "--split-epochs", "1", "--init",
                        str(plain / "full.pt")]) == 0
    capsys.readouterr()

    refusals = {
        ("--init", str(plain / "full.pt"), "--epochs", "1", "--reference", str(plain / "full.pt")):
            "--reference with --init and --epochs 1: stage 1 trains --init further",
        ("--init", str(pooled / "full.pt"), "--epochs", "1"):
            "trained with its cut pooled in runs of 2 (cut_pool), so stage 1 continues it with --pool-stage1 "
            "--time-pool 2",
        ("--init", str(pooled / "full.pt"), "--epochs", "1", "--pool-stage1", "--time-pool", "3"):
            "trained with its cut pooled in runs of 2",
        ("--init", str(tmp_path / "cut" / "split.pt"), "--epochs", "1"): "a checkpoint with a quantizer",
        ("--init", str(plain / "full.pt"), "--pool-stage1", "--time-pool", "2"):
            "--pool-stage1 shapes stage 1, which --init with --epochs 0 skips",
    }
    for extra, message in refusals.items():
        assert acom(base + ["--out", str(tmp_path / "bad")] + list(extra)) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "bad").exists()

    # further training on other data keeps the given model's input normalization (set once, in its stage 1)
    other = tmp_path / "other-features"
    _toy_features(40, 2).save(feature_path(other, "ac", "train", 40))
    _toy_features(10, 3).save(feature_path(other, "ac", "dev", 40))
    more = tmp_path / "more"
    assert acom(["train", "--task", "ac", "--features", str(other), *common, "--out", str(more), "--init",
                 str(plain / "full.pt"), "--epochs", "2", "--lr", "1e-3"]) == 0
    log = [json.loads(line) for line in (more / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and {r["stage"] for r in log} == {"full"}
    before, after = read_checkpoint(plain / "full.pt"), read_checkpoint(more / "full.pt")
    assert after["train_config"]["lr"] == 1e-3 and after["epoch"] == 2 and after["rvq_config"] is None
    changed = [k for k, v in before["state_dict"].items() if not torch.equal(v, after["state_dict"][k])]
    assert any(k.startswith("model.blocks.") for k in changed)  # trained further, from the given weights
    assert "model.feat_mean" in before["state_dict"] and not {"model.feat_mean", "model.feat_std"} & set(changed)
    assert "cut_pool" not in after and trained_epochs(after) == 3  # 1 before, 2 here

    pooled_more = tmp_path / "pooled-more"
    assert acom(base + ["--out", str(pooled_more), "--init", str(pooled / "full.pt"), "--epochs", "1",
                        "--time-pool", "2", "--pool-stage1"]) == 0
    assert read_checkpoint(pooled_more / "full.pt")["cut_pool"] == 2
    assert trained_epochs(read_checkpoint(pooled_more / "full.pt")) == 2
    # without --epochs, --init still means stage 2 from it (no stage 1)
    again = tmp_path / "again"
    assert acom(base + ["--out", str(again), "--init", str(plain / "full.pt"), "--split-epochs", "1"]) == 0
    assert (again / "full.pt").read_bytes() == (plain / "full.pt").read_bytes()
    assert {json.loads(line)["stage"] for line in (again / "log.jsonl").read_text().splitlines()} == {"split"}
    assert trained_epochs(read_checkpoint(again / "split.pt")) == 2  # the uncut model's 1, then 1 of stage 2


def test_trained_epochs_of_checkpoints_without_the_field() -> None:
    """Checkpoints written before `epochs_before` existed: a stage 1 was trained from scratch, a stage 2's start
    is unknown."""
    assert trained_epochs({"stage": "full", "epoch": 20}) == 20
    assert trained_epochs({"stage": "split", "epoch": 40}) is None
    assert trained_epochs({"stage": "split", "epoch": 40, "epochs_before": None}) is None
    assert trained_epochs({"stage": "split", "epoch": 40, "epochs_before": 20}) == 60
