"""`acom flash`: put a bundle's device program on its board, or run it under the board's emulator.

- ``--emulate``: the board's program under its emulator (acom-edge under qemu-aarch64 for the Raspberry Pis,
  the firmware under qemu-system-arm for Cortex-M, its UART on a pty), the audio files streamed into it as its
  microphone would, its packets to an `acom serve` it starts on this machine (or to ``--server``); prints the
  server's result per stream.
- a Cortex-M board: the bundle's firmware image written with pyOCD (target type from the board profile),
  read back and compared, and the core reset; no probe: exit 2 naming the probe kinds searched.
- a Linux board: a folder to copy onto the board (firmware_host/linux_deploy.py) and the two commands that
  install it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError
from acom.runtime.bundle import read_manifest
from acom.runtime.manifest import Manifest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom flash", description="Put a bundle's device program on its board (pyOCD for Cortex-M; a folder "
        "to copy for a Raspberry Pi), or run it under the board's emulator with --emulate.",
        epilog="Exit codes: 0 done, 1 the device or server failed, 2 bad input (no probe, a bundle without a "
        "device program, unreadable audio). The shipped models are demonstrations trained on synthetic audio.")
    p.add_argument("audio", nargs="*", type=Path, help="--emulate: audio files fed to the device, one stream each")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder written by acom-export")
    p.add_argument("--emulate", action="store_true", help="run under the board's emulator instead of the board")
    p.add_argument("--server", metavar="HOST:PORT", help="--emulate with a Linux board: send to this acom serve "
                   "instead of starting one (results are then the server's to print)")
    p.add_argument("--entropy", action="store_true", help="range-coded payloads under the bundle's priors")
    p.add_argument("--packet-s", type=float, default=1.0, help="seconds of audio per packet (default 1)")
    p.add_argument("--keys", type=Path, help="sign packets with device 1's key from this keys file (serve too)")
    p.add_argument("--out", type=Path, help="Linux board: the folder to write (default acom-edge-BOARD)")
    p.add_argument("--to", default="192.168.1.10:5004", metavar="HOST:PORT",
                   help="Linux board: the server address written into the folder's settings (edit it later)")
    p.add_argument("--probe", metavar="UID", help="Cortex-M: the debug probe's unique id (default: the only one)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines of text")
    return p


class DeviceFailure(Exception):
    """The device program or the server failed (exit 1), as opposed to bad input (an AcomError, exit 2)."""


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except DeviceFailure as e:
        print(f"acom flash: failed: {e}", file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    m = read_manifest(args.bundle)
    board = load_board(m.board)
    if args.emulate:
        if not args.audio:
            raise AcomError("--emulate: give audio files to stream into the device")
        if not 0 < args.packet_s <= 60:
            raise AcomError(f"--packet-s {args.packet_s}: expected seconds, more than 0, at most 60")
        result = _emulate_linux(args, m) if board.kind == "linux" else _emulate_mcu(args, m)
        _print_result(result, args.json)
        return 0
    if args.audio:
        raise AcomError("audio files go with --emulate (a flashed board listens to its microphone)")
    if board.kind == "linux":
        from acom.firmware_host.linux_deploy import write_deploy
        out = args.out or Path(f"acom-edge-{m.board}")
        commands = write_deploy(args.bundle, m, out, args.to)
        print(json.dumps({"folder": str(out), "install": commands}) if args.json else
              f"wrote {out}/ for {m.board}; install it on the board with:\n  " + "\n  ".join(commands))
        return 0
    from acom.firmware_host.probe import flash_bundle
    done = flash_bundle(args.bundle, m, board, args.probe)
    print(json.dumps(done) if args.json else f"flashed {done['image']} ({done['bytes']} bytes) to {done['target']} "
          f"through {done['probe']}; verified and reset")
    return 0


def _emulate_linux(args: argparse.Namespace, m: Manifest) -> dict:
    """acom-edge for the bundle's board under qemu-aarch64, the files as WAV, UDP to a local acom serve."""
    import subprocess

    from acom.firmware_host.edge_runner import build_edge, edge_command, to_wavs
    from acom.firmware_host.local_serve import local_server
    exe = build_edge(m.board)
    opts = [*(["--entropy"] if args.entropy else []), "--packet-s", str(args.packet_s),
            *(["--keys", str(args.keys)] if args.keys else [])]
    with tempfile.TemporaryDirectory(prefix="acom-flash-") as tmp:
        wavs = to_wavs(args.audio, m.sample_rate, Path(tmp))

        def device(to: str) -> list[dict]:
            run = subprocess.run([*edge_command(m.board, exe), "--bundle", str(args.bundle), "--udp", to, *opts,
                                  *map(str, wavs)], capture_output=True, text=True)
            if run.returncode == 2:  # the user's input (its message says which)
                raise AcomError(f"acom-edge: {run.stderr.strip()[-500:]}")
            if run.returncode:
                raise DeviceFailure(f"acom-edge ({m.board}, qemu-aarch64) exit {run.returncode}: "
                                    f"{run.stderr.strip()[-500:]}")
            return [json.loads(x) for x in run.stdout.splitlines()]
        if args.server:
            return {"board": m.board, "device": device(args.server), "finals": [], "server": args.server}
        extra = ("--keys", str(args.keys)) if args.keys else ()
        with local_server(args.bundle, Path(tmp) / "serve.jsonl", udp=True, extra=extra) as srv:
            sent = device(f"{srv.udp[0]}:{srv.udp[1]}")
            finals = srv.wait_finals(len(wavs), timeout=120)
        lines = srv.lines()  # the server's summary comes last, written as it stops
        return {"board": m.board, "device": sent, "finals": finals, "files": [str(p) for p in args.audio],
                "server": "local", "summary": lines[-1] if lines and lines[-1]["type"] == "summary" else {}}


def _emulate_mcu(args: argparse.Namespace, m: Manifest) -> dict:
    """The bundle's firmware under qemu-system-arm, the files over its UART (docs/firmware.md), its packets on a
    pty pair into a local acom serve --serial. The bundle's image sends 1 s packets, range-coded when it has
    priors, without a key; other settings (--packet-s, no --entropy, --keys) build an image of their own."""
    from acom.core.audio import load_audio
    from acom.firmware_host.edge_c import pcm16
    from acom.firmware_host.local_serve import local_server
    from acom.firmware_host.loopback_demo import pty_pair
    from acom.firmware_host.uart_audio import stream_audio
    if args.server:
        raise AcomError("--server: a Cortex-M board's firmware talks on its UART; acom flash starts the server")
    if m.firmware is None or not m.firmware.written:
        why = m.firmware.reason if m.firmware is not None else "exported before acom-export built firmware"
        raise AcomError(f"{args.bundle}: no firmware image ({why}); export the bundle again")
    clips = [(i, pcm16(load_audio(p, m.sample_rate))) for i, p in enumerate(args.audio)]
    with tempfile.TemporaryDirectory(prefix="acom-flash-") as tmp, pty_pair(Path(tmp)) as (device, server):
        image = _firmware_for(args, m, Path(tmp))
        extra = ("--keys", str(args.keys)) if args.keys else ()
        with local_server(args.bundle, Path(tmp) / "serve.jsonl", tty=server, extra=extra) as srv:
            run = stream_audio(m.board, image, clips, serial=str(device), timeout=600)
            finals = srv.wait_finals(len(clips), timeout=120)
        lines = srv.lines()
    sent = []
    for s in run.streams:
        seconds = max(s["frames"] / m.frame_rate, 1e-9)
        sent.append({"stream": s["stream"], "frames": s["frames"], "packets": s["packets"], "bytes": s["bytes"],
                     "payload": "entropy" if args.entropy else "packed",
                     "payload_bps": round(8 * s["payload_bytes"] / seconds, 1),
                     "bps_on_wire": round(8 * s["bytes"] / seconds, 1)})
    return {"board": m.board, "device": sent, "finals": finals, "files": [str(p) for p in args.audio],
            "server": "local", "errors": run.errors,
            "summary": lines[-1] if lines and lines[-1]["type"] == "summary" else {}}


def _firmware_for(args: argparse.Namespace, m: Manifest, work: Path) -> Path:
    """The bundle's firmware image when its settings are the ones asked for, else one built with them."""
    from acom.export.firmware import StreamSettings, build_firmware
    fpp = max(1, round(args.packet_s * m.frame_rate))
    have = m.firmware.settings
    key = None
    if args.keys:
        from acom.runtime.serve_cli import load_keys
        key = load_keys(args.keys).get(1)
        if key is None:
            raise AcomError(f"--keys {args.keys}: no key for device 1 (the firmware's device id)")
    if have.get("frames_per_packet") == fpp and have.get("entropy") == args.entropy and key is None:
        return args.bundle / m.firmware.elf
    settings = StreamSettings(frames_per_packet=fpp, entropy=args.entropy, key=key)
    return build_firmware(m.board, m, args.bundle / "c", work, settings).files[m.firmware.elf]


def _class_name(label: int) -> str:
    from acom.corpora.datasets import US8K_CLASSES
    return f" ({US8K_CLASSES[label]})" if 0 <= label < len(US8K_CLASSES) else ""


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    for r in result["device"]:
        print(f"device ({result['board']}): stream {r['stream']}: {r['packets']} packets, {r['bytes']} bytes, "
              f"{r['bps_on_wire']} bit/s on the wire ({r['payload']} codes: {r['payload_bps']} bit/s)")
    files = result.get("files", [])
    for r in result["finals"]:
        what = repr(r["text"]) if "text" in r else f"label {r['label']}{_class_name(r['label'])}"
        name = Path(files[r["stream"]]).name if r["stream"] < len(files) else ""
        print(f"server: stream {r['stream']} ({name}, {r['seconds']} s): {what}")


if __name__ == "__main__":
    sys.exit(main())
