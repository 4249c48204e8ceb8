"""acom-edge (firmware_host/c/linux/): the edge.pte in the C++ ExecuTorch runtime on this machine and on
aarch64 (qemu-aarch64 -cpu cortex-a72, XNNPACK's Arm kernels) against the Python runtime's codes and packets,
live input, `acom serve`'s transcripts, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acom.core.audio import load_audio
from acom.firmware_host.client import artifact_encoder
from acom.firmware_host.edge_runner import build_edge, edge_command
from acom.firmware_host.loopback_demo import pty_pair
from acom.runtime.bundle import load_priors, read_manifest
from acom.runtime.sender import stream_packets
from acom.runtime.wire import codebook_id
from tests.firmware_host.test_client import ACOM, serve, wait_finals

KEY = "00112233445566778899aabbccddeeff"
pytestmark = pytest.mark.xdist_group("acom-edge")  # one worker builds and runs it: two qemu runs would share 2 cores


def edge(board: str, *args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*edge_command(board, build_edge(board)), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def received(sock: socket.socket) -> list[bytes]:
    out = []
    try:
        while True:
            out.append(sock.recv(2048))
    except TimeoutError:
        return out


@pytest.mark.parametrize("board", ["host", "rpi4"])
def test_codes_and_packets_equal_the_python_runtimes(board, rpi4_asr, speech_wavs, tmp_path):
    """Every test utterance: the codes acom-edge computes equal the Python ExecuTorch runtime's (all of them on
    this machine; at least 99.9% per stage on the Arm kernels), and its datagrams are byte for byte the packets
    stream_packets makes of its codes (range-coded, 4-byte tags, short and full packets)."""
    m = read_manifest(rpi4_asr)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"3": KEY}))
    sock = udp_socket()
    run = edge(board, "--bundle", rpi4_asr, "--udp", f"127.0.0.1:{sock.getsockname()[1]}", "--entropy", "--keys",
               keys, "--device-id", 3, "--tag-bytes", 4, "--packet-s", 0.4, "--print-codes", *speech_wavs)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    assert [r["file"] for r in lines] == [str(p) for p in speech_wavs] and all(r["board"] == "rpi4" for r in lines)
    encode = artifact_encoder(rpi4_asr, m, "edge.pte")
    want = [encode(load_audio(p, m.sample_rate)) for p in speech_wavs]
    got = [np.array(r["codes"]) for r in lines]
    assert [g.shape for g in got] == [w.shape for w in want]
    agreement = (np.concatenate(got, 1) == np.concatenate(want, 1)).mean(axis=1)
    assert agreement.min() >= (1.0 if board == "host" else 0.999), agreement
    packets = []
    for i, codes in enumerate(got):
        packets += stream_packets(codes, list(m.codebook_sizes), codebook_id(m.codebook_hash), device_id=3,
                                  stream_id=i, frames_per_packet=10, key=bytes.fromhex(KEY), tag_len=4,
                                  priors=load_priors(rpi4_asr, m), full_every=8)
    assert received(sock) == packets


def test_serve_gives_the_python_devices_transcripts(rpi4_asr, speech_wavs, tmp_path):
    """acom-edge on aarch64 into `acom serve` over UDP: the same transcripts as `acom send` (the Python device)
    of the same files."""
    n = min(3, len(speech_wavs))
    texts = []
    for i, device in enumerate(("python", "rpi4")):
        out = tmp_path / f"serve-{device}.jsonl"
        proc, ready = serve(rpi4_asr, out, "--udp", "127.0.0.1:0")
        to = f"127.0.0.1:{ready['udp'][1]}"
        if device == "python":
            sent = subprocess.run([*ACOM, "send", "--bundle", rpi4_asr, "--udp", to, *speech_wavs[:n]],
                                  capture_output=True, text=True, timeout=300)
        else:
            sent = edge("rpi4", "--bundle", rpi4_asr, "--udp", to, *speech_wavs[:n])
        assert sent.returncode == 0, sent.stderr
        finals = sorted(wait_finals(proc, out, n), key=lambda r: r["stream"])
        texts.append([r["text"] for r in finals])
        assert i == 0 or texts[1] == texts[0]
    assert any(texts[0])  # the model says something: an empty transcript everywhere would prove nothing


def test_live_input_from_stdin_and_a_capture_command(rpi4_asr, speech_wavs, tmp_path):
    """Raw samples on standard input and a WAV from a capture command give the file's codes; audio that ends on
    a window's edge ends its stream with a packet of no frames."""
    m = read_manifest(rpi4_asr)
    wav = speech_wavs[0]
    pcm, _ = sf.read(wav, dtype="int16")
    base = edge("host", "--bundle", rpi4_asr, "--udp", "127.0.0.1:9", "--print-codes", wav)
    assert base.returncode == 0, base.stderr
    codes = json.loads(base.stdout)["codes"]
    (tmp_path / "a.raw").write_bytes(pcm.astype("<i2").tobytes())
    with open(tmp_path / "a.raw", "rb") as f:
        live = edge("host", "--bundle", rpi4_asr, "--udp", "127.0.0.1:9", "--print-codes", "-", stdin=f)
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout)["codes"] == codes
    capture = edge("host", "--bundle", rpi4_asr, "--udp", "127.0.0.1:9", "--print-codes", f"|cat {wav}")
    assert capture.returncode == 0, capture.stderr
    assert json.loads(capture.stdout)["codes"] == codes
    # exactly one window of live audio: its frames in full packets, then an end packet of no frames
    window = np.resize(pcm, m.graph.window_samples).astype("<i2")
    sock = udp_socket()
    one = edge("host", "--bundle", rpi4_asr, "--udp", f"127.0.0.1:{sock.getsockname()[1]}", "-",
               stdin=_file(tmp_path / "w.raw", window.tobytes()))
    assert one.returncode == 0, one.stderr
    r = json.loads(one.stdout)
    per_window, fpp = m.graph.window_samples // round(m.sample_rate / m.frame_rate), round(m.frame_rate)
    assert r["frames"] == per_window and r["packets"] == per_window // fpp + 1
    from acom.runtime.wire import Contexts, decode_packet
    ctx = Contexts()
    decoded = [decode_packet(d, None, ctx) for d in received(sock)]
    assert [p.n_frames for p in decoded] == [fpp] * (per_window // fpp) + [0] and decoded[-1].end_of_stream


def _file(path: Path, data: bytes):
    path.write_bytes(data)
    return open(path, "rb")  # noqa: SIM115 (closed when the test's process ends; subprocess reads it)


def test_bad_input_exits_2_with_a_message(rpi4_asr, speech_wavs, tmp_path):
    wav = speech_wavs[0]
    pcm, rate = sf.read(wav, dtype="int16")
    bad_rate, stereo, text = tmp_path / "8k.wav", tmp_path / "stereo.wav", tmp_path / "notes.wav"
    sf.write(bad_rate, pcm[::2], rate // 2, subtype="PCM_16")
    sf.write(stereo, np.stack([pcm, pcm], 1), rate, subtype="PCM_16")
    text.write_text("not audio")
    tampered = shutil.copytree(rpi4_asr, tmp_path / "tampered")
    with open(tampered / "edge.pte", "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    other = shutil.copytree(rpi4_asr, tmp_path / "rpi5")
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "board": "rpi5"}))
    refused = shutil.copytree(rpi4_asr, tmp_path / "refused")
    (refused / "edge.pte").write_bytes(b"not a program" * 10)
    import hashlib
    manifest["files"]["edge.pte"]["sha256"] = hashlib.sha256((refused / "edge.pte").read_bytes()).hexdigest()
    (refused / "manifest.json").write_text(json.dumps(manifest))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"9": KEY}))
    cases = [
        ("host", [rpi4_asr, bad_rate], "8000 Hz; the bundle takes 16000 Hz"),
        ("host", [rpi4_asr, stereo], "2 channels"),
        ("host", [rpi4_asr, text], "not a WAV file"),
        ("host", [rpi4_asr, tmp_path / "missing.wav"], "cannot open the audio file"),
        ("host", [tampered, wav], "is not the manifest's"),
        ("host", [refused, wav], "refused the program"),
        ("rpi4", [other, wav], "a bundle for board rpi5, not rpi4"),
        ("host", [tmp_path, wav], "manifest.json: cannot read"),
        ("host", [rpi4_asr, wav, "--keys", keys], "no key for device 1"),
        ("host", [rpi4_asr, wav, "--tag-bytes", "5"], "one of 4, 8, 16"),
        ("host", [rpi4_asr, wav, "--frobnicate"], "unknown option"),
    ]
    for board, (bundle, *rest), said in cases:
        run = edge(board, "--bundle", bundle, "--udp", "127.0.0.1:9", *rest, timeout=120)
        assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr, (said, run.stderr)
    nothing = edge("host", "--bundle", rpi4_asr, wav)
    assert nothing.returncode == 2 and "--udp or --serial" in nothing.stderr
    helped = edge("host", "--help")
    assert helped.returncode == 0 and "--profile FILE" in helped.stdout


def test_a_serial_link_that_goes_away_fails_after_retries(rpi4_asr, speech_wavs, tmp_path):
    """Packets as COBS frames on a pty pair; when the pair goes away mid-stream the program retries with
    back-off, then exits 1 with a message (never hangs). A port that never existed is the user's mistake: 2."""
    with pty_pair(tmp_path) as (device, _server):
        pass
    run = edge("host", "--bundle", rpi4_asr, "--serial", device, speech_wavs[0], timeout=60)
    assert run.returncode == 2 and "No such file" in run.stderr, run.stderr
    m = read_manifest(rpi4_asr)
    window = np.zeros(m.graph.window_samples, "<i2").tobytes()
    start = time.monotonic()
    with pty_pair(tmp_path) as (device, server):
        fd = os.open(server, os.O_RDONLY | os.O_NONBLOCK)
        proc = subprocess.Popen([*edge_command("host", build_edge("host")), "--bundle", str(rpi4_asr), "--serial",
                                 str(device), "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(window)  # a live stream: one window's packets go out while the link is there
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not _readable(fd) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _readable(fd), "no packet on the serial link"
    os.close(fd)
    proc.stdin.write(window)  # the link is gone: these packets cannot be written
    proc.stdin.close()
    assert proc.wait(timeout=60) == 1
    err = proc.stderr.read().decode()
    assert "gave up after 5 retries" in err and "Traceback" not in err, err
    assert time.monotonic() - start < 60


def _readable(fd: int) -> bool:
    import select
    return bool(select.select([fd], [], [], 0)[0])


def test_profile_writes_an_etdump_the_inspector_reads(rpi4_asr, speech_wavs, tmp_path):
    """--profile: per-operator times of every run, XNNPACK's kernels among them, in a file executorch's Inspector
    reads."""
    from executorch.devtools import Inspector
    dump = tmp_path / "edge.etdp"
    run = edge("host", "--bundle", rpi4_asr, "--udp", "127.0.0.1:9", "--profile", dump, *speech_wavs[:2])
    assert run.returncode == 0, run.stderr
    windows = sum(json.loads(x)["windows"] for x in run.stdout.splitlines())
    events = [e for block in Inspector(etdump_path=str(dump)).event_blocks for e in block.events]
    calls = [e for e in events if e.name == "DELEGATE_CALL"]
    assert calls and all(len(e.perf_data.raw) == windows for e in calls)
    assert any("IGEMM" in e.name or "GEMM" in e.name for e in events)  # XNNPACK's own operators, timed
    assert all(t > 0 for e in calls for t in e.perf_data.raw)
