"""The stage-2 rate term (acom.training.rate): its hard bits are the bigram cross-entropy the range coder would
spend, its soft bits pull the projections towards cheaper codes, and `acom train --rate-weight` uses it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from acom.cli import main as acom
from acom.core.rvq import ResidualVQ, RVQConfig
from acom.corpora.featcache import feature_path
from acom.training.rate import BigramRate
from tests.core.test_split import _toy_features


def test_hard_bits_are_the_bigram_cross_entropy_of_the_valid_frames() -> None:
    rvq = ResidualVQ(RVQConfig(dim=4, codebook_sizes=(2,), code_dim=2))
    codes = torch.tensor([[[0, 1, 1, 0, 1]]])
    z = rvq.stages[0].project(torch.randn(1, 4, 5))
    # events 0->1, 1->1, 1->0, 0->1: counts [[0, 2], [1, 1]], each plus alpha 0.5
    _, hard = BigramRate((2,), alpha=0.5)(rvq, (z,), codes, None)
    want = (2 * -math.log2(2.5 / 3) + 2 * -math.log2(0.5)) / 4
    assert float(hard) == pytest.approx(want, rel=1e-6)
    # only frames before the length count: 0->1, 1->1, 1->0 (counts [[0, 1], [1, 1]])
    _, hard = BigramRate((2,), alpha=0.5)(rvq, (z,), codes, torch.tensor([4]))
    want = (-math.log2(1.5 / 2) + 2 * -math.log2(0.5)) / 3
    assert float(hard) == pytest.approx(want, rel=1e-6)


def test_the_soft_bits_move_the_projections_to_cheaper_codes() -> None:
    """Minimizing the soft bits alone (no task) makes the nearest-codeword codes far more predictable."""
    torch.manual_seed(0)
    rvq = ResidualVQ(RVQConfig(dim=8, codebook_sizes=(16,), code_dim=4, dead_code_threshold=0.0)).eval()
    x = torch.randn(4, 8, 200)
    rvq.init_from_data(x.permute(0, 2, 1).reshape(-1, 8))
    rate = BigramRate((16,), decay=0.5)
    opt = torch.optim.Adam(rvq.stages[0].in_proj.parameters(), lr=0.02)
    bits = []
    for _ in range(60):
        out = rvq(x)
        soft, hard = rate(rvq, out.projections, out.codes, None)
        bits.append(float(hard))
        opt.zero_grad()
        soft.backward()
        opt.step()
    assert bits[0] > 3.0 and bits[-1] < bits[0] - 1.5, bits[::10]
    assert torch.equal(rvq(x).codes, rvq.encode(x))  # still the nearest codewords: the device is unchanged


def test_acom_train_rate_weight_logs_bits_and_refuses_bad_weights(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--out", str(tmp_path / "run")]
    for bad in ("-1", "nan"):
        assert acom(base + ["--rate-weight", bad]) == 2
        err = capsys.readouterr().err
        assert f"--rate-weight {float(bad)}: must be 0 (off) or a positive weight" in err and "Traceback" not in err
    assert acom(base + ["--rate-target", "20"]) == 2
    assert "--rate-target 20.0: give a positive bit/s, with a positive --rate-weight" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    train = ["--epochs", "1", "--split-epochs", "1", "--batch-frames", "2000", "--codebooks", "8", "--device", "cpu"]
    assert acom(base + train + ["--rate-weight", "0.5"]) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "bits" not in log[0] and log[-1]["stage"] == "split" and 0 < log[-1]["bits"] <= 3.0  # K = 8
    # a target no batch exceeds (1000 bit/s at 5 code frames/s: 200 bits a frame) leaves training as without
    runs = {}
    for name, extra in (("off", []), ("above", ["--rate-weight", "0.5", "--rate-target", "1000"])):
        out = tmp_path / name
        assert acom(["train", "--task", "ac", "--features", str(feats), "--out", str(out)] + train + extra) == 0
        runs[name] = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]
    assert runs["above"]["loss"] == runs["off"]["loss"] and runs["above"]["bits"] > 0
    assert runs["off"]["loss"] != log[-1]["loss"]  # the weight did change the loss where it applied
