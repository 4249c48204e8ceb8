"""Device and server on one machine: `acom serve` on 127.0.0.1, `acom send` of a few audio files, the results.

    python -m acom.firmware_host.loopback_demo --bundle export-rpi4-asr FILE...

Starts the server (a free port), sends each file as one stream with the bundle's edge artifact (packets made
in Python, or with --c-device by the device's C code under the board's emulator: UDP from a Raspberry Pi
binary, a pty pair to a Cortex-M firmware's UART), waits for the final results, stops the server (SIGTERM)
and prints one line per stream, then the server's counters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acom.boards import load_board
from acom.corpora.datasets import US8K_CLASSES
from acom.errors import AcomError
from acom.firmware_host.local_serve import local_server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("audio", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("serve-demo.jsonl"), help="the server's JSON lines")
    ap.add_argument("--c-device", metavar="BOARD", help="send with the device's C code for this board under its "
                    "emulator (`acom send --c-device`): rpi4/rpi5 over UDP; a Cortex-M board over a serial pty pair")
    ap.add_argument("--entropy", action="store_true", help="range-coded payloads (`acom send --entropy`)")
    ap.add_argument("--packet-s", type=float, default=1.0, help="seconds of audio per packet (`acom send --packet-s`)")
    args = ap.parse_args(argv)
    args.out.unlink(missing_ok=True)
    acom = [sys.executable, "-m", "acom.cli"]
    # a Cortex-M board's firmware talks on its UART: a pty pair links it to the server
    serial = args.c_device not in (None, "host") and load_board(args.c_device).kind == "mcu"
    with tempfile.TemporaryDirectory() as tmp, pty_pair(Path(tmp)) if serial else contextlib.nullcontext() as ttys:
        return _run(args, acom, ttys)


def _run(args: argparse.Namespace, acom: list[str], ttys: tuple[Path, Path] | None) -> int:
    with local_server(args.bundle, args.out, udp=ttys is None, tty=ttys[1] if ttys else None) as srv:
        to = ["--serial", str(ttys[0])] if ttys else ["--udp", f"{srv.udp[0]}:{srv.udp[1]}"]
        c_device = ["--c-device", args.c_device] if args.c_device else []
        sent = subprocess.run([*acom, "send", "--bundle", str(args.bundle), *to, *c_device,
                               *(["--entropy"] if args.entropy else []), "--packet-s", str(args.packet_s),
                               *map(str, args.audio)],
                              capture_output=True, text=True)
        if sent.returncode:
            raise AcomError(f"acom send failed: {sent.stderr.strip()[-500:]}")
        for r in map(json.loads, sent.stdout.splitlines()):
            print(f"device: stream {r['stream']}: {r['packets']} packets, {r['bytes']} bytes: {r['payload_bps']} bit/s "
                  f"of codes ({r['payload']}), {r['bps_on_wire']} bit/s on the wire")
        finals = srv.wait_finals(len(args.audio), timeout=60)
    for r in finals:
        path = args.audio[r["stream"]]
        name = f" ({US8K_CLASSES[r['label']]})" if "label" in r and r["label"] < len(US8K_CLASSES) else ""
        what = r["text"] if "text" in r else f"label {r['label']}{name}"
        print(f"stream {r['stream']} ({path.name}, {r['seconds']} s): {what}")
        ref = _reference(path)
        if ref:
            print(f"  reference: {ref}")
    summary = srv.lines()[-1]
    latency = {k: round(v, 1) for k, v in summary["latency_ms"].items()}
    print(f"server: packets {summary['packets']}, latency ms {latency} -> {args.out}")
    return 0


@contextlib.contextmanager
def pty_pair(folder: Path):
    """Two ptys linked by socat: the device writes one, the server reads the other."""
    a, b = folder / "device-tty", folder / "server-tty"
    link = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline:
                raise AcomError("socat made no pty pair (is socat installed? `make setup`)")
            time.sleep(0.05)
        yield a, b
    finally:
        link.terminate()
        link.wait(timeout=10)


def _reference(audio: Path) -> str | None:
    """The transcript of a LibriSpeech-layout file (from its folder's .trans.txt), or the class of an
    UrbanSound8K-layout one (FSID-CLASSID-OCC-SLICE.wav), if it is either."""
    parts = audio.stem.split("-")
    if audio.suffix == ".wav" and len(parts) == 4 and parts[1].isdigit() and int(parts[1]) < len(US8K_CLASSES):
        return US8K_CLASSES[int(parts[1])]
    for trans in audio.parent.glob("*.trans.txt"):
        for line in trans.read_text().splitlines():
            utt, _, text = line.partition(" ")
            if utt == audio.stem:
                return text
    return None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AcomError as e:
        print(f"loopback demo: error: {e}", file=sys.stderr)
        sys.exit(2)
