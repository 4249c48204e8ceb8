"""`acom serve` as a user runs it: a subprocess on 127.0.0.1, stopped by SIGTERM; and its bad-input errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acom.runtime.sender import stream_packets
from acom.runtime.wire import codebook_id
from tests.runtime.conftest import offline_text

ACOM = [sys.executable, "-m", "acom.cli"]


def test_serve_subprocess_writes_results_and_flushes_on_sigterm(asr_case, tmp_path):
    path, bundle, codes = asr_case
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([*ACOM, "serve", "--bundle", str(path), "--udp", "127.0.0.1:0", "--out", str(out),
                             "--threads", "1"], stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stderr.readline())
        assert ready["type"] == "ready" and ready["task"] == "asr" and ready["udp"][0] == "127.0.0.1"
        packets = stream_packets(codes[0], bundle.codebook_sizes, codebook_id(bundle.manifest.codebook_hash))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in packets[:-1]:  # no end of stream: SIGTERM must still give the final result
                s.sendto(p, tuple(ready["udp"]))
        start = time.monotonic()
        while out.stat().st_size == 0 or '"partial"' not in out.read_text():
            assert time.monotonic() - start < 60 and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    final = [r for r in lines if r["type"] == "final"]
    n = sum(min(25, codes[0].shape[1] - 25 * i) for i in range(len(packets) - 1))
    assert len(final) == 1 and final[0]["frames"] == n
    assert final[0]["text"] == offline_text(bundle, codes[0][:, :n])
    assert lines[-1]["type"] == "summary" and lines[-1]["streams_ended"] == {"shutdown": 1}


def _cpus_allowed(pid: int) -> dict[int, set[int]]:
    """Thread id -> the CPUs it may run on (its Cpus_allowed_list, "0-2,5"), for each thread of process ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        listed = (task / "status").read_text().split("Cpus_allowed_list:")[1].split()[0]
        out[int(task.name)] = {c for part in listed.split(",") for lo, _, hi in [part.partition("-")]
                               for c in range(int(lo), int(hi or lo) + 1)}
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning the tail needs 2 CPUs")
def test_the_tail_runs_on_its_cpus_and_the_receiving_loop_on_the_others(asr_case, tmp_path):
    path, bundle, codes = asr_case
    cpus = sorted(os.sched_getaffinity(0))
    tail = cpus[-1]
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([*ACOM, "serve", "--bundle", str(path), "--udp", "127.0.0.1:0", "--out", str(out),
                             "--tail-cpus", str(tail)], stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stderr.readline())
        packets = stream_packets(codes[0], bundle.codebook_sizes, codebook_id(bundle.manifest.codebook_hash))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in packets:
                s.sendto(p, tuple(ready["udp"]))
        start = time.monotonic()
        while '"final"' not in out.read_text():
            assert time.monotonic() - start < 60 and proc.poll() is None
            time.sleep(0.05)
        allowed = _cpus_allowed(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    # the receiving loop is the main thread; the tail's thread (started for the first step) is on its CPU alone
    assert allowed[proc.pid] == set(cpus[:-1])
    assert {tail} in allowed.values()
    final = [r for r in map(json.loads, out.read_text().splitlines()) if r["type"] == "final"]
    assert len(final) == 1 and final[0]["text"] == offline_text(bundle, codes[0])


def test_a_result_that_cannot_be_written_stops_the_server_with_status_1(asr_case, tmp_path):
    """`acom serve | head -1` after head exits: the pipe is closed, results cannot go anywhere."""
    path, bundle, codes = asr_case
    proc = subprocess.Popen([*ACOM, "serve", "--bundle", str(path), "--udp", "127.0.0.1:0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = json.loads(proc.stderr.readline())
    proc.stdout.close()  # the reader is gone
    packets = stream_packets(codes[0], bundle.codebook_sizes, codebook_id(bundle.manifest.codebook_hash))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in packets:
            s.sendto(p, tuple(ready["udp"]))
    try:
        assert proc.wait(timeout=60) == 1  # stopped on its own, no signal needed
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "cannot write results" in err and "Traceback" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("args, message", [
    (["--bundle", "/nonexistent", "--udp", "0"], "/nonexistent/manifest.json"),
    (["--bundle", "BUNDLE"], "nothing to listen on"),
    (["--bundle", "BUNDLE", "--udp", "127.0.0.1:99999"], "PORT 0..65535"),
    (["--bundle", "BUNDLE", "--udp", "0", "--keys", "KEYS"], "entry '7'"),
    (["--bundle", "BUNDLE", "--udp", "0", "--max-batch", "0"], "--max-batch 0: must be a positive finite number"),
    (["--bundle", "BUNDLE", "--udp", "0", "--reorder-ms", "inf"], "--reorder-ms inf: must be a positive finite"),
    (["--bundle", "BUNDLE", "--udp", "0", "--max-gap-s", "nan"], "--max-gap-s nan: must be a positive finite"),
    (["--bundle", "BUNDLE", "--udp", "0", "--max-step-frames", "0"], "--max-step-frames 0: must be a positive"),
    (["--bundle", "BUNDLE", "--udp", "0", "--max-backlog-s", "-1"], "--max-backlog-s -1.0: must be a positive"),
    (["--bundle", "BUNDLE", "--udp", "0", "--engine", "stream", "--dtype", "bfloat16"], "only the ASR slot engine"),
    (["--bundle", "BUNDLE", "--udp", "0", "--engine", "stream", "--tail-buckets"], "only the ASR slot engine pads"),
    (["--bundle", "BUNDLE", "--udp", "0", "--tail-cpus", "4096"], "--tail-cpus '4096': expected CPU numbers"),
    (["--bundle", "BUNDLE", "--udp", "0", "--tail-cpus", "one"], "--tail-cpus 'one': expected CPU numbers"),
])
def test_serve_bad_input_exits_2_naming_the_problem(asr_case, tmp_path, args, message):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"7": "not-hex"}))
    args = [str(asr_case[0]) if a == "BUNDLE" else str(keys) if a == "KEYS" else a for a in args]
    r = subprocess.run([*ACOM, "serve", *args, "--duration", "0.1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_public_listening_without_keys_and_readable_keys_are_warned_about(asr_case, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"7": "ab" * 16}))
    keys.chmod(0o644)
    r = subprocess.run([*ACOM, "serve", "--bundle", str(asr_case[0]), "--udp", "0.0.0.0:0", "--duration", "0.1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stderr.splitlines()[0])["type"] == "ready"  # still the first line
    assert "listening on 0.0.0.0:0 without --keys" in r.stderr
    r = subprocess.run([*ACOM, "serve", "--bundle", str(asr_case[0]), "--udp", "0", "--keys", str(keys),
                        "--duration", "0.1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "can be read by other users" in r.stderr and "without --keys" not in r.stderr
    keys.chmod(0o600)
    r = subprocess.run([*ACOM, "serve", "--bundle", str(asr_case[0]), "--udp", "0", "--keys", str(keys),
                        "--duration", "0.1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "warning" not in r.stderr
