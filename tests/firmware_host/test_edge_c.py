"""The edge graph as C kernels (export/c_graph.py + firmware_host/c/acom_kernels.c) on the microcontrollers'
emulators: the codes TFLite Micro gives and, bit for bit, the integer part's last int8 tensor of TFLite's
reference kernels; the firmware front end; the whole device in C talking to the server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from acom.core.audio import load_audio
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.errors import ExportError
from acom.export.c_graph import graph_c, integer_part_end
from acom.export.c_priors import bundle_sources
from acom.export.graph import EdgeGraph
from acom.export.micro import run_tflm
from acom.export.verify import item_codes, make_windows
from acom.firmware_host import cbuild, edge_c
from acom.firmware_host.device_c import app_instructions, send_audio
from acom.firmware_host.loopback_demo import pty_pair
from acom.runtime.bundle import open_bundle, read_manifest
from acom.runtime.sender import stream_packets
from acom.runtime.wire import Contexts, codebook_id, decode_packet
from tests.firmware_host.test_client import ACOM, serve, wait_finals


@pytest.mark.parametrize("board", ["host", "cortex-m55-u55", "cortex-m4", "cortex-m7"])
def test_c_graph_gives_tflm_codes_and_reference_int8_values(m55_ac: Path, urban_set: Path, board: str) -> None:
    r = edge_c.check_bundle(m55_ac, urban_set, board, items=6)
    assert r["windows"] >= 6 and r["codes"] == r["windows"] * 5
    assert r["codes_equal_tflm"] == r["codes"]
    assert r["probe_windows_equal_reference"] == r["windows"]


@pytest.mark.parametrize("board", ["host", "cortex-m55-u55"])
def test_firmware_front_end_from_16_bit_audio(m55_ac: Path, urban_set: Path, board: str) -> None:
    """Audio -> log-mel (FFT) -> int8 -> graph, all in C: its int8 features are Python's but for float
    rounding at a step's edge (at most one step, in under 0.1% of values), its codes TFLite Micro's on
    Python's features (at least 99%, the bar every exported artifact meets)."""
    r = edge_c.check_bundle(m55_ac, urban_set, board, items=4, frontend="c")
    assert r["features"] == r["windows"] * 40 * 98
    assert r["features_max_abs_diff"] <= 1 and r["features_equal_python"] >= 0.999 * r["features"]
    assert r["agreement"] >= 0.99


def test_the_bundle_carries_the_c_graph(m55_ac: Path) -> None:
    m = json.loads((m55_ac / "manifest.json").read_text())
    assert m["c_graph"]["written"] is True
    for name in ("acom_graph.c", "acom_graph.h", "acom_kernels.c", "acom_kernels.h", "acom_frontend.c",
                 "acom_frontend.h", "acom_frontend_tables.c", "acom_wire.c", "acom_sha256.c", "acom_range.c",
                 "acom_priors.c", "acom_priors.h"):
        assert f"c/{name}" in m["c_graph"]["files"] and (m55_ac / "c" / name).is_file()
    # the range coder's tables are the bundle's priors (the whole-device test below sends with them)
    tables = bundle_sources(open_bundle(m55_ac).priors, m["n_q"])
    assert all((m55_ac / name).read_bytes() == data for name, data in tables.items())
    assert "ACOM_PRIORS" in m["c_graph"]["send"]
    header, source = graph_c((m55_ac / "edge_int8.tflite").read_bytes())
    assert (m55_ac / "c" / "acom_graph.c").read_text() == source  # what the bundle holds is what runs here
    # one arena for every tensor the graph writes, tensors with disjoint lives sharing it (the equal outputs
    # above say no tensor was overwritten while still needed): smaller than TFLite Micro's arena
    arena = int(next(x for x in header.splitlines() if "ACOM_GRAPH_ARENA_BYTES" in x).split()[2])
    assert 0 < arena < m["artifacts"][0]["arena_bytes"]


def test_a_probe_catches_what_the_codes_hide(m55_ac: Path, urban_set: Path, tmp_path: Path) -> None:
    """A wrong ADD input grid (2^19 instead of TFLite's 2^20) changes the int8 values of every window."""
    model = (m55_ac / "edge_int8.tflite").read_bytes()
    from acom.export.litert import to_model_input
    inputs = [to_model_input(model, x) for x in edge_c.feature_windows(m55_ac, urban_set, 2)[0]]
    probe = integer_part_end(model)
    want = edge_c.reference_probe(model, inputs, probe)
    assert edge_c.run_graph("host", model, inputs, probe)[1] == want
    kernels = (edge_c.C_DIR / "acom_kernels.c").read_text()
    broken = tmp_path / "acom_kernels.c"
    broken.write_text(kernels.replace("const int left_shift = 20;", "const int left_shift = 19;"))
    assert broken.read_text() != kernels
    got = edge_c.run_graph("host", model, inputs, probe, kernels=broken)[1]
    assert all(a != b for a, b in zip(got, want))


def test_an_operator_without_a_kernel_is_named(m55_ac: Path) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel((m55_ac / "edge_int8.tflite").read_bytes(), 0))
    abs_code = next(c for c in m.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == s.BuiltinOperator.ABS)
    abs_code.builtinCode = abs_code.deprecatedBuiltinCode = s.BuiltinOperator.TANH
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(ExportError, match="operator TANH .* has no C kernel"):
        graph_c(bytes(b.Output()))


def test_cli_json_and_exit_codes(m55_ac: Path, urban_set: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "acom.firmware_host.edge_c", "--bundle", str(m55_ac), "--data", str(urban_set)]
    r = subprocess.run([*cmd, "--items", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["board"] == "cortex-m55-u55" and out["agreement"] == 1.0
    r = subprocess.run([*cmd, "--board", "rpi4"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "a Linux board runs the bundle's .pte/.tflite" in r.stderr


def test_the_whole_device_in_c_talks_to_the_server(m55_ac: Path, urban_set: Path, tmp_path: Path) -> None:
    """`acom send --c-device cortex-m55-u55 --entropy` with the M55 bundle: firmware under qemu-system-arm turns
    16-bit audio into codes (C front end, C graph) and range-coded packets (C wire code) on its UART; socat
    links the UART's pty to the one `acom serve --serial` reads. The packets are those Python's sender makes of
    TFLite Micro's codes, byte for byte in number and length; the server's labels are those codes'."""
    items = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[:3]
    model = (m55_ac / "edge_int8.tflite").read_bytes()
    split, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")  # what the fixture exported
    w = make_windows(EdgeGraph(split, 1, frontend=False).eval(), [(load_audio(it.path, 16000), 0) for it in items],
                     16000, 3200)
    codes = item_codes(run_tflm(model, w.inputs)[0], w)
    with torch.inference_mode():
        tail = open_bundle(m55_ac).split.server()
        want = [int(tail(torch.as_tensor(c)[None]).argmax()) for c in codes]
    with pty_pair(tmp_path) as (a, b):
        out = tmp_path / "serial.jsonl"
        proc, _ = serve(m55_ac, out, "--serial", str(b), "--window-s", "60")
        time.sleep(1.5)  # the server opens its port first: pyserial's open discards bytes that came before
        sent = subprocess.run([*ACOM, "send", "--bundle", str(m55_ac), "--serial", str(a), "--c-device",
                               "cortex-m55-u55", "--device-id", "9", "--entropy", *[str(it.path) for it in items]],
                              capture_output=True, text=True, timeout=300)
        assert sent.returncode == 0, sent.stderr
        report = [json.loads(x) for x in sent.stdout.splitlines()]
        assert [(r["codes_from"], r["payload"]) for r in report] == [("c", "entropy")] * 3
        m = read_manifest(m55_ac)
        py = [stream_packets(c, list(m.codebook_sizes), codebook_id(m.codebook_hash), device_id=9, stream_id=i,
                             frames_per_packet=round(m.frame_rate), priors=open_bundle(m55_ac).priors, full_every=8)
              for i, c in enumerate(codes)]
        assert [(r["packets"], r["bytes"]) for r in report] == [(len(p), sum(map(len, p))) for p in py]
        assert [r["frames"] for r in report] == [c.shape[1] for c in codes]
        finals = sorted(wait_finals(proc, out, 3), key=lambda r: r["stream"])
    assert [r["label"] for r in finals] == want
    assert all(r["device"] == 9 and r["missing_frames"] == 0 for r in finals)


def test_the_whole_device_reports_what_it_sent(m55_ac: Path, urban_set: Path) -> None:
    """device_app.c built for this machine (the bundle's front end and graph in C) sends a clip over UDP with
    16-byte tags, full and short packets: Python reads every packet with the device's key, and the C's report
    (packets, bytes, frames, payload bytes) is what it read."""
    item = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[0]
    key = b"device-key-0123456"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        sent = send_audio("host", m55_ac, [(4, edge_c.pcm16(load_audio(item.path, 16000)))], device_id=3,
                          frames_per_packet=2, full_every=3, key=key, tag_len=16, udp=sock.getsockname())
        got = [sock.recv(2048) for _ in range(sent[0]["packets"])]
    contexts = Contexts()
    packets = [decode_packet(d, {3: key}, contexts) for d in got]
    assert {p.tag_len for p in packets} == {16} and any(p.compact for p in packets) and packets[-1].end_of_stream
    assert sent == [{"stream": 4, "packets": len(got), "bytes": sum(map(len, got)),
                     "frames": sum(p.n_frames for p in packets), "payload_bytes": sum(len(p.payload) for p in packets)}]


def test_loopback_demo_over_the_firmware_uart(m55_ac: Path, urban_set: Path, tmp_path: Path) -> None:
    """What `make demo` runs: the demo links the firmware's UART to the server with its own pty pair."""
    files = [str(it.path) for it in open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[:2]]
    out = tmp_path / "demo.jsonl"
    r = subprocess.run([sys.executable, "-m", "acom.firmware_host.loopback_demo", "--bundle", str(m55_ac),
                        "--c-device", "cortex-m55-u55", "--out", str(out), *files], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    finals = [r for r in map(json.loads, out.read_text().splitlines()) if r["type"] == "final"]
    assert sorted(f["stream"] for f in finals) == [0, 1]
    for f in finals:
        assert f"stream {f['stream']} " in r.stdout and f"label {f['label']} " in r.stdout


def test_instruction_counts_grow_with_each_stage(m55_ac: Path, urban_set: Path, tmp_path: Path) -> None:
    """The QEMU plugin counts what the firmware executes (bench/device_cost.py): the same on every run, more
    with each stage the device does (front end, graph, packets), range coding more than bit-packing."""
    item = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[0]
    pcm = edge_c.pcm16(load_audio(item.path, 16000)[:16000])
    plugin = cbuild.insn_plugin(tmp_path)
    runs = [app_instructions("cortex-m4", m55_ac, [(0, pcm)], k, False, plugin, tmp_path)[0] for k in range(4)]
    coded, functions = app_instructions("cortex-m4", m55_ac, [(0, pcm)], 3, True, plugin, tmp_path, by_function=True)
    assert runs[0] < runs[1] < runs[2] < runs[3] < coded
    assert app_instructions("cortex-m4", m55_ac, [(0, pcm)], 2, False, plugin, tmp_path)[0] == runs[2]
    # the profile by function accounts for every instruction, and names the stages' functions
    assert sum(functions.values()) == coded
    assert {"acom_features_i8", "acom_graph_run", "acom_entropy_codes"} <= set(functions)


@pytest.mark.parametrize("board", ["host", "cortex-m55-u55", "cortex-m4"])
def test_asr_graph_in_c_gives_tflm_codes(m55_asr: Path, speech_set: Path, board: str) -> None:
    """The Conformer edge (fully connected, depthwise convolution, attention with softmax, layer norms in
    float): every code TFLite Micro's, and its integer-only start bit for bit; on its float islands LiteRT's
    reference kernels are not TFLite Micro's, so they are not the judge there. Each kernel path runs: Helium
    on the M55, the DSP extension's on the M4 (four rows a weight row in the fully connected layers, four
    channels a word in the depthwise convolutions), plain C here."""
    manifest = json.loads((m55_asr / "manifest.json").read_text())
    assert manifest["c_graph"]["written"] is True and manifest["verification"]["passed"]
    r = edge_c.check_bundle(m55_asr, speech_set, board, items=3)
    assert r["codes"] == r["windows"] * 25 and r["codes_equal_tflm"] == r["codes"]
    assert r["probe_windows_equal_reference"] == r["windows"]


def test_asr_float_islands_are_tables_and_moves_are_views(m55_asr: Path, speech_set: Path) -> None:
    """The C graph looks up the float islands of one int8 input (GELU, SiLU) in tables worked out at export in
    TFLite's float arithmetic: the first island, whose input is the integer part's last tensor, gives TFLite's
    reference kernels' int8 values bit for bit. Reshapes cost no copy (only the input's and the codes' memcpy
    are left), transposes and slices at most one strided copy, read in place by elementwise calls."""
    from acom.export.c_graph import _Graph
    from acom.export.c_islands import islands
    from acom.export.litert import to_model_input
    model = (m55_asr / "edge_int8.tflite").read_bytes()
    replace, skip, tables = islands(_Graph(model))
    first = next(spec["out"] for spec in replace.values() if spec["reads"][0][0] == integer_part_end(model))
    inputs = [to_model_input(model, x) for x in edge_c.feature_windows(m55_asr, speech_set, 2)[0]]
    assert edge_c.run_graph("host", model, inputs, first)[1] == edge_c.reference_probe(model, inputs, first)
    header, source = graph_c(model)
    body = source[source.index("int acom_graph_run"):]
    assert body.count("acom_lut_i8(") >= 4 and body.count("acom_lut2_f32(") >= 1 and skip
    assert body.count("memcpy(") == 2 and "ACOM_F_LOGISTIC" not in body
    arena = int(next(x for x in header.splitlines() if "ACOM_GRAPH_ARENA_BYTES" in x).split()[2])
    assert 0 < arena < json.loads((m55_asr / "manifest.json").read_text())["artifacts"][0]["arena_bytes"]


def _mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier in Python integers: gemmlowp's SaturatingRoundingDoublingHighMul
    (nudge 2^30, or 1 - 2^30 below zero; the quotient truncated) and RoundingDivideByPOT."""
    a = x * (1 << max(shift, 0))
    if a == m == -2**31:
        h = 2**31 - 1
    else:
        ab = a * m
        num = ab + (2**30 if ab >= 0 else 1 - 2**30)
        h = abs(num) // 2**31 * (1 if num >= 0 else -1)
    e = max(-shift, 0)
    mask = (1 << e) - 1
    return (h >> e) + (1 if (h & mask) > (mask >> 1) + (1 if h < 0 else 0) else 0)


def test_requantization_is_tflites(tmp_path: Path) -> None:
    """acom_mbqm, the requantization of every int8 kernel, equals TFLite's MultiplyByQuantizedMultiplier for
    multipliers QuantizeMultiplier gives (2^30 .. 2^31 - 1, and 0), shifts -31..30 and accumulators across the
    int32 range (x * 2^shift within it, as TFLite requires), ties included."""
    from acom.export.c_graph import quantize_multiplier
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(20000):
        shift = int(rng.integers(-31, 31))
        m = int(rng.choice([0, 2**30, 2**31 - 1, int(rng.integers(2**30, 2**31))]))
        bound = 2**31 >> max(shift, 0)
        small = min(300, bound)
        x = int(rng.choice([int(rng.integers(-bound, bound)), int(rng.integers(-small, small)), bound - 1, -bound]))
        cases.append((x, m, shift))
    for real in (0.5, 0.25, 1e-3, 0.75, 3.0, 1e-9):  # exact halves: the roundings' ties
        m, shift = quantize_multiplier(real)
        cases += [(x, m, shift) for x in (-7, -6, -5, -3, -2, -1, 1, 2, 3, 5, 6, 7, 2**20, -(2**20))]
    src = tmp_path / "mbqm.c"
    rows = ",".join(f"{{{x}, {m}, {s}}}" for x, m, s in cases)
    src.write_text(f"""#include <stdio.h>
#include "acom_kernels.h"
static const long long C[][3] = {{{rows}}};
int main(void) {{
    for (unsigned i = 0; i < sizeof C / sizeof C[0]; i++)
        printf("%ld\\n", (long)acom_mbqm((int32_t)C[i][0], (int32_t)C[i][1], (int)C[i][2]));
    return 0;
}}
""")
    exe = tmp_path / "mbqm"
    subprocess.run([cbuild.tool("gcc"), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(edge_c.C_DIR),
                    "-o", str(exe), str(src), str(edge_c.C_DIR / "acom_kernels.c"), "-lm"], check=True)
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == [_mbqm(x, m, s) for x, m, s in cases]
