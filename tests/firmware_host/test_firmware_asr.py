"""The speech recognizer's whole device in C on the microcontrollers where it fits (Cortex-M7 and M55): live
audio over the firmware's UART -> front end, Conformer edge graph and wire code in C -> `acom serve`, whose
transcripts equal the tail's on TFLite Micro's codes of the same 16-bit audio. The M55 through `acom flash
--emulate` (one command), the M7 with the same bundle's C built for it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acom.boards import load_board
from acom.core.audio import load_audio
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.firmware import build_firmware
from acom.export.graph import EdgeGraph
from acom.export.micro import run_tflm
from acom.export.verify import item_codes, make_windows
from acom.firmware_host.edge_c import pcm16
from acom.firmware_host.local_serve import local_server
from acom.firmware_host.loopback_demo import pty_pair
from acom.firmware_host.uart_audio import stream_audio
from acom.runtime.bundle import open_bundle, read_manifest
from tests.firmware_host.test_client import ACOM
from tests.runtime.conftest import offline_text

pytestmark = pytest.mark.xdist_group("firmware-asr")


@pytest.fixture(scope="module")
def utterances(speech_set: Path, tmp_path_factory) -> list[Path]:
    """Two test utterances as 16-bit WAV files (what a microphone driver gives the firmware)."""
    out = tmp_path_factory.mktemp("asr-wavs")
    paths = []
    for item in open_dataset("asr", speech_set, TASKS["asr"].test_subset).items[:2]:
        paths.append(out / f"{Path(item.path).stem}.wav")
        sf.write(paths[-1], pcm16(load_audio(item.path, 16000)), 16000, subtype="PCM_16")
    return paths


def tflm_texts(bundle: Path, files: list[Path]) -> list[str]:
    """The tail's transcripts of TFLite Micro's codes on the files' 16-bit audio (features from Python)."""
    m = read_manifest(bundle)
    split, _ = load_checkpoint(PRETRAINED / "asr" / "split.pt", "asr")
    audio = [(load_audio(p, 16000), 0) for p in files]
    w = make_windows(EdgeGraph(split, m.n_q, frontend=False).eval(), audio, m.graph.window_samples,
                     round(m.sample_rate / m.frame_rate))
    codes = item_codes(run_tflm((bundle / "edge_int8.tflite").read_bytes(), w.inputs)[0], w)
    bundle_ = open_bundle(bundle)
    return [offline_text(bundle_, c) for c in codes]


def test_m55_asr_by_acom_flash_emulate(m55_asr, utterances):
    m = read_manifest(m55_asr)
    assert m.firmware.written and m.firmware.sections["ram_bytes"] <= load_board(m.board).ram_kib * 1024
    run = subprocess.run([*ACOM, "flash", "--bundle", str(m55_asr), "--emulate", "--entropy", "--json",
                          *map(str, utterances)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    want = tflm_texts(m55_asr, utterances)
    assert [r["text"] for r in result["finals"]] == want and any(want)
    assert result["errors"] == [] and [r["payload"] for r in result["device"]] == ["entropy"] * len(utterances)


def test_m7_asr_firmware_into_acom_serve(m55_asr, utterances, tmp_path):
    m = read_manifest(m55_asr)
    elf = build_firmware("cortex-m7", m, m55_asr / "c", tmp_path).files[m.firmware.elf]
    clips = [(i, pcm16(load_audio(p, 16000))) for i, p in enumerate(utterances)]
    with pty_pair(tmp_path) as (device, server), \
            local_server(m55_asr, tmp_path / "serve.jsonl", tty=server) as srv:
        run = stream_audio("cortex-m7", elf, clips, serial=str(device), timeout=600)
        finals = srv.wait_finals(len(clips), timeout=120)
    assert run.errors == [] and [r["frames"] for r in run.streams] == [
        max(1, -(-len(pcm) // round(m.sample_rate / m.frame_rate))) for _, pcm in clips]
    assert [r["text"] for r in finals] == tflm_texts(m55_asr, utterances)
    assert np.all([r["missing_frames"] == 0 for r in finals])
