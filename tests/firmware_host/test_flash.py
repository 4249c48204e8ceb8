"""`acom flash`: a Linux bundle's acom-edge under qemu-aarch64 into a local acom serve in one command, the folder
to copy onto a Pi, and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from acom.cli import main as acom_main
from acom.core.audio import load_audio
from acom.firmware_host.client import artifact_encoder
from acom.firmware_host.edge_runner import AARCH64_SYSROOT, LIBRARIES
from acom.runtime.bundle import open_bundle, read_manifest
from tests.firmware_host.test_client import ACOM
from tests.runtime.conftest import offline_text

pytestmark = pytest.mark.xdist_group("acom-edge")  # shares acom-edge's builds with test_edge_runner.py


def test_emulate_a_pi_bundle_end_to_end(rpi4_asr, speech_wavs):
    """One command: acom-edge under qemu-aarch64 -> UDP -> acom serve; each stream's transcript is the tail's
    on the codes of the Python ExecuTorch runtime."""
    files = speech_wavs[:3]
    run = subprocess.run([*ACOM, "flash", "--bundle", str(rpi4_asr), "--emulate", "--entropy", "--json",
                          *map(str, files)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    m = read_manifest(rpi4_asr)
    encode, bundle = artifact_encoder(rpi4_asr, m, "edge.pte"), open_bundle(rpi4_asr)
    want = [offline_text(bundle, encode(load_audio(p, m.sample_rate))) for p in files]
    assert [r["text"] for r in result["finals"]] == want and any(want)
    assert [r["payload"] for r in result["device"]] == ["entropy"] * len(files)
    assert result["summary"]["packets"]["accepted"] == sum(r["packets"] for r in result["device"])


def test_a_pi_folder_with_what_the_board_needs(rpi4_asr, speech_wavs, tmp_path):
    out = tmp_path / "pi"
    run = subprocess.run([*ACOM, "flash", "--bundle", str(rpi4_asr), "--out", str(out), "--to", "10.0.0.2:5004",
                          "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    said = json.loads(run.stdout)
    assert len(said["install"]) == 2 and "systemctl enable --now" in said["install"][1]
    exe = out / "bin" / "acom-edge"
    assert exe.read_bytes()[18] == 183  # ELF e_machine: AArch64
    dyn = subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True, check=True).stdout
    assert "$ORIGIN/../lib" in dyn
    needed = {line.split("[")[1].rstrip("]") for line in dyn.splitlines() if "(NEEDED)" in line}
    assert {n for n in needed if n.startswith("libexecutorch")} <= {p.name for p in (out / "lib").iterdir()}
    assert {p.name for p in (out / "lib").iterdir()} == set(LIBRARIES)
    assert (out / "bundle" / "edge.pte").read_bytes() == (rpi4_asr / "edge.pte").read_bytes()
    assert "ACOM_SERVER=10.0.0.2:5004" in (out / "acom-edge.env").read_text()
    assert "ACOM_OPTIONS=--entropy" in (out / "acom-edge.env").read_text()
    assert subprocess.run(["sh", "-n", str(out / "run.sh")]).returncode == 0
    unit = (out / "acom-edge.service").read_text()
    assert "ExecStart=/opt/acom-edge/run.sh" in unit and "Restart=on-failure" in unit
    # the copied program runs from the folder on the board's emulator, reading the folder's bundle
    ran = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a72", "-L", str(AARCH64_SYSROOT), str(exe), "--bundle",
                          str(out / "bundle"), "--udp", "127.0.0.1:9", "--print-codes", str(speech_wavs[0])],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    m = read_manifest(rpi4_asr)
    codes = artifact_encoder(rpi4_asr, m, "edge.pte")(load_audio(speech_wavs[0], m.sample_rate))
    assert json.loads(ran.stdout)["codes"] == codes.tolist()
    again = subprocess.run([*ACOM, "flash", "--bundle", str(rpi4_asr), "--out", str(out)], capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 2 and "exists" in again.stderr


def test_bad_input(rpi4_asr, speech_wavs, tmp_path, capsys):
    cases = [(["--emulate"], "give audio files"),
             ([str(speech_wavs[0])], "audio files go with --emulate"),
             (["--emulate", "--packet-s", "0", str(speech_wavs[0])], "--packet-s 0"),
             (["--emulate", str(tmp_path / "missing.wav")], "missing.wav")]
    for extra, said in cases:
        assert acom_main(["flash", "--bundle", str(rpi4_asr), *extra]) == 2
        assert said in capsys.readouterr().err
    assert acom_main(["flash", "--bundle", str(tmp_path / "nothing")]) == 2
    assert "manifest" in capsys.readouterr().err
    assert not list(Path.cwd().glob(".acom-edge-*.tmp-*"))
