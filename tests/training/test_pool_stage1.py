"""Stage 1 with the cut already pooled (acom train --pool-stage1): the tail sees exactly what a pooled quantizer
hands it, the run is marked so no benchmark takes it for the uncut model, and stage 2 from it names that model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from acom.cli import main as acom
from acom.core.checkpoint import load_checkpoint, load_reference, read_checkpoint
from acom.core.models import build_model
from acom.core.split import SplitModel, make_rvq
from acom.corpora.featcache import feature_path
from acom.errors import AcomError
from acom.training.pooled import PooledCut, load_as_trained
from tests.core.test_models import TINY_ASR
from tests.core.test_split import _toy_features


@pytest.mark.parametrize("steps", [40, 41])  # an even and an odd number of frames at the cut
def test_the_tail_sees_the_pooled_quantizers_pool_and_repeat(steps: int) -> None:
    torch.manual_seed(0)
    split = SplitModel(build_model("asr", TINY_ASR), 1, None).eval()
    rvq = make_rvq(split.model, 1, (8,), time_pool=2)
    feats = torch.randn(2, 40, 4 * steps)
    lengths = torch.tensor([4 * steps, 4 * steps - 9])
    with torch.no_grad():
        got = PooledCut(split, 2).eval()(feats, lengths)
        x, cut_lengths = split.cut_features(feats, lengths)
        assert x.shape[-1] == steps
        want_x = rvq.unpool(rvq.pool(x))[..., :steps]  # what stage 2's quantizer does around its codes
        tail, out_lengths = split.model.run_blocks(want_x, cut_lengths, 2, len(split.model.blocks))
        want = split.model.head_forward(tail, out_lengths)
        plain = split(feats, lengths)
    assert torch.allclose(got.logits, want, atol=1e-6)
    assert torch.equal(got.cut_lengths, (cut_lengths + 1) // 2) and torch.equal(got.lengths, plain.lengths)
    assert not torch.allclose(got.logits, plain.logits, atol=1e-3)  # the pool does change what the tail sees


def test_pool_stage1_run_is_marked_and_stage2_names_the_uncut_reference(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    feats = tmp_path / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--batch-frames", "2000", "--device", "cpu"]
    refusals = {
        ("--pool-stage1", "--split-epochs", "0"): "--pool-stage1: recipe edge-ac pools 1 frame per code frame",
        ("--pool-stage1", "--time-pool", "2"): "--pool-stage1 trains stage 1 only (give --split-epochs 0)",
        ("--reference", str(tmp_path / "x.pt")): "--reference names the uncut model beside a stage 2 started "
                                                  "with --init; give --init too",
    }
    for extra, message in refusals.items():
        assert acom(base + ["--out", str(tmp_path / "bad")] + list(extra)) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "bad").exists()

    pooled, plain = tmp_path / "pooled", tmp_path / "plain"
    assert acom(base + ["--out", str(pooled), "--epochs", "2", "--split-epochs", "0", "--time-pool", "2",
                        "--pool-stage1"]) == 0
    assert acom(base + ["--out", str(plain), "--epochs", "2", "--split-epochs", "0"]) == 0
    assert read_checkpoint(pooled / "full.pt")["cut_pool"] == 2 and "cut_pool" not in read_checkpoint(plain / "full.pt")
    with pytest.raises(AcomError, match="trained with its cut pooled"):
        load_reference(pooled / "full.pt", "ac")  # what the rate-accuracy and codec benchmarks load
    capsys.readouterr()  # the training logs
    # acom eval scores the pooled stage 1 as it was trained (its logged dev accuracy); load_as_trained is why
    assert acom(["eval", "--task", "ac", "--checkpoint", str(pooled / "full.pt"), "--features", str(feats),
                 "--subset", "dev", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["results"][0]
    logged = json.loads((pooled / "log.jsonl").read_text().splitlines()[-1])
    assert got["accuracy"] == pytest.approx(logged["dev_accuracy"])
    model, _ = load_as_trained(pooled / "full.pt", "ac")
    unpooled, _ = load_checkpoint(pooled / "full.pt", "ac")
    x = torch.stack([f.float() for f in _toy_features(4, 2).feats])
    with torch.no_grad():
        want = PooledCut(unpooled, 2)(x).logits
        assert isinstance(model, PooledCut) and torch.equal(model(x).logits, want)
        assert not torch.allclose(unpooled(x).logits, want, atol=1e-4)  # the pool is what differs
    assert not isinstance(load_as_trained(plain / "full.pt", "ac")[0], PooledCut)

    stage2 = base + ["--epochs", "0", "--split-epochs", "1", "--codebooks", "8", "--time-pool", "2",
                     "--init", str(pooled / "full.pt")]
    assert acom(stage2 + ["--out", str(tmp_path / "s2")]) == 2
    assert "name that one with --reference UNCUT.pt" in capsys.readouterr().err
    assert acom(stage2 + ["--out", str(tmp_path / "s2"), "--reference", str(pooled / "full.pt")]) == 2
    assert "not an uncut ac checkpoint (task 'ac', its cut pooled)" in capsys.readouterr().err
    assert not (tmp_path / "s2").exists()
    assert acom(stage2 + ["--out", str(tmp_path / "s2"), "--reference", str(plain / "full.pt")]) == 0
    assert (tmp_path / "s2" / "full.pt").read_bytes() == (plain / "full.pt").read_bytes()
    split = read_checkpoint(tmp_path / "s2" / "split.pt")
    assert split["rvq_config"]["time_pool"] == 2 and "cut_pool" not in split
    assert acom(stage2 + ["--out", str(tmp_path / "s3"), "--reference", str(tmp_path / "s2" / "split.pt")]) == 2
    assert "(task 'ac', a quantizer)" in capsys.readouterr().err
