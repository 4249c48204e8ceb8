"""`acom send` end to end: the exported edge.pte in the ExecuTorch runtime -> UDP or serial -> `acom serve`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import soundfile as sf
import torch

from acom.core.audio import load_audio
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.firmware_host.client import artifact_encoder
from acom.firmware_host.loopback_demo import pty_pair
from acom.runtime.bundle import open_bundle, read_manifest
from acom.runtime.sender import stream_packets
from acom.runtime.wire import codebook_id

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
    files = [item.path for item in open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[:3]]
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
    with pty_pair(tmp_path) as (a, b):
        out = tmp_path / "serial.jsonl"
        proc, _ = serve(bundle_dir, out, "--serial", str(b))
        time.sleep(1.5)  # the server opens its port first: pyserial's open discards bytes that came before
        file = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[0].path
        sent = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--serial", str(a), str(file)],
                              capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        (final,) = wait_finals(proc, out, 1)
        assert final["frames"] == json.loads(sent.stdout)["frames"] and final["missing_frames"] == 0


def _pte_codes_and_labels(bundle_dir, files):
    manifest, bundle = read_manifest(bundle_dir), open_bundle(bundle_dir)
    encode = artifact_encoder(bundle_dir, manifest, "edge.pte")
    codes = [encode(load_audio(f, 16000)) for f in files]
    with torch.inference_mode():
        labels = [int(bundle.split.server()(torch.as_tensor(c)[None]).argmax()) for c in codes]
    return manifest, codes, labels


def _python_packets(manifest, codes, device_id, first_stream, full_every=8, priors=None, key=None, tag_len=8):
    """What `acom send` in Python would send: the C device's report must match it packet for packet."""
    sizes, book = list(manifest.model.codebook_sizes), codebook_id(manifest.codebook_hash)
    fpp = round(manifest.frame_rate)
    return [stream_packets(c, sizes, book, device_id=device_id, stream_id=first_stream + i, frames_per_packet=fpp,
                           full_every=full_every, priors=priors, key=key, tag_len=tag_len)
            for i, c in enumerate(codes)]


KEY = "00112233445566778899aabbccddeeff"


def test_c_device_on_qemu_aarch64_sends_udp_to_the_server(ac_bundle, urban_set, tmp_path):
    """The rpi4 C sender (static aarch64 under qemu-aarch64), range-coding (--entropy), 4-byte tags ->
    UDP -> acom serve with the device's key: the labels of the tail run on the whole clips, and the packets and
    bytes Python's sender would send."""
    bundle_dir, _ = ac_bundle
    files = [item.path for item in open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[:3]]
    manifest, codes, want = _pte_codes_and_labels(bundle_dir, files)
    out, keys = tmp_path / "udp.jsonl", tmp_path / "keys.json"
    keys.write_text(json.dumps({"5": KEY}))
    proc, ready = serve(bundle_dir, out, "--udp", "127.0.0.1:0", "--window-s", "60", "--keys", str(keys))
    sent = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", f"127.0.0.1:{ready['udp'][1]}",
                           "--device-id", "5", "--first-stream", "10", "--c-device", "rpi4", "--entropy",
                           "--key", KEY, "--tag-bytes", "4", *map(str, files)],
                          capture_output=True, text=True, timeout=180)
    assert sent.returncode == 0, sent.stderr
    report = [json.loads(x) for x in sent.stdout.splitlines()]
    py = _python_packets(manifest, codes, 5, 10, priors=open_bundle(bundle_dir).priors, key=bytes.fromhex(KEY),
                         tag_len=4)
    assert all(r["payload"] == "entropy" for r in report)
    assert [(r["stream"], r["packets"], r["bytes"], r["sender"]) for r in report] == [
        (10 + i, len(p), sum(map(len, p)), "c:rpi4") for i, p in enumerate(py)]
    finals = sorted(wait_finals(proc, out, 3), key=lambda r: r["stream"])
    assert [r["label"] for r in finals] == want and all(r["device"] == 5 for r in finals)


def test_c_firmware_on_qemu_cortex_m55_sends_on_its_uart(ac_bundle, urban_set, tmp_path):
    """Cortex-M55 firmware (qemu-system-arm, mps3-an547) writes COBS frames on its UART, a pty that socat links
    to the one `acom serve --serial` reads: the server's label is the whole clip's."""
    bundle_dir, _ = ac_bundle
    files = [item.path for item in open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[3:5]]
    manifest, codes, want = _pte_codes_and_labels(bundle_dir, files)
    with pty_pair(tmp_path) as (a, b):
        out = tmp_path / "serial.jsonl"
        proc, _ = serve(bundle_dir, out, "--serial", str(b), "--window-s", "60")
        time.sleep(1.5)  # the server opens its port first: pyserial's open discards bytes that came before
        sent = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--serial", str(a), "--c-device",
                               "cortex-m55-u55", "--full-every", "2", *map(str, files)],
                              capture_output=True, text=True, timeout=180)
        assert sent.returncode == 0, sent.stderr
        report = [json.loads(x) for x in sent.stdout.splitlines()]
        py = _python_packets(manifest, codes, 1, 0, full_every=2)
        assert [(r["packets"], r["bytes"]) for r in report] == [(len(p), sum(map(len, p))) for p in py]
        finals = sorted(wait_finals(proc, out, 2), key=lambda r: r["stream"])
        assert [r["label"] for r in finals] == want and all(r["missing_frames"] == 0 for r in finals)


def test_c_device_bad_input(ac_bundle, tmp_path):
    bundle_dir, _ = ac_bundle
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    for extra, message in ((["--udp", "127.0.0.1:9", "--c-device", "rpi9"], "--c-device rpi9: one of host"),
                           (["--serial", str(tmp_path / "tty"), "--c-device", "rpi4"], "board rpi4 sends UDP"),
                           (["--udp", "127.0.0.1:9", "--c-device", "cortex-m4"], "board cortex-m4 sends on its UART"),
                           (["--serial", str(tmp_path / "tty"), "--c-device", "cortex-m4"], "no such tty"),
                           (["--udp", "127.0.0.1:9", "--c-device", "rpi4", "--realtime"], "leave out --realtime")):
        r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), *extra, str(wav)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr, (extra, r.stderr)


def test_send_bad_input(ac_bundle, tmp_path):
    bundle_dir, _ = ac_bundle
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    bare = tmp_path / "bare"  # the bundle without its priors: nothing to range-code with
    shutil.copytree(bundle_dir, bare)
    manifest = json.loads((bare / "manifest.json").read_text())
    (bare / "manifest.json").write_text(json.dumps({**manifest, "priors": None}))
    r = subprocess.run([*ACOM, "send", "--bundle", str(bare), "--udp", "127.0.0.1:9", "--entropy", str(wav)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--entropy:" in r.stderr and "has no priors" in r.stderr, r.stderr
    wav.unlink()
    r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", "127.0.0.1:9", "--artifact",
                        "edge.tflite", str(wav)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no artifact 'edge.tflite'" in r.stderr and "edge.pte" in r.stderr
    r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", "127.0.0.1:9", str(wav)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and str(wav) in r.stderr
    for key, message in (("zz", "--key zz...: not hex"), ("abcd", "--key: 2 bytes; keys are at least 16 bytes")):
        r = subprocess.run([*ACOM, "send", "--bundle", str(bundle_dir), "--udp", "127.0.0.1:9", "--key", key,
                            str(tmp_path / "x.flac")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
