"""Live audio into a Cortex-M firmware over its UART (docs/firmware.md): the host's side of the protocol that
firmware_host/c/app/audio_uart.c reads, and ``stream_audio``, which runs a bundle's firmware under the board's
emulator, feeds it clips and hands back what the device sent.

Host -> device: COBS frames (each ended by a zero byte) of a type byte, a body and a CRC-16/CCITT-FALSE
(little-endian) of type and body: START (0x01, stream id u16), PCM (0x02, 1..256 int16 little-endian samples),
END (0x03, empty). Device -> host: COBS frames of wire v3 packets (docs/wire.md), and the firmware's reports,
frames that begin with ``#`` (``#ready``, ``#stream``, ``#error``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import tempfile
import threading
import time
from binascii import crc_hqx
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cobs import cobs

from acom.boards import load_board
from acom.errors import AcomError
from acom.firmware_host.cbuild import kind, tool
from acom.runtime.manifest import read_manifest
from acom.runtime.wire import SerialDeframer, WireError

START, PCM, END = 1, 2, 3
MAX_SAMPLES = 256  # samples a PCM frame carries at most (audio_in.h AUDIO_MAX_SAMPLES)


def frame(kind_: int, body: bytes = b"") -> bytes:
    """One host -> device frame: COBS of type, body and CRC-16, then the zero delimiter."""
    data = bytes([kind_]) + body
    return cobs.encode(data + crc_hqx(data, 0xFFFF).to_bytes(2, "little")) + b"\x00"


def stream_frames(stream_id: int, pcm: np.ndarray, samples_per_frame: int = MAX_SAMPLES) -> bytes:
    """A whole stream as the device reads it: a zero byte (a resynchronizing empty frame), START, the samples
    (16-bit, the bundle's rate) in PCM frames of `samples_per_frame`, END."""
    if not 0 <= stream_id <= 0xFFFF:
        raise AcomError(f"stream id {stream_id}: expected 0..65535")
    if not 1 <= samples_per_frame <= MAX_SAMPLES:
        raise AcomError(f"samples_per_frame {samples_per_frame}: expected 1..{MAX_SAMPLES}")
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise AcomError(f"audio of dtype {samples.dtype}: expected int16 samples")
    data = samples.astype("<i2").tobytes()
    step = 2 * samples_per_frame
    return (b"\x00" + frame(START, stream_id.to_bytes(2, "little"))
            + b"".join(frame(PCM, data[i:i + step]) for i in range(0, len(data), step)) + frame(END))


@dataclass
class UartRun:
    """What the device said while it was fed: per stream its report ({"stream", "packets", "bytes", "frames",
    "payload_bytes"}), the packets (wire v3 bytes, in order), the errors it reported (name, its error count so
    far), its window in samples and, when counted, the guest instructions it executed."""

    streams: list[dict] = field(default_factory=list)
    packets: list[bytes] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)
    window_samples: int | None = None
    instructions: int | None = None
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each packet's arrival
    fed: list[tuple[int, int, float]] = field(default_factory=list)  # realtime: (stream, samples sent, when)
    send_error: str | None = None  # why the host stopped sending audio early (the socket failed)


def firmware_elf(bundle_or_elf: Path) -> Path:
    """The firmware ELF: the path itself, or the one a bundle's manifest names (AcomError if it has none)."""
    path = Path(bundle_or_elf)
    if path.is_file():
        return path
    fw = read_manifest(path).firmware
    if fw is None or not fw.written:
        why = fw.reason if fw else "exported before bundles carried firmware, or not for a microcontroller"
        raise AcomError(f"{path}: no firmware in this bundle ({why}); export it again with acom-export --board ...")
    return path / fw.elf


def stream_audio(board: str, bundle_or_elf: Path,  # noqa: PLR0913 (keyword-only options)
                 clips: Sequence[tuple[int, np.ndarray] | bytes], *, serial: str | None = None,
                 on_packet: Callable[[bytes], None] | None = None, timeout: float = 300.0,
                 plugin: Path | None = None, realtime_rate: int | None = None) -> UartRun:
    """Run the firmware (a bundle's ``firmware/acom-fw.elf`` or an ELF) under `board`'s emulator
    (qemu-system-arm), feed it `clips` over its UART and collect what it sends, until it has reported every
    clip's stream; QEMU is stopped on every way out.

    clips: (stream id, int16 samples at the bundle's rate) each sent as one stream (``stream_frames``), or
    bytes sent as they are (to test bad input). serial: a tty path or pyserial URL (e.g. one end of a socat pty
    pair whose other end `acom serve --serial` reads) that gets each packet as a COBS frame; on_packet: called
    with each packet's bytes. plugin: c/test/qemu_insn.c built (cbuild.insn_plugin) to count instructions.
    realtime_rate: feed each clip at this many samples a second (10 ms PCM frames, as a microphone delivers
    them) and record when each was sent (``UartRun.fed``), instead of as fast as the device takes them.
    AcomError if the board is not a microcontroller, QEMU fails, or `timeout` seconds pass first."""
    if kind(board) != "mcu":
        raise AcomError(f"board {board}: the UART firmware is for the microcontroller boards")
    elf = firmware_elf(bundle_or_elf)
    want = Counter(c[0] for c in clips if not isinstance(c, bytes | bytearray))  # stream ids to be reported
    data = b"".join(bytes(c) if isinstance(c, bytes | bytearray) else stream_frames(*c) for c in clips)
    with tempfile.TemporaryDirectory(prefix="acom-uart-") as tmp, _port(serial) as port:
        sock_path = Path(tmp) / "uart.sock"
        cmd = _qemu(board, elf, sock_path, plugin)
        qemu = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            conn = _connect(sock_path, qemu, time.monotonic() + 30)
            with conn:
                run = UartRun()
                if realtime_rate:
                    clip_list = [c for c in clips if not isinstance(c, bytes | bytearray)]
                    writer = threading.Thread(target=_send_paced, args=(conn, clip_list, realtime_rate, run),
                                              daemon=True)
                else:
                    writer = threading.Thread(target=_send_all, args=(conn, data, run), daemon=True)
                writer.start()
                _exchange(run, conn, want, port, on_packet, time.monotonic() + timeout, qemu)
        finally:
            qemu.terminate()
            try:
                _, err = qemu.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                qemu.kill()
                _, err = qemu.communicate()
    if plugin is not None:
        counts = [int(x.split()[1]) for x in err.splitlines() if x.startswith("insns ")]
        run.instructions = counts[0] if counts else None
    return run


def _qemu(board: str, elf: Path, sock: Path, plugin: Path | None) -> list[str]:
    """qemu-system-arm on the board's image with its UART on the unix socket `sock` (QEMU the server, waiting
    for the host before it starts the core) and semihosting (the start-up code's fault report) on stdout."""
    emu = load_board(board).emulator
    counting = ["-plugin", str(plugin), "-d", "plugin"] if plugin else []
    return [tool(emu.program), "-machine", emu.machine, "-cpu", emu.cpu, "-nographic", "-monitor", "none",
            "-chardev", f"socket,id=uart,path={sock},server=on,wait=on", "-serial", "chardev:uart",
            "-chardev", "stdio,id=semi", "-semihosting-config", "enable=on,target=native,chardev=semi",
            *counting, "-kernel", str(elf)]


def _connect(path: Path, qemu: subprocess.Popen, deadline: float) -> socket.socket:
    """The host's end of the UART: QEMU's unix socket, once it listens."""
    while True:
        if qemu.poll() is not None:
            raise AcomError(f"qemu-system-arm exited ({qemu.returncode}) before its UART opened: "
                            f"{qemu.stderr.read()[-400:] if qemu.stderr else ''}")
        if path.exists():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with contextlib.suppress(OSError):
                s.connect(str(path))
                return s
            s.close()
        if time.monotonic() > deadline:
            raise AcomError(f"qemu-system-arm opened no UART socket at {path}")
        time.sleep(0.02)


def _exchange(run: UartRun, conn: socket.socket, want: Counter, port, on_packet, deadline: float,
              qemu: subprocess.Popen) -> None:
    """Read the device's frames into `run` (a writer thread sends the audio: the socket blocks while the
    firmware computes, as QEMU takes no byte while the UART holds one) until every stream id in `want` was
    reported (as often)."""
    left = +want
    deframer = SerialDeframer(decode=False)
    while left.total():
        if time.monotonic() > deadline:
            raise AcomError(f"the firmware did not report streams {sorted(left)} in time: errors {run.errors}")
        if run.send_error and qemu.poll() is None:
            raise AcomError(f"sending the audio failed ({run.send_error}) before streams {sorted(left)} were "
                            "reported")
        if qemu.poll() is not None:
            raise AcomError(f"qemu-system-arm exited ({qemu.returncode}) before it reported streams {sorted(left)}")
        # select, not a socket timeout: a timeout would apply to the writer thread's sendall on the same socket,
        # which must block while the firmware computes a window and takes no byte
        if not select.select([conn], [], [], 0.2)[0]:
            continue
        got = conn.recv(65536)
        if not got:
            raise AcomError(f"the firmware's UART closed before it reported streams {sorted(left)}")
        for item in deframer.feed(got):
            if isinstance(item, WireError):
                run.errors.append(("host-framing", 0))
            elif item[:1] == b"#":
                _report(run, item[1:].decode("ascii", "replace").split())
                if item.startswith(b"#stream ") and run.streams and left[run.streams[-1]["stream"]] > 0:
                    left[run.streams[-1]["stream"]] -= 1
            else:
                run.packets.append(item)
                run.arrived.append(time.monotonic())
                if on_packet is not None:
                    on_packet(item)
                if port is not None:
                    port.write(cobs.encode(item) + b"\x00")


def _send_all(conn: socket.socket, data: bytes, run: UartRun) -> None:
    try:
        conn.sendall(data)
    except OSError as e:  # QEMU stopped first, or the socket failed: the reader says so
        run.send_error = f"{type(e).__name__}: {e}"


def _send_paced(conn: socket.socket, clips: list[tuple[int, np.ndarray]], rate: int, run: UartRun) -> None:
    """Each clip as a microphone would deliver it: START, then 10 ms PCM frames each sent when its last sample
    has been captured (recorded in run.fed), then END."""
    step = rate // 100
    try:
        for stream_id, pcm in clips:
            conn.sendall(b"\x00" + frame(START, stream_id.to_bytes(2, "little")))
            data, start = np.asarray(pcm).astype("<i2"), time.monotonic()
            for i in range(0, len(data), step):
                end = min(i + step, len(data))
                time.sleep(max(0.0, start + end / rate - time.monotonic()))
                conn.sendall(frame(PCM, data[i:end].tobytes()))
                run.fed.append((stream_id, end, time.monotonic()))
            conn.sendall(frame(END))
    except OSError as e:
        run.send_error = f"{type(e).__name__}: {e}"


def _report(run: UartRun, words: list[str]) -> None:
    """One '#' frame of the firmware into `run`."""
    if words[:1] == ["ready"] and len(words) == 2:
        run.window_samples = int(words[1])
    elif words[:1] == ["stream"] and len(words) == 6:
        stream, packets, nbytes, frames, payload = map(int, words[1:])
        run.streams.append({"stream": stream, "packets": packets, "bytes": nbytes, "frames": frames,
                            "payload_bytes": payload})
    elif words[:1] == ["error"] and len(words) == 3:
        run.errors.append((words[1], int(words[2])))


@contextlib.contextmanager
def _port(serial: str | None):
    """The serial port packets are forwarded to (pyserial: a tty path or URL), or None."""
    if serial is None:
        yield None
        return
    import serial as pyserial  # optional: only a forwarding run needs it
    port = pyserial.serial_for_url(serial, baudrate=115200)
    try:
        yield port
    finally:
        port.close()


