"""The shipped default models reproduce their recorded metrics on freshly regenerated test sets."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.corpora.data_cli import _parser as data_parser
from acom.corpora.featcache import cached_features
from acom.corpora.synth.speech import SpeechSynthConfig, generate_speech
from acom.corpora.synth.urban import generate_urban
from acom.training.train_cli import evaluate_checkpoint

MB = 1024 * 1024


def test_shipped_models_are_small_and_documented() -> None:
    files = [p for p in PRETRAINED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * MB
    readme = (PRETRAINED / "README.md").read_text()
    for task in ("asr", "ac"):
        cmd = json.loads((PRETRAINED / task / "command.json").read_text())
        assert cmd["command"] in readme and "seed" in cmd
        assert json.loads((PRETRAINED / task / "metrics.json").read_text())["data_command"] in readme


def _regenerate(task: str, record: dict, out: Path) -> Path:
    """Remake only the test subset of the data the model was evaluated on, from the recorded command."""
    args = data_parser().parse_args(shlex.split(record["data_command"])[2:])
    if task == "asr":
        generate_speech(out, SpeechSynthConfig(minutes=args.minutes, seed=args.seed, subsets=("test-clean",)),
                        progress=False)
    else:
        generate_urban(out, clips_per_class=args.clips_per_class, seed=args.seed, folds=(10,), progress=False)
    return out


@pytest.mark.parametrize("task", ["asr", "ac"])
def test_shipped_models_reproduce_their_metrics(task: str, tmp_path: Path) -> None:
    record = json.loads((PRETRAINED / task / "metrics.json").read_text())
    root = _regenerate(task, record, tmp_path / "data")
    metric = "wer" if task == "asr" else "accuracy"
    for name, expected in record["results"].items():
        split, payload = load_checkpoint(PRETRAINED / task / name, task)
        fs = cached_features(task, record["test_subset"], split.model.frontend.cfg.n_mels, root=root,
                             progress=False)
        assert len(fs) == record["items"]
        rows = evaluate_checkpoint(split, payload, fs)
        assert [r["n_q"] for r in rows] == [r["n_q"] for r in expected]
        for got, want in zip(rows, expected):
            assert got[metric] == pytest.approx(want[metric], abs=0.005), (name, got["n_q"])
            if "entropy_bps" in want:
                assert got["entropy_bps"] == pytest.approx(want["entropy_bps"], rel=0.01)
