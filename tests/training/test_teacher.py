"""`acom train --distill W --teacher UNCUT.pt`: stage 2 distills from a given uncut checkpoint (e.g. one
trained longer) instead of the model it starts from, recorded in split.pt; a teacher that is not an uncut
model of the task with the same inputs and outputs is refused before anything is written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from acom.cli import main as acom
from acom.core.checkpoint import PRETRAINED, load_checkpoint, read_checkpoint, save_checkpoint, uncut
from acom.corpora.featcache import feature_path
from acom.training.train_cli import _distilled_from, _teacher
from tests.core.test_split import _toy_features


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """Toy features, the common train arguments, and an untrained uncut model of another seed as the teacher:
    its posteriors are far from any trained student's."""
    root = tmp_path_factory.mktemp("teacher")
    feats = root / "features"
    _toy_features(40, 0).save(feature_path(feats, "ac", "train", 40))
    _toy_features(10, 1).save(feature_path(feats, "ac", "dev", 40))
    base = ["train", "--task", "ac", "--features", str(feats), "--batch-frames", "2000", "--device", "cpu"]
    torch.manual_seed(7)
    save_checkpoint(root / "other.pt", uncut("ac"))
    return root, base, root / "other.pt"


def test_teacher_is_distilled_from_and_recorded(runs: tuple[Path, list[str], Path]) -> None:
    root, base, teacher = runs
    stage2 = base + ["--epochs", "2", "--split-epochs", "1", "--distill", "1", "--seed", "0"]
    assert acom(stage2 + ["--out", str(root / "own")]) == 0
    assert acom(stage2 + ["--out", str(root / "given"), "--teacher", str(teacher)]) == 0
    assert read_checkpoint(root / "given" / "split.pt")["teacher"] == str(teacher)
    assert "teacher" not in read_checkpoint(root / "own" / "split.pt")

    def distill(run: str) -> float:
        rows = [json.loads(line) for line in (root / run / "log.jsonl").read_text().splitlines()]
        return [r for r in rows if r["stage"] == "split"][-1]["distill"]

    # same seed, same start, same batches: only the teacher differs. The student starts as the model it
    # distills from in "own", so its divergence from an untrained model's posteriors is far larger
    assert distill("given") > 1.5 * distill("own") > 0


def test_distilled_from_picks_the_given_teacher(runs: tuple[Path, list[str], Path]) -> None:
    _, _, path = runs
    ns = argparse.Namespace(teacher=path, task="ac")
    given = _teacher(ns, uncut("ac").model)
    want, _ = load_checkpoint(path, "ac")
    assert all(torch.equal(a, b) for a, b in zip(given.state_dict().values(), want.state_dict().values(),
                                                 strict=True))
    full = uncut("ac")
    assert _distilled_from(given, full, 1.0) is given
    own = _distilled_from(None, full, 1.0)
    assert own is not full and torch.equal(own.model.head.weight, full.model.head.weight)  # a frozen copy
    assert _distilled_from(given, full, 0.0) is None
    assert _teacher(argparse.Namespace(teacher=None, task="ac"), full.model) is None


def test_bad_teachers_are_refused(runs: tuple[Path, list[str], Path], capsys: pytest.CaptureFixture) -> None:
    root, base, teacher = runs
    five = uncut("ac", {"num_classes": 5})
    save_checkpoint(root / "five.pt", five)
    wide = uncut("ac", {"n_mels": 64})
    save_checkpoint(root / "wide.pt", wide)
    asr = root / "asr.pt"
    save_checkpoint(asr, uncut("asr"))
    out = root / "bad"
    stage2 = base + ["--epochs", "1", "--split-epochs", "1", "--out", str(out)]
    cases = [
        (["--teacher", str(teacher)], f"--teacher {teacher}: a teacher is distilled from in stage 2; give "
                                      "--distill W > 0"),
        (["--distill", "1", "--teacher", str(teacher), "--split-epochs", "0"], "and --split-epochs N > 0"),
        (["--distill", "1", "--teacher", str(root / "missing.pt")], "missing.pt: checkpoint not found"),
        (["--distill", "1", "--teacher", str(PRETRAINED / "ac" / "split.pt")], "not an uncut ac checkpoint"),
        (["--distill", "1", "--teacher", str(asr)], f"--teacher {asr}: not an uncut ac checkpoint (task 'asr'"),
        (["--distill", "1", "--teacher", str(root / "five.pt")], "its model has 5 outputs, the model trained 10"),
        (["--distill", "1", "--teacher", str(root / "wide.pt")], "reads 64 log-mel bands, the model trained 40"),
    ]
    capsys.readouterr()
    for extra, message in cases:
        assert acom(stage2 + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
        assert not out.exists(), extra
