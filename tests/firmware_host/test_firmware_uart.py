"""The firmware that takes live audio over its UART (firmware_host/c/app/firmware_uart.c, docs/firmware.md): built
by acom-export into an MCU classifier bundle, run under qemu-system-arm on the Cortex-M4, M7 and M55 images, fed
16-bit audio by the host over the UART (QEMU's chardev on a unix socket) with no audio in the image; its packets
give the labels of TFLite Micro's codes for the same audio, through the server's own reader and through
`acom serve --serial`; bad frames are reported and skipped."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cobs import cobs

from acom.core.audio import load_audio
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.core.tasks import TASKS
from acom.corpora.featcache import open_dataset
from acom.export.c_build import build, tool
from acom.export.firmware import APP_DIR, build_firmware, load_regions, section_sizes
from acom.export.graph import EdgeGraph
from acom.export.micro import run_tflm
from acom.export.verify import item_codes, make_windows
from acom.firmware_host.edge_c import pcm16
from acom.firmware_host.loopback_demo import pty_pair
from acom.firmware_host.uart_audio import END, PCM, START, frame, stream_audio
from acom.runtime.bundle import open_bundle
from acom.runtime.manifest import Manifest, read_manifest
from acom.runtime.wire import Contexts, decode_packet, packet_codes
from tests.firmware_host.test_client import serve, wait_finals

BOARDS = ["cortex-m4", "cortex-m7", "cortex-m55-u55"]


@pytest.fixture(scope="module")
def bundle(m55_ac: Path) -> Path:
    """The shipped classifier exported for the Cortex-M55 board: its c/ and its firmware (tests/conftest.py)."""
    return m55_ac


@pytest.fixture(scope="module")
def firmware(bundle: Path, tmp_path_factory) -> dict[str, Path]:
    """The UART firmware per board: the bundle's own for the M55, built from the same c/ for the M4 and M7."""
    out = {"cortex-m55-u55": bundle / read_manifest(bundle).firmware.elf}
    for board in BOARDS[:2]:
        work = tmp_path_factory.mktemp(board)
        out[board] = build_firmware(board, read_manifest(bundle), bundle / "c", work).files["firmware/acom-fw.elf"]
    return out


@pytest.fixture(scope="module")
def clips(urban_set: Path) -> list[tuple[int, np.ndarray]]:
    items = open_dataset("ac", urban_set, TASKS["ac"].test_subset).items[:3]
    return [(10 + i, pcm16(load_audio(it.path, 16000))) for i, it in enumerate(items)]


@pytest.fixture(scope="module")
def tflm(bundle: Path, clips) -> tuple[list[np.ndarray], list[int]]:
    """TFLite Micro's codes [n_q, T] of each clip (the 16-bit samples the device gets) and the tail's labels."""
    split, _ = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")  # what the fixture exported
    audio = [(pcm.astype(np.float32) / 32768.0, 0) for _, pcm in clips]
    w = make_windows(EdgeGraph(split, 1, frontend=False).eval(), audio, 16000, 3200)
    codes = item_codes(run_tflm((bundle / "edge_int8.tflite").read_bytes(), w.inputs)[0], w)
    return codes, _labels(bundle, codes)


def _labels(bundle: Path, codes: list[np.ndarray]) -> list[int]:
    with torch.inference_mode():
        tail = open_bundle(bundle).split.server()
        return [int(tail(torch.as_tensor(c)[None]).argmax()) for c in codes]


def _codes(bundle: Path, packets: list[bytes]) -> dict[int, np.ndarray]:
    """Each stream's codes [n_q, T] as the server's reader gets them from the packets."""
    b, contexts, out = open_bundle(bundle), Contexts(), {}
    for data in packets:
        p = decode_packet(data, None, contexts)
        out.setdefault(p.stream_id, []).append(packet_codes(p, b.codebook_sizes, b.priors))
    return {s: np.concatenate(c, axis=1) for s, c in out.items()}


@pytest.mark.parametrize("board", BOARDS)
def test_live_audio_over_the_uart_gives_tflite_micros_labels(board, bundle, firmware, clips, tflm) -> None:
    run = stream_audio(board, firmware[board], clips, timeout=240)
    assert run.window_samples == 16000 and run.errors == []
    codes = _codes(bundle, run.packets)
    assert [r["stream"] for r in run.streams] == sorted(codes) == [s for s, _ in clips]
    want_codes, want_labels = tflm
    assert [r["frames"] for r in run.streams] == [c.shape[1] for c in want_codes]
    assert [r["packets"] for r in run.streams] == [len(c) for c in _split(run.packets, codes)]
    got = [codes[s] for s, _ in clips]
    equal = sum(int((a == b).sum()) for a, b in zip(got, want_codes))
    assert equal >= 0.99 * sum(c.size for c in want_codes)  # the C front end on 16-bit audio (test_edge_c's bar)
    assert _labels(bundle, got) == want_labels


def _split(packets: list[bytes], codes: dict[int, np.ndarray]) -> list[list[bytes]]:
    """The packets per stream, in the streams' order (short packets carry the stream id's low 4 bits only)."""
    out, contexts = {}, Contexts()
    for data in packets:
        out.setdefault(decode_packet(data, None, contexts).stream_id, []).append(data)
    return [out[s] for s in sorted(codes)]


def test_no_audio_is_compiled_in(bundle, firmware, clips) -> None:
    """The image holds no clip (device_app.c's A_PCM arrays): it was built at export, before any audio was
    chosen, and it is smaller than the audio it serves."""
    nm = subprocess.run([tool("arm-none-eabi-nm"), str(firmware["cortex-m4"])], capture_output=True, text=True,
                        check=True).stdout
    assert "acom_graph_run" in nm and "A_PCM" not in nm and "A_CLIPS" not in nm
    fw = read_manifest(bundle).firmware
    assert fw.sections["flash_bytes"] < sum(2 * len(pcm) for _, pcm in clips)


def test_bad_frames_are_reported_and_the_next_stream_served(bundle, firmware, clips) -> None:
    """Garbage, a PCM frame of an odd byte count, a frame of unknown type, a bad CRC, a frame too long, PCM and
    END outside a stream: each reported (by name, counted) and skipped; the streams around them are served as
    if alone, and a START inside a stream ends it."""
    garbage = bytes(np.random.default_rng(0).integers(1, 256, 300, dtype=np.uint8))
    try:  # what random bytes are depends on whether their COBS blocks happen to line up
        cobs.decode(garbage)
        garbage_is = "crc"
    except cobs.DecodeError:
        garbage_is = "framing"
    bad_crc = bytearray(frame(PCM, b"\x01\x02"))
    bad_crc[2] ^= 0x40
    bad = [garbage + b"\x00", frame(PCM, b"\x01\x02\x03"), frame(7, b"\x00\x01"), bytes(bad_crc),
           b"\x00" + b"\x05" * 600 + b"\x00", frame(PCM, b"\x01\x00"), frame(END)]
    first, second = clips[0], clips[1]
    run = stream_audio("cortex-m4", firmware["cortex-m4"], [first, b"".join(bad), second], timeout=240)
    names = [name for name, _ in run.errors]
    assert names[:5] == [garbage_is, "length", "type", "crc", "size"]
    assert names[5:] == ["order", "order"] and [n for _, n in run.errors] == list(range(1, 8))
    alone = stream_audio("cortex-m4", firmware["cortex-m4"], [first, second], timeout=240)
    assert run.packets == alone.packets and run.streams == alone.streams
    # a START while a stream is open ends that stream (reported), then the new one runs
    pcm = first[1][:1000].astype("<i2").tobytes()
    cut = frame(START, (7).to_bytes(2, "little")) + b"".join(frame(PCM, pcm[i:i + 400]) for i in range(0, 2000, 400))
    run = stream_audio("cortex-m4", firmware["cortex-m4"], [cut, second], timeout=240)
    assert [r["stream"] for r in run.streams] == [7, second[0]] and run.errors == [("order", 1)]
    assert _codes(bundle, run.packets)[second[0]].shape[1] == alone.streams[1]["frames"]


def test_acom_serve_reads_the_firmwares_packets(bundle, firmware, clips, tflm, tmp_path) -> None:
    """stream_audio forwards the packets to one end of a pty pair; `acom serve --serial` reads the other."""
    with pty_pair(tmp_path) as (a, b):
        out = tmp_path / "serial.jsonl"
        proc, _ = serve(bundle, out, "--serial", str(b), "--window-s", "60")
        time.sleep(1.5)  # the server opens its port first: pyserial's open discards bytes that came before
        run = stream_audio("cortex-m55-u55", firmware["cortex-m55-u55"], clips, serial=str(a), timeout=240)
        finals = sorted(wait_finals(proc, out, len(clips)), key=lambda r: r["stream"])
    assert [r["stream"] for r in finals] == [s for s, _ in clips] and len(run.streams) == len(clips)
    assert [r["label"] for r in finals] == tflm[1]
    assert all(r["device"] == 1 and r["missing_frames"] == 0 for r in finals)


def test_the_bundle_carries_the_firmware(bundle) -> None:
    """acom-export wrote the firmware (ELF, hex, one .bin per load region) with its hashes, and section sizes
    that are arm-none-eabi-size's; the .bin files are the ELF's loaded bytes at their addresses."""
    m = read_manifest(bundle)
    fw = m.firmware
    assert fw.written and fw.settings == {"device_id": 1, "frames_per_packet": 5, "full_every": 8, "entropy": True,
                                          "keyed": False, "tag_len": 0}
    names = [fw.elf, fw.hex, *(i["file"] for i in fw.images)]
    for name in names:
        data = (bundle / name).read_bytes()
        assert m.files[name].sha256 == hashlib.sha256(data).hexdigest() and m.files[name].bytes == len(data)
    elf = bundle / fw.elf
    size = subprocess.run([tool("arm-none-eabi-size"), str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = map(int, size.stdout.splitlines()[1].split()[:3])
    assert fw.sections == section_sizes(elf) == {"text": text, "data": data, "bss": bss, "flash_bytes": text + data,
                                                 "ram_bytes": data + bss}
    regions = load_regions(elf.read_bytes())  # mps3-an547: vectors in ITCM at 0, the program in SRAM
    assert [(i["address"], (bundle / i["file"]).read_bytes()) for i in fw.images] == regions
    assert [a for a, _ in regions] == [0, 0x01000000]
    assert sum(len(d) for _, d in regions) <= fw.sections["flash_bytes"] + 1024
    old = {k: v for k, v in m.to_dict().items() if k != "firmware"}  # a bundle exported before firmware
    assert Manifest.from_dict(old).firmware is None


def test_the_microphone_template_compiles_and_says_it_is_one(bundle, tmp_path) -> None:
    """audio_mic_template.c in place of the UART's audio: it builds for this machine and a Cortex-M4, and the
    firmware reports that no driver was written (on its transport: UDP here) and stops."""
    from acom.export.firmware import graph_sources, write_settings
    m = read_manifest(bundle)
    write_settings(tmp_path / "app_settings.h", m, 1, 8, None, None, 5)
    sources = [APP_DIR / "firmware_uart.c", APP_DIR / "device_stream.c", APP_DIR / "audio_mic_template.c",
               *graph_sources(bundle / "c", False)]
    build("cortex-m4", [*sources, APP_DIR / "transport_uart.c"], tmp_path / "mic-m4", tmp_path, bundle / "c")
    exe = build("host", [*sources, APP_DIR / "transport_udp.c"], tmp_path / "mic", tmp_path, bundle / "c")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        done = subprocess.run([str(exe)], env={"ACOM_SEND_TO": f"127.0.0.1:{sock.getsockname()[1]}"}, timeout=30)
        assert done.returncode == 1 and sock.recv(200) == b"#error template 1"
