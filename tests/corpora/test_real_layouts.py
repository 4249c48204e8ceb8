"""Real corpora as they come: LibriSpeech's own subset names (several joined for training), UrbanSound8K's folds
and 10-fold cross-validation, features cached outside the data, the data folder only read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from acom.cli import EXIT_BAD_INPUT
from acom.cli import main as acom
from acom.core.checkpoint import PRETRAINED
from acom.corpora.featcache import FeatureSet, default_cache, open_dataset
from acom.corpora.splits import speech_subsets, us8k_folds
from acom.errors import DataError


def librispeech_like(speech_set: Path, root: Path) -> Path:
    """The generated set under LibriSpeech's real subset names: its train speakers split into train-clean-100 and
    train-clean-360, dev -> dev-clean, test-clean as it is. Made read-only (files 0444, folders 0555)."""
    speakers = sorted(p.name for p in (speech_set / "train").iterdir() if p.is_dir())
    for i, spk in enumerate(speakers):
        shutil.copytree(speech_set / "train" / spk, root / ("train-clean-100" if i % 2 else "train-clean-360") / spk)
    shutil.copytree(speech_set / "dev", root / "dev-clean")
    shutil.copytree(speech_set / "test-clean", root / "test-clean")
    for d, _, files in os.walk(root):
        for f in files:
            os.chmod(Path(d) / f, 0o444)
        os.chmod(d, 0o555)
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_speech_split_names_resolve_against_the_folder(speech_set: Path, tmp_path: Path) -> None:
    root = librispeech_like(speech_set, tmp_path / "LibriSpeech")
    assert speech_subsets(root, "train") == ["train-clean-100", "train-clean-360"]  # the role: every train subset
    assert speech_subsets(root, "dev") == ["dev-clean"] and speech_subsets(root, "test") == ["test-clean"]
    assert speech_subsets(root, "train-clean-360+dev-clean") == ["train-clean-360", "dev-clean"]
    assert speech_subsets(speech_set, "train") == ["train"]  # the generated layout keeps its own names
    both = open_dataset("asr", root, "train")
    assert len(both) == len(open_dataset("asr", speech_set, "train"))
    with pytest.raises(DataError, match="no speech subset 'test-other'.*dev-clean, test-clean, train-clean-100"):
        speech_subsets(root, "test-other")


def test_urbansound_folds_and_cross_validation() -> None:
    assert (us8k_folds("train"), us8k_folds("dev"), us8k_folds("test")) == (list(range(1, 9)), [9], [10])
    assert us8k_folds("fold3") == [3] and us8k_folds("folds1-3,7") == [1, 2, 3, 7]
    assert us8k_folds("cv3-test") == [3] and us8k_folds("cv3-dev") == [4]
    assert us8k_folds("cv10-dev") == [1] and us8k_folds("cv10-train") == list(range(2, 10))
    for k in range(1, 11):  # each fold is tested once, and train/dev/test never overlap
        parts = [set(us8k_folds(f"cv{k}-{r}")) for r in ("train", "dev", "test")]
        assert set.union(*parts) == set(range(1, 11)) and sum(map(len, parts)) == 10
    for bad in ("fold11", "cv0-test", "folds", "validation"):
        with pytest.raises(DataError, match="expected train, dev, test"):
            us8k_folds(bad)


def test_train_eval_and_export_on_a_read_only_librispeech_folder(speech_set: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from tests.export.helpers import edited_board

    root = librispeech_like(speech_set, tmp_path / "LibriSpeech")
    before = snapshot(root)
    monkeypatch.setenv("ACOM_FEATURES", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert acom(["train", "--task", "asr", "--data", str(root), "--out", str(run), "--epochs", "1",
                 "--split-epochs", "1", "--batch-frames", "4000"]) == 0
    cache = default_cache(root)
    assert cache.is_relative_to(tmp_path / "cache")
    train = FeatureSet.load(cache / "asr-train-40.safetensors")  # train-clean-100 and -360 joined
    assert len(train) == len(open_dataset("asr", speech_set, "train"))
    assert (cache / "asr-dev-40.safetensors").is_file()
    capsys.readouterr()
    assert acom(["eval", "--task", "asr", "--checkpoint", str(run / "split.pt"), "--data", str(root),
                 "--subset", "dev-clean", "--json"]) == 0
    assert '"subset": "dev-clean"' in capsys.readouterr().out
    (tmp_path / "board").mkdir()
    board = edited_board(tmp_path / "board", "rpi4", runtimes='["executorch-xnnpack"]')
    code = __import__("acom.export.cli", fromlist=["main"]).main(
        ["--board", str(board), "--task", "asr", "--checkpoint", str(run / "split.pt"), "--data", str(root),
         "--out", str(tmp_path / "export"), "--calibration-windows", "8", "--verify-items", "6", "--keep-failed"])
    assert code in (0, 3)  # written; a one-epoch model may miss the verification bar on 6 utterances
    assert (tmp_path / "export" / "manifest.json").is_file()
    assert snapshot(root) == before  # nothing written, renamed or touched in the data folder


def test_bad_layouts_name_the_file_and_exit_2(speech_set: Path, urban_set: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "LibriSpeech"
    shutil.copytree(speech_set / "test-clean", root / "test-clean")
    trans = next(root.glob("test-clean/*/*/*.trans.txt"))
    trans.unlink()
    assert acom(["eval", "--task", "asr", "--data", str(root), "--cache", str(tmp_path / "c")]) == EXIT_BAD_INPUT
    assert "audio file has no line in" in capsys.readouterr().err
    assert acom(["eval", "--task", "asr", "--data", str(root), "--subset", "dev-other"]) == EXIT_BAD_INPUT
    assert "no speech subset 'dev-other'" in capsys.readouterr().err
    us = tmp_path / "us8k"
    shutil.copytree(urban_set, us)
    csv = us / "metadata" / "UrbanSound8K.csv"
    csv.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 5)
                             for line in csv.read_text().splitlines()))  # the fold column gone
    assert acom(["eval", "--task", "ac", "--data", str(us), "--cache", str(tmp_path / "c")]) == EXIT_BAD_INPUT
    assert "missing columns ['fold']" in capsys.readouterr().err
    assert acom(["eval", "--task", "ac", "--data", str(urban_set), "--fold", "12"]) == EXIT_BAD_INPUT
    assert "--fold 12: UrbanSound8K has folds 1..10" in capsys.readouterr().err
    assert acom(["eval", "--task", "asr", "--data", str(speech_set), "--fold", "3"]) == EXIT_BAD_INPUT
    assert "(--task ac)" in capsys.readouterr().err


def test_eval_names_the_classes_and_shows_references_beside_results(speech_set: Path, urban_set: Path,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    assert acom(["eval", "--task", "ac", "--data", str(urban_set), "--cache", str(tmp_path), "--show", "2"]) == 0
    out = capsys.readouterr().out
    assert "   car_horn   " in out and "air_conditioner" in out  # the confusion matrix rows are named
    assert len([line for line in out.splitlines() if line.startswith("    ") and " -> " in line]) == 2
    assert acom(["eval", "--task", "asr", "--data", str(speech_set), "--cache", str(tmp_path), "--show", "4"]) == 0
    out = capsys.readouterr().out
    refs = [line.split("ref: ")[1] for line in out.splitlines() if "ref: " in line]
    assert len(refs) == 4 and len([line for line in out.splitlines() if "got: " in line]) == 4
    assert set(refs) <= set(FeatureSet.load(tmp_path / "asr-test-clean-40.safetensors").targets)
    assert acom(["eval", "--task", "asr", "--data", str(speech_set), "--cache", str(tmp_path), "--beam", "2",
                 "--checkpoint", str(PRETRAINED / "asr" / "full.pt")]) == 0
    assert "stores no word LM" in capsys.readouterr().err  # said, not silent
