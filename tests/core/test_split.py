"""The split model's halves, checkpoints and a short real training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from acom.core.checkpoint import load_checkpoint, save_checkpoint
from acom.core.models import build_model
from acom.core.split import SplitModel, SplitOutput, make_rvq
from acom.corpora.featcache import FeatureSet
from acom.errors import AcomError
from acom.training.train import TrainConfig, distill_loss, fit, insert_quantizer, set_normalization
from tests.core.test_models import TINY_AC, TINY_ASR


def _split(task: str = "asr", sizes: tuple[int, ...] = (16, 8)) -> SplitModel:
    model = build_model(task, TINY_ASR if task == "asr" else TINY_AC)
    layer = 1 if task == "asr" else 2
    split = SplitModel(model, layer, make_rvq(model, layer, sizes))
    split.rvq.init_from_data(torch.randn(500, model.cut_dim(layer)))
    return split.eval()


def test_halves_compose_to_the_split_model() -> None:
    split = _split()
    wave = torch.randn(2, 16000)
    codes = split.edge()(wave)
    assert codes.dtype == torch.int64 and codes.shape[:2] == (2, 2)
    feats = split.model.frontend(wave)
    out = split(feats, n_q=2)
    assert torch.equal(out.quant.codes, codes)
    assert torch.allclose(split.server()(codes), out.logits, atol=1e-5)
    one = split.server()(codes[:, :1])  # the bitrate is chosen at run time: fewer stages still decode
    assert torch.allclose(one, split(feats, n_q=1).logits, atol=1e-5)


def test_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    split = _split("ac")
    path = tmp_path / "m.pt"
    save_checkpoint(path, split, stage="split", note="x")
    loaded, payload = load_checkpoint(path, "ac")
    wave = torch.randn(1, 16000)
    assert torch.equal(loaded.edge()(wave), split.edge()(wave))
    assert loaded.rvq.codebook_hash() == split.rvq.codebook_hash() and payload["note"] == "x"
    torch.load(path, weights_only=True)  # no pickled code
    with pytest.raises(AcomError, match="is for task 'ac', not 'asr'"):
        load_checkpoint(path, "asr")
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AcomError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    payload["model_config"]["server_channels"] = 32  # another model's weights under this config
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(AcomError, match="size mismatch|do not fit"):
        load_checkpoint(tmp_path / "other.pt")


def _toy_features(n: int, seed: int) -> FeatureSet:
    """Two 'classes' of log-mels that differ in which bands are loud: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for i in range(n):
        x = torch.randn(40, 120, generator=g) * 0.5
        x[(i % 2) * 20:(i % 2) * 20 + 20] += 2.0
        feats.append(x.half())
        labels.append(i % 2)
    return FeatureSet("ac", feats, labels, [str(i) for i in range(n)], 40)


def test_training_stages_learn_and_resume(tmp_path: Path) -> None:
    train, dev = _toy_features(48, 0), _toy_features(16, 1)
    torch.manual_seed(0)
    model = build_model("ac", TINY_AC)
    full = SplitModel(model, 2, None)
    set_normalization(full, train)
    cfg = TrainConfig(epochs=3, lr=5e-3, batch_frames=2000, device="cpu")
    metrics = fit(full, train, dev, cfg, tmp_path, "full", {}, progress=False)
    assert metrics["accuracy"] == 1.0
    split = insert_quantizer(full, 2, (8,), train, seed=0)
    m2 = fit(split, train, dev, TrainConfig(epochs=2, lr=2e-3, batch_frames=2000, device="cpu"), tmp_path,
             "split", {}, progress=False)
    assert m2["accuracy"] >= 0.9
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log] == [("full", 1), ("full", 2), ("full", 3), ("split", 1),
                                                        ("split", 2)]
    assert log[-1]["rvq"] > 0
    # resume: asking for 3 epochs of a stage that has 2 runs only the third
    again = SplitModel(build_model("ac", TINY_AC), 2, make_rvq(build_model("ac", TINY_AC), 2, (8,)))
    fit(again, train, dev, TrainConfig(epochs=3, lr=2e-3, batch_frames=2000, device="cpu"), tmp_path, "split",
        {}, resume=True, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in log][-1] == ("split", 3) and len(log) == 6
    # resuming into a quantizer of another size is refused, naming what the checkpoint was trained with
    other = SplitModel(build_model("ac", TINY_AC), 2, make_rvq(build_model("ac", TINY_AC), 2, (16,)))
    with pytest.raises(AcomError, match=r"trained with rvq_codebook_sizes=\(8,\); this command builds "
                       r"rvq_codebook_sizes=\(16,\)"):
        fit(other, train, dev, TrainConfig(epochs=4, lr=2e-3, batch_frames=2000, device="cpu"), tmp_path, "split",
            {}, resume=True, progress=False)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 6


def test_distill_loss_is_the_kl_over_valid_frames() -> None:
    torch.manual_seed(0)
    t = torch.randn(2, 5, 7).log_softmax(-1)
    lengths = torch.tensor([5, 3])
    same = SplitOutput(t.clone(), lengths, None, None)
    assert float(distill_loss(same, SplitOutput(t, lengths, None, None))) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 5, 7).log_softmax(-1)
    got = float(distill_loss(SplitOutput(s, lengths, None, None), SplitOutput(t, lengths, None, None)))
    kl = [torch.nn.functional.kl_div(s[b, i], t[b, i], log_target=True, reduction="sum") for b, n in
          ((0, 5), (1, 3)) for i in range(n)]
    assert got == pytest.approx(float(torch.stack(kl).mean()), rel=1e-5) and got > 0
    s[1, 3:] = 0.0  # padding frames do not count
    assert float(distill_loss(SplitOutput(s, lengths, None, None), SplitOutput(t, lengths, None, None))) == \
        pytest.approx(got, rel=1e-5)


def test_stage_two_distills_the_uncut_model(tmp_path: Path) -> None:
    """Same start, same seed: with the KL term the split model's outputs end closer to the uncut model's."""
    import copy

    from acom.training import augment as A

    train, dev = _toy_features(48, 0), _toy_features(16, 1)
    torch.manual_seed(0)
    full = SplitModel(build_model("ac", TINY_AC), 2, None)
    set_normalization(full, train)
    fit(full, train, dev, TrainConfig(epochs=3, lr=5e-3, batch_frames=2000, device="cpu"), tmp_path, "full", {},
        progress=False)
    teacher = copy.deepcopy(full)
    x, lengths = A.pad_batch(dev.feats)
    gaps = {}
    for weight in (0.0, 5.0):
        split = insert_quantizer(copy.deepcopy(full), 2, (8,), train, seed=0)
        cfg = TrainConfig(epochs=3, lr=2e-3, batch_frames=2000, device="cpu", distill=weight)
        if weight:
            with pytest.raises(AcomError, match="needs a teacher"):
                fit(split, train, dev, cfg, tmp_path / "x", "split", {}, progress=False)
        torch.manual_seed(1)
        m = fit(split, train, dev, cfg, tmp_path / str(weight), "split", {}, progress=False,
                teacher=teacher if weight else None)
        assert m["accuracy"] >= 0.9
        with torch.no_grad():
            gaps[weight] = float(distill_loss(split.eval()(x, lengths), teacher(x, lengths)))
        log = [json.loads(line) for line in (tmp_path / str(weight) / "log.jsonl").read_text().splitlines()]
        assert ("distill" in log[-1]) == bool(weight)
    assert gaps[5.0] < gaps[0.0], gaps
    assert not any(p.requires_grad for p in teacher.parameters())  # frozen by fit
