"""What the C tests share: the stdin test driver built once per module."""

from __future__ import annotations

import subprocess

import pytest

from acom.firmware_host import cbuild


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """c/test/encode_stdin.c built for this machine: records in -> the lines it prints."""
    work = tmp_path_factory.mktemp("encoder")
    exe = cbuild.build("host", [cbuild.TEST_DIR / "encode_stdin.c"], work / "encode_stdin", work)

    def run(records: bytes) -> list[str]:
        done = subprocess.run([str(exe)], input=records, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().splitlines()
    return run


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
    import soundfile as sf

    out = tmp_path_factory.mktemp("wavs")
    paths = []
    for flac in sorted(speech_set.glob("test-clean/*/*/*.flac")):
        pcm, rate = sf.read(flac, dtype="int16")
        paths.append(out / f"{flac.stem}.wav")
        sf.write(paths[-1], pcm, rate, subtype="PCM_16")
    return paths
