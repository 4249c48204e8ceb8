"""The `acom` command: JSON output, help, and exit codes that mean something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from acom.cli import EXIT_BAD_INPUT, main


def test_summary_json_counts_the_generated_set(speech_set: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "summary", str(speech_set), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[str(speech_set)]
    manifest = json.loads((speech_set / "synth_manifest.json").read_text())
    assert out["format"] == "LibriSpeech"
    for subset in ("train", "dev", "test-clean", "test-noisy"):
        assert out[subset]["utterances"] == manifest["subsets"][subset]["utterances"]
        assert out[subset]["minutes"] == pytest.approx(manifest["subsets"][subset]["minutes"], abs=0.02)


def test_bad_input_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "summary", str(tmp_path / "nowhere")]) == EXIT_BAD_INPUT
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert main(["data", "synth-speech", "--out", str(tmp_path / "s"), "--minutes", "0"]) == EXIT_BAD_INPUT
    assert "--minutes must be above 0" in capsys.readouterr().err
    assert main(["data", "synth-urban", "--out", str(tmp_path / "u"), "--clips-per-class", "0"]) == EXIT_BAD_INPUT
    assert "clips_per_class must be" in capsys.readouterr().err


def test_console_script_help_and_usage_errors() -> None:
    exe = Path(sys.executable).with_name("acom")
    done = subprocess.run([str(exe), "data", "synth-speech", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--minutes" in done.stdout and "LibriSpeech" in done.stdout
    done = subprocess.run([str(exe), "no-such-command"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice" in done.stderr
