"""A device in C: streams of codes sent by firmware_host/c/test/send_codes.c, built for a board and run under
its emulator (cbuild). `acom send --c-device BOARD` uses it.

Linux boards (rpi4, rpi5) send UDP datagrams from a static aarch64 binary under ``qemu-aarch64``;
microcontrollers send COBS frames on their emulated UART (``qemu-system-arm``), which is connected to a host
tty (a pty from ``socat``, or a real port). The codes come from the host (the model half is not in C yet);
everything from codes to bytes on the link is the device's C.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from acom.errors import AcomError
from acom.firmware_host.cbuild import TEST_DIR, build, c_array, kind, run_command

Stream = tuple[int, int, np.ndarray]  # device id, stream id, codes [n_q, T]


def write_codes(path: Path, streams: list[Stream], sizes: list[int], codebook_hash: str, frames_per_packet: int,
                full_every: int, key: bytes | None) -> None:
    """codes_in.h for send_codes.c: the streams' codes (all with the same n_q) and how to send them."""
    n_q = {s[2].shape[0] for s in streams}
    if len(n_q) != 1:
        raise AcomError(f"streams with different numbers of stages {sorted(n_q)}: one n_q per run")
    lines = ["/* written by acom.firmware_host.device_c: do not edit */", "#include <stddef.h>", "#include <stdint.h>",
             f"#define C_NQ {n_q.pop()}", f"#define C_FRAMES_PER_PACKET {frames_per_packet}",
             f"#define C_FULL_EVERY {full_every}u", f"#define C_KEY_LEN {len(key or b'')}u",
             f"static const uint8_t C_KEY[] = {c_array(key or b'')};",
             f"static const uint32_t C_SIZES[] = {c_array(sizes)};",
             f"static const uint8_t C_HASH[32] = {c_array(bytes.fromhex(codebook_hash))};"]
    rows = []
    for i, (device, stream, codes) in enumerate(streams):
        lines.append(f"static const uint16_t C_CODES{i}[] = {c_array(np.asarray(codes).ravel())};")
        rows.append(f"{{{device}u, {stream}u, C_CODES{i}, {codes.shape[1]}}}")
    lines += ["typedef struct { uint32_t device_id; uint16_t stream_id; const uint16_t *codes; int t; } c_stream;",
              f"#define C_NSTREAMS {len(rows)}", f"static const c_stream C_STREAMS[] = {{{', '.join(rows)}}};"]
    path.write_text("\n".join(lines) + "\n")


def send(board: str, streams: list[Stream], sizes: list[int], codebook_hash: str, *, frames_per_packet: int,
         full_every: int = 8, key: bytes | None = None, udp: tuple[str, int] | None = None, uart: str | None = None,
         timeout: float = 120.0) -> list[dict]:
    """Build send_codes for `board` and run it: to `udp` (host, port) from a Linux board or the host, or on
    the UART connected to the tty `uart` from a microcontroller. What the C reported: per stream
    {"stream", "packets", "bytes"}."""
    k = kind(board)
    if k == "mcu" and (uart is None or udp is not None):
        raise AcomError(f"board {board} sends on its UART: give a serial port (a tty path), not UDP")
    if k != "mcu" and (udp is None or uart is not None):
        raise AcomError(f"board {board} sends UDP datagrams (the C serial transport is the microcontrollers'): "
                        "give --udp HOST:PORT")
    if uart is not None and not Path(uart).exists():
        raise AcomError(f"serial port {uart}: no such tty (a microcontroller's UART needs a tty path: a real "
                        "port or a pty, e.g. from socat; pyserial URLs are not ttys)")
    transport = TEST_DIR / ("transport_uart.c" if k == "mcu" else "transport_udp.c")
    env = None
    if udp is not None:  # the C transport takes an IPv4 address: resolve a name here
        try:
            ip = socket.getaddrinfo(udp[0], udp[1], socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
        except OSError as e:
            raise AcomError(f"--udp {udp[0]}:{udp[1]}: no IPv4 address ({e})") from e
        env = {**os.environ, "ACOM_SEND_TO": f"{ip}:{udp[1]}"}
    with tempfile.TemporaryDirectory(prefix="acom-device-c-") as tmp:
        work = Path(tmp)
        write_codes(work / "codes_in.h", streams, sizes, codebook_hash, frames_per_packet, full_every, key)
        exe = build(board, [TEST_DIR / "send_codes.c", transport], work / "send_codes", work)
        cmd = run_command(board, exe, uart=uart)
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise AcomError(f"{' '.join(cmd[:3])}: still sending after {timeout:.0f} s") from e
    if run.returncode != 0:
        raise AcomError(f"{' '.join(cmd[:3])}: exit {run.returncode}: {(run.stdout + run.stderr)[-500:]}")
    out = []
    for line in run.stdout.splitlines():
        if line.startswith("stream "):
            i, packets, nbytes = map(int, line.split()[1:])
            out.append({"stream": streams[i][1], "packets": packets, "bytes": nbytes})
    if len(out) != len(streams):
        raise AcomError(f"{' '.join(cmd[:3])}: reported {len(out)} of {len(streams)} streams: {run.stdout[-300:]}")
    return out
