"""`acom send` end to end: the exported edge.pte in the ExecuTorch runtime -> UDP or serial -> `acom serve`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import torch

from acom.firmware_host.client import artifact_encoder
from acom.runtime.bundle import open_bundle, read_manifest
from acom.training.audio import load_audio
from acom.training.featcache import TEST_SUBSET, open_dataset

ACOM = [sys.executable, "-m", "acom.cli"]


def serve(bundle, out, *extra):
    proc = subprocess.Popen([*ACOM, "serve", "--bundle", str(bundle), "--out", str(out), "--threads", "1", *extra],
                            stderr=subprocess.PIPE, text=True)
    return proc, json.loads(proc.stderr.readline())


def finals(out) -> list[dict]:
    lines = [json.loads(x) for x in out.read_text().split("\n")[:-1]] if out.exists() else []  # whole lines
    return [r for r in lines if r["type"] == "final"]


def wait_finals(proc, out, n: int) -> list[dict]:
    start = time.monotonic()
    while len(finals(out)) < n:
        assert time.monotonic() - start < 60 and proc.poll() is None, "no final results"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    return finals(out)


def test_send_pte_codes_over_udp_and_serial_get_the_offline_labels(ac_bundle, urban_set, tmp_path):
    bundle_dir, _ = ac_bundle
    manifest, bundle = read_manifest(bundle_dir), open_bundle(bundle_dir)
    files = [item.path for item in open_dataset("ac", urban_set, TEST_SUBSET["ac"]).items[:3]]
    encode = artifact_encoder(bundle_dir, manifest, "edge.pte")
    with torch.inference_mode():
        want = [int(bundle.split.server()(torch.as_tensor(encode(load_audio(f, 16000)))[None]).argmax())
                for f in files]

    out = tmp_path / "udp.jsonl"
    proc, ready = serve(bundle_dir, out, "--udp", "127.0.0.1:0", "--window-s", "60")
    sent = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", f"127.0.0.1:{ready['udp'][1]}",
                           "--device-id", "4", *map(str, files)], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    report = [json.loads(x) for x in sent.stdout.splitlines()]
    assert [r["stream"] for r in report] == [0, 1, 2] and all(r["packets"] >= 1 for r in report)
    finals = sorted(wait_finals(proc, out, 3), key=lambda r: r["stream"])
    assert [r["label"] for r in finals] == want and all(r["device"] == 4 for r in finals)


def test_send_over_a_serial_pty_pair(ac_bundle, urban_set, tmp_path):
    """socat links two ptys: `acom send --serial A` writes COBS frames, `acom serve --serial B` reads them."""
    bundle_dir, _ = ac_bundle
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    link = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])
    try:
        start = time.monotonic()
        while not (a.exists() and b.exists()):
            assert time.monotonic() - start < 10, "socat made no pty pair"
            time.sleep(0.05)
        out = tmp_path / "serial.jsonl"
        proc, _ = serve(bundle_dir, out, "--serial", str(b))
        time.sleep(1.5)  # the server opens its port first: pyserial's open discards bytes that came before
        file = open_dataset("ac", urban_set, TEST_SUBSET["ac"]).items[0].path
        sent = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--serial", str(a), str(file)],
                              capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        (final,) = wait_finals(proc, out, 1)
        assert final["frames"] == json.loads(sent.stdout)["frames"] and final["missing_frames"] == 0
    finally:
        link.terminate()
        link.wait(timeout=10)


def test_send_bad_input(ac_bundle, tmp_path):
    bundle_dir, _ = ac_bundle
    wav = tmp_path / "x.wav"
    r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", "127.0.0.1:9", "--artifact",
                        "edge.tflite", str(wav)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no artifact 'edge.tflite'" in r.stderr and "edge.pte" in r.stderr
    r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", "127.0.0.1:9", str(wav)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and str(wav) in r.stderr
