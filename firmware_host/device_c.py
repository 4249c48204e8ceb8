"""A device in C: streams of codes sent by firmware_host/c/app/send_codes.c, built for a board and run under
its emulator (cbuild). `acom send --c-device BOARD` uses it.

Linux boards (rpi4, rpi5) send UDP datagrams from a static aarch64 binary under ``qemu-aarch64``;
microcontrollers send COBS frames on their emulated UART (``qemu-system-arm``), which is connected to a host
tty (a pty from ``socat``, or a real port). ``send`` sends codes computed on the host (everything from codes to
bytes on the link is the device's C); ``send_audio`` runs the whole device in C (an MCU bundle's front end and
graph too). Payloads are bit-packed, or range-coded under the bundle's priors (c/acom_range.c); with a key each
packet ends in an HMAC tag of the stream's tag length (4, 8 or 16 bytes). Both report per stream the packets, the
bytes sent and the payload's share of them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from acom.errors import AcomError
from acom.export.c_priors import c_array
from acom.export.firmware import check_settings, graph_sources, priors_lines, write_settings
from acom.firmware_host.cbuild import APP_DIR, build, count_instructions, kind, run_command
from acom.firmware_host.cbuild import by_function as functions_of
from acom.runtime.manifest import Manifest
from acom.runtime.wire import DEFAULT_TAG

Stream = tuple[int, int, np.ndarray]  # device id, stream id, codes [n_q, T]


def write_codes(path: Path, streams: list[Stream], sizes: list[int], codebook_hash: str,
                frames_per_packet: int, full_every: int, key: bytes | None, priors=None,
                tag_len: int = DEFAULT_TAG) -> None:
    """codes_in.h for send_codes.c: the streams' codes (all with the same n_q) and how to send them (range-coded
    under `priors`, a CodePriors, when given; `tag_len` bytes of tag with a key)."""
    check_settings(frames_per_packet, full_every, key, tag_len)
    n_q = {s[2].shape[0] for s in streams}
    if len(n_q) != 1:
        raise AcomError(f"streams with different numbers of stages {sorted(n_q)}: one n_q per run")
    lines = ["/* written by acom.firmware_host.device_c: do not edit */", "#include <stddef.h>", "#include <stdint.h>",
             *priors_lines(priors, next(iter(n_q)), "C_PRIORS"),
             f"#define C_NQ {n_q.pop()}", f"#define C_FRAMES_PER_PACKET {frames_per_packet}",
             f"#define C_FULL_EVERY {full_every}u", f"#define C_KEY_LEN {len(key or b'')}u",
             f"#define C_TAG_LEN {tag_len if key is not None else 0}u",
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


def _run(cmd: list[str], env: dict | None, timeout: float) -> str:
    """Run the device program under its emulator; its output, or an AcomError with its last words."""
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise AcomError(f"{' '.join(cmd[:3])}: still running after {timeout:.0f} s") from e
    if run.returncode != 0:
        raise AcomError(f"{' '.join(cmd[:3])}: exit {run.returncode}: {(run.stdout + run.stderr)[-500:]}")
    return run.stdout


def _check_transport(board: str, udp: tuple[str, int] | None, uart: str | None) -> str:
    """The board's kind, after checking it is given the link it has: a tty for a microcontroller's UART, UDP
    otherwise."""
    k = kind(board)
    if k == "mcu" and (uart is None or udp is not None):
        raise AcomError(f"board {board} sends on its UART: give a serial port (a tty path), not UDP")
    if k != "mcu" and (udp is None or uart is not None):
        raise AcomError(f"board {board} sends UDP datagrams (the C serial transport is the microcontrollers'): "
                        "give --udp HOST:PORT")
    if uart is not None and not Path(uart).exists():
        raise AcomError(f"serial port {uart}: no such tty (a microcontroller's UART needs a tty path: a real "
                        "port or a pty, e.g. from socat; pyserial URLs are not ttys)")
    return k


def _udp_env(udp: tuple[str, int] | None) -> dict | None:
    """The environment that tells the C UDP transport where to send (it takes an IPv4 address: a name is
    resolved here)."""
    if udp is None:
        return None
    try:
        ip = socket.getaddrinfo(udp[0], udp[1], socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    except OSError as e:
        raise AcomError(f"--udp {udp[0]}:{udp[1]}: no IPv4 address ({e})") from e
    return {**os.environ, "ACOM_SEND_TO": f"{ip}:{udp[1]}"}


def send(board: str,  # noqa: PLR0913 (keyword-only stream settings)
         streams: list[Stream], sizes: list[int], codebook_hash: str, *, frames_per_packet: int,
         full_every: int = 8, key: bytes | None = None, tag_len: int = DEFAULT_TAG, priors=None,
         udp: tuple[str, int] | None = None, uart: str | None = None, timeout: float = 120.0) -> list[dict]:
    """Build send_codes for `board` and run it: to `udp` (host, port) from a Linux board or the host, or on
    the UART connected to the tty `uart` from a microcontroller; payloads range-coded under `priors` (the
    bundle's CodePriors) when given; with `key` tags of `tag_len` bytes. The packets are those
    ``sender.stream_packets`` makes of the same settings. What the C reported: per stream {"stream", "packets",
    "bytes", "payload_bytes"} (bytes: whole packets; payload_bytes: their payloads, the codes)."""
    check_settings(frames_per_packet, full_every, key, tag_len)
    k = _check_transport(board, udp, uart)
    transport = APP_DIR / ("transport_uart.c" if k == "mcu" else "transport_udp.c")
    env = _udp_env(udp)
    with tempfile.TemporaryDirectory(prefix="acom-device-c-") as tmp:
        work = Path(tmp)
        write_codes(work / "codes_in.h", streams, sizes, codebook_hash, frames_per_packet, full_every, key, priors,
                    tag_len)
        exe = build(board, [APP_DIR / "send_codes.c", transport], work / "send_codes", work)
        cmd = run_command(board, exe, uart=uart)
        stdout = _run(cmd, env, timeout)
    out = []
    for line in stdout.splitlines():
        if line.startswith("stream "):
            i, packets, nbytes, payload = map(int, line.split()[1:])
            out.append({"stream": streams[i][1], "packets": packets, "bytes": nbytes, "payload_bytes": payload})
    if len(out) != len(streams):
        raise AcomError(f"{' '.join(cmd[:3])}: reported {len(out)} of {len(streams)} streams: {stdout[-300:]}")
    return out


def write_app(folder: Path, manifest: Manifest, clips: list[tuple[int, np.ndarray]], device_id: int,
              full_every: int, key: bytes | None, priors=None, frames_per_packet: int = 1,
              tag_len: int = DEFAULT_TAG) -> None:
    """app_settings.h (how the bundle's device sends: ``acom.export.firmware.write_settings``) and app_in.h (the
    clips: stream id, 16-bit samples) in `folder`, for device_app.c."""
    write_settings(folder / "app_settings.h", manifest, device_id, full_every, key, priors, frames_per_packet,
                   tag_len)
    lines = ["/* written by acom.firmware_host.device_c: do not edit */", "#include <stdint.h>"]
    rows = []
    for i, (stream, pcm) in enumerate(clips):
        lines.append(f"static const int16_t A_PCM{i}[] = {{{','.join(str(int(v)) for v in pcm) or '0'}}};")
        rows.append(f"{{{stream}u, A_PCM{i}, {len(pcm)}}}")
    lines += ["typedef struct { uint16_t stream_id; const int16_t *pcm; int32_t samples; } a_clip;",
              f"#define A_NCLIPS {len(rows)}", f"static const a_clip A_CLIPS[] = {{{', '.join(rows)}}};"]
    (folder / "app_in.h").write_text("\n".join(lines) + "\n")


AUDIO_PER_RUN = 8 * 16000  # samples of embedded 16-bit audio per firmware image (the emulators' 512 KiB)


def send_audio(board: str,  # noqa: PLR0913 (keyword-only stream settings)
               bundle: Path, clips: list[tuple[int, np.ndarray]], *, device_id: int = 1,
               frames_per_packet: int = 1, full_every: int = 8, key: bytes | None = None,
               tag_len: int = DEFAULT_TAG, priors=None, udp: tuple[str, int] | None = None,
               uart: str | None = None, timeout: float = 300.0) -> list[dict]:
    """The whole device in C (c/app/device_app.c with the MCU bundle's c/ sources): each clip (stream id,
    16-bit samples at the bundle's rate) through the front end, the graph and the wire code to `uart` (a
    microcontroller) or `udp` (host), `frames_per_packet` code frames a packet (as ``stream_packets`` cuts
    them), range-coded under `priors` when given, with `key` tags of `tag_len` bytes. Per clip what the C
    reported: {"stream", "packets", "bytes", "frames", "payload_bytes"}."""
    from acom.runtime.bundle import read_manifest
    m = read_manifest(bundle)
    check_wire_version(bundle)
    if not (m.c_graph is not None and m.c_graph.written):
        why = m.c_graph.reason if m.c_graph else "not an MCU bundle"
        raise AcomError(f"{bundle}: no C graph in this bundle ({why}); send codes computed on the host instead")
    check_settings(frames_per_packet, full_every, key, tag_len)
    _check_transport(board, udp, uart)
    env = _udp_env(udp)
    out: list[dict] = []
    batch: list[tuple[int, np.ndarray]] = []
    for i, clip in enumerate(clips):
        batch.append(clip)
        if i + 1 == len(clips) or sum(len(c[1]) for c in batch) + len(clips[i + 1][1]) > AUDIO_PER_RUN:
            out += _run_app(board, bundle, m, batch, (device_id, frames_per_packet, full_every, key, tag_len, priors),
                            uart, env, timeout)
            batch = []
    return out


def check_wire_version(bundle: Path) -> None:
    """AcomError unless the bundle's C (what a board is flashed with) speaks this acom's wire format version."""
    import re

    from acom.runtime.wire import VERSION
    header = bundle / "c" / "acom_wire_constants.h"
    found = re.search(r"#define ACOM_WIRE_VERSION (\d+)", header.read_text()) if header.exists() else None
    if found is None or int(found.group(1)) != VERSION:
        said = f"wire format v{found.group(1)}" if found else "no acom_wire_constants.h"
        raise AcomError(f"{bundle}/c: {said}; this acom sends v{VERSION}: export the bundle again "
                        f"(acom-export --board ...) to flash the current device code")


def _run_app(board, bundle, m, clips, sending, uart, env, timeout) -> list[dict]:
    device_id, fpp, full_every, key, tag_len, priors = sending
    k = kind(board)
    with tempfile.TemporaryDirectory(prefix="acom-device-c-") as tmp:
        work = Path(tmp)
        c = bundle / "c"
        own = priors is not None and (c / "acom_priors.c").exists()  # bundles exported before it lack the file
        write_app(work, m, clips, device_id, full_every, key, "bundle" if own else priors, fpp, tag_len)
        sources = [APP_DIR / "device_app.c", APP_DIR / "device_stream.c", *graph_sources(c, own),
                   APP_DIR / ("transport_uart.c" if k == "mcu" else "transport_udp.c")]
        exe = build(board, sources, work / "device_app", work, extra_include=c)
        cmd = run_command(board, exe, uart=uart)
        stdout = _run(cmd, env, timeout)
    rows = [x.split()[1:] for x in stdout.splitlines() if x.startswith("stream ")]
    if len(rows) != len(clips):
        raise AcomError(f"{' '.join(cmd[:3])}: reported {len(rows)} of {len(clips)} clips: {stdout[-300:]}")
    return [{"stream": clips[int(i)][0], "packets": int(p), "bytes": int(b), "frames": int(f), "payload_bytes": int(n)}
            for i, p, b, f, n in rows]


def app_instructions(board: str, bundle: Path, clips: list[tuple[int, np.ndarray]], stages: int, entropy: bool,
                     plugin: Path, work: Path, by_function: bool = False) -> tuple[int, dict[str, int]]:
    """Guest instructions device_app.c executes on `clips` under the board's emulator, doing `stages` of its
    stages (0 the audio only, 1 + front end, 2 + graph, 3 + packets, range-coded with the bundle's own tables
    when `entropy`), counted by the QEMU plugin `plugin` (cbuild.insn_plugin), and with `by_function` the
    instructions per function of the firmware (else {}). Packets go to a UART with nothing attached."""
    from acom.runtime.bundle import read_manifest
    m = read_manifest(bundle)
    write_app(work, m, clips, 1, 8, None, "bundle" if entropy else None, max(1, round(m.frame_rate)))
    c = bundle / "c"
    sources = [APP_DIR / "device_app.c", APP_DIR / "device_stream.c", *graph_sources(c, entropy),
               APP_DIR / "transport_uart.c"]
    exe = build(board, sources, work / "device_app", work, extra_include=c, defines=(f"ACOM_STAGES={stages}",))
    stdout, n, blocks = count_instructions(run_command(board, exe), plugin, by_block=by_function)
    if "device: done" not in stdout:
        raise AcomError(f"{board}: the firmware did not finish: {stdout[-300:]}")
    return n, functions_of(exe, blocks) if by_function else {}
