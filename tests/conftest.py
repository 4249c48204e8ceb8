"""Shared fixtures: small generated data sets, made once per test session (per xdist worker)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from acom.corpora.synth.speech import SpeechSynthConfig, generate_speech

# Two xdist workers share two cores: one thread each avoids oversubscription (tiny ops ran ~100x slower).
torch.set_num_threads(1)

SMALL_SPEECH = SpeechSynthConfig(minutes=0.5, seed=7, workers=2)


@pytest.fixture(scope="session", autouse=True)
def feature_cache(tmp_path_factory) -> Path:
    """Features of the session's data sets are cached in a folder of the session (ACOM_FEATURES, which
    subprocesses inherit), not in the user's cache."""
    folder = tmp_path_factory.mktemp("features")
    os.environ["ACOM_FEATURES"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def speech_set(tmp_path_factory) -> Path:
    """A small speech set in LibriSpeech layout (every voice at least once per subset)."""
    out = tmp_path_factory.mktemp("speech") / "set"
    generate_speech(out, SMALL_SPEECH, progress=False)
    return out


@pytest.fixture(scope="session")
def urban_set(tmp_path_factory) -> Path:
    """A small UrbanSound8K-layout set: train folds 1-8 for calibration and test fold 10 (2 clips per class)."""
    from acom.corpora.synth.urban import generate_urban

    out = tmp_path_factory.mktemp("urban") / "set"
    generate_urban(out, clips_per_class=20, seed=0, folds=(1, 2, 10), progress=False)
    return out


@pytest.fixture(scope="session")
def ac_bundle(urban_set: Path, tmp_path_factory) -> tuple[Path, dict]:
    """An rpi4 export (ExecuTorch only) of the shipped classifier: (bundle folder, manifest)."""
    from acom.export.pipeline import ExportOptions, export
    from tests.export.helpers import edited_board

    out = tmp_path_factory.mktemp("bundle") / "ac"
    board = edited_board(tmp_path_factory.mktemp("board"), "rpi4", runtimes='["executorch-xnnpack"]', name='"rpi4-et"')
    manifest = export(ExportOptions(board=str(board), task="ac", out=out, data=urban_set,
                                    calibration_windows=8, verify_items=12, log=lambda s: None))
    assert manifest.to_dict() == {**json.loads((out / "manifest.json").read_text()), **manifest.extra}
    return out, manifest.to_dict()  # the manifest as JSON: the contract the tests read


@pytest.fixture(scope="session")
def rpi4_asr(speech_set, tmp_path_factory):
    """An rpi4 export (ExecuTorch only) of the shipped ASR model, with its priors: the bundle folder."""
    from acom.export.pipeline import ExportOptions, export
    from tests.export.helpers import edited_board

    out = tmp_path_factory.mktemp("rpi4-asr") / "bundle"
    board = edited_board(tmp_path_factory.mktemp("board"), "rpi4", runtimes='["executorch-xnnpack"]')
    export(ExportOptions(board=str(board), task="asr", out=out, data=speech_set, calibration_windows=8,
                         verify_items=8, keep_failed=True, log=lambda s: None))
    return out  # verification on 8 utterances of the small set may miss the bar: these tests compare codes


@pytest.fixture(scope="session")
def speech_wavs(speech_set, tmp_path_factory):
    """The speech set's test-clean utterances as 16-bit mono WAV files (what acom-edge reads), sorted."""
    from acom.firmware_host.edge_runner import to_wavs

    return to_wavs(sorted(speech_set.glob("test-clean/*/*/*.flac")), 16000, tmp_path_factory.mktemp("wavs"))


def _m55_export(task: str, data: Path, tmp_path_factory, verify_items: int) -> Path:
    """The shipped `task` model exported for the Cortex-M55 board (TFLite Micro, vela, its C graph and firmware),
    written even if verification on the small set misses its bar (the tests that need it passed check it)."""
    from acom.export.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("m55") / task
    export(ExportOptions(board="cortex-m55-u55", task=task, out=out, data=data, calibration_windows=8,
                         verify_items=verify_items, keep_failed=True, log=lambda s: None))
    return out


@pytest.fixture(scope="session")
def m55_ac(urban_set: Path, tmp_path_factory) -> Path:
    """The shipped classifier's Cortex-M55 bundle (read only: every test that exports it shares this one)."""
    return _m55_export("ac", urban_set, tmp_path_factory, 12)


@pytest.fixture(scope="session")
def m55_asr(speech_set: Path, tmp_path_factory) -> Path:
    """The shipped speech recognizer's Cortex-M55 bundle (read only)."""
    return _m55_export("asr", speech_set, tmp_path_factory, 4)
