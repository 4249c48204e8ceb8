"""Shared fixtures: small generated data sets, made once per test session (per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from acom.training.synth.speech import SpeechSynthConfig, generate_speech

# Two xdist workers share two cores: one thread each avoids oversubscription (tiny ops ran ~100x slower).
torch.set_num_threads(1)

SMALL_SPEECH = SpeechSynthConfig(minutes=0.5, seed=7, workers=2)


@pytest.fixture(scope="session")
def speech_set(tmp_path_factory) -> Path:
    """A small speech set in LibriSpeech layout (every voice at least once per subset)."""
    out = tmp_path_factory.mktemp("speech") / "set"
    generate_speech(out, SMALL_SPEECH, progress=False)
    return out
