"""`acom send`: a device in software. Audio files -> the bundle's edge artifact -> packets -> UDP or serial.

The codes come from the artifact the board runs: ``edge.pte`` in the ExecuTorch runtime or ``edge.tflite``
in LiteRT (Linux bundles, whose graph takes the waveform), on the fixed windows the artifact was exported for
(as the device runs it), or from the PyTorch float edge half of ``--checkpoint`` (any bundle, also a server-only
one). Packets follow docs/wire.md; a physical board is what this stands in for (none can exist here).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from acom.errors import AcomError
from acom.runtime.bundle import read_manifest
from acom.runtime.manifest import Manifest
from acom.runtime.sender import stream_packets
from acom.runtime.wire import Contexts, codebook_id, decode_packet, frame_serial

Encoder = Callable[[np.ndarray], np.ndarray]  # audio float32 [N] at the bundle's rate -> codes int64 [n_q, T]


def artifact_encoder(bundle: Path, manifest: Manifest, name: str) -> Encoder:
    """The bundle's artifact ``name`` run window by window, as the board runs it."""
    if manifest.artifact(name) is None:
        have = [a.file for a in manifest.artifacts]
        raise AcomError(f"{bundle}: no artifact {name!r} in the manifest (it has {have or 'none'}; a bundle "
                        f"without artifacts needs --checkpoint)")
    if manifest.frontend.runs_in != "graph":
        raise AcomError(f"{bundle / name}: this graph takes features the firmware computes (board "
                        f"{manifest.board}); run it on the board, or use --checkpoint for the PyTorch encoder")
    data = (bundle / name).read_bytes()
    if name.endswith(".pte"):
        from acom.export.executorch import PteRunner
        runner = PteRunner(data)
    elif name.endswith(".tflite"):
        from acom.export.litert import run_litert
        runner = lambda x: run_litert(data, [x])[0]  # noqa: E731
    else:
        raise AcomError(f"{bundle / name}: --artifact must be a .pte or .tflite file of the bundle")
    window = manifest.graph.window_samples
    per_code = round(manifest.sample_rate / manifest.frame_rate)

    def encode(audio: np.ndarray) -> np.ndarray:
        n_win = max(1, -(-len(audio) // window))
        padded = np.zeros(n_win * window, dtype=np.float32)
        padded[: len(audio)] = audio
        codes = [np.asarray(runner(padded[w * window:(w + 1) * window][None]))[0] for w in range(n_win)]
        return np.concatenate(codes, axis=1)[:, : max(1, -(-len(audio) // per_code))].astype(np.int64)
    return encode


def checkpoint_encoder(checkpoint: Path, manifest: Manifest, n_q: int) -> Encoder:
    """The PyTorch float edge half of a split checkpoint (must have the bundle's codebooks)."""
    import torch

    from acom.core.checkpoint import load_checkpoint
    split, _ = load_checkpoint(checkpoint, manifest.task)
    if split.rvq is None or split.rvq.codebook_hash() != manifest.codebook_hash:
        raise AcomError(f"{checkpoint}: its codebooks are not the bundle's (codebook hash differs): the server "
                        f"would refuse every packet")
    edge = split.edge(n_q)

    def encode(audio: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return edge(torch.from_numpy(audio)[None])[0].numpy()
    return encode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom send", description="Act as a device: encode audio files with the bundle's edge artifact "
        "(or a checkpoint's float edge half) and send the codes as acom packets, one stream per file.",
        epilog="Prints one JSON line per file (frames, packets, bytes, bit/s). Exit codes: 0 sent, 2 bad input.")
    p.add_argument("audio", nargs="+", type=Path, help="audio files (any rate; resampled to the bundle's)")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder written by acom-export")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--udp", metavar="HOST:PORT", help="send datagrams here")
    dest.add_argument("--serial", metavar="PORT", help="write COBS frames to this serial port or pyserial URL")
    p.add_argument("--artifact", default="edge.pte", help="the bundle's artifact to run (default edge.pte)")
    p.add_argument("--checkpoint", type=Path, help="use this checkpoint's PyTorch edge half instead of an artifact")
    p.add_argument("--n-q", type=int, help="stages to send (default: the bundle's n_q)")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--first-stream", type=int, default=0, help="stream id of the first file (then +1 per file)")
    p.add_argument("--packet-s", type=float, default=1.0, help="seconds of audio per packet (default 1)")
    p.add_argument("--full-every", type=int, default=8, metavar="N",
                   help="one packet in N (and the last) is a full packet (32-byte header: the stream's ids and "
                   "settings), the others short ones (2-byte header) that the server expands with it (default 8; "
                   "1: all full, for receivers without contexts)")
    p.add_argument("--key", help="HMAC key of this device, in hex (the server's --keys entry)")
    p.add_argument("--tag-bytes", type=int, default=8, choices=[4, 8, 16],
                   help="with --key: bytes of HMAC tag per packet (default 8; 4 for slow links: the server ignores "
                   "a source that sends many bad tags)")
    p.add_argument("--entropy", action="store_true", help="range-code each packet's codes under the bundle's "
                   "priors (priors.safetensors; the rates the reports call entropy-coded) instead of bit-packing "
                   "them; the C device (--c-device) does it in C, byte for byte as here")
    p.add_argument("--realtime", action="store_true", help="send each packet when its audio would be captured")
    p.add_argument("--c-device", metavar="BOARD", help="send through the device's C code (firmware_host/c/) built "
                   "for BOARD and run under its emulator: rpi4/rpi5 (or host) send --udp datagrams from "
                   "qemu-aarch64; Cortex-M boards send COBS frames on their UART, connected to the --serial tty "
                   "(e.g. one end of a socat pty pair). With a bundle that carries its graph in C (an MCU "
                   "export) the firmware computes the codes from the audio itself; "
                   "otherwise (or with --checkpoint) the codes are computed here and the C sends them")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from acom.core.audio import load_audio
    from acom.runtime.serve_cli import parse_hostport
    manifest = read_manifest(args.bundle)
    priors = _priors(args, manifest)
    if args.c_device and (manifest.c_graph is not None and manifest.c_graph.written) and not args.checkpoint:
        return _device_from_c(args, manifest, priors, parse_hostport)
    n_q = args.n_q or manifest.n_q
    if args.checkpoint:
        encode = checkpoint_encoder(args.checkpoint, manifest, n_q)
    else:
        encode = artifact_encoder(args.bundle, manifest, args.artifact)
    if args.full_every < 1:
        raise AcomError(f"--full-every {args.full_every}: expected 1 or more")
    key = _key(args.key)
    sizes, book = list(manifest.model.codebook_sizes), codebook_id(manifest.codebook_hash)
    fpp = max(1, round(args.packet_s * manifest.frame_rate))
    if args.c_device:
        return _send_from_c(args, encode, manifest, n_q, fpp, key, priors, parse_hostport)
    send = _transport(args, parse_hostport)
    for i, path in enumerate(args.audio):
        codes = encode(load_audio(path, manifest.sample_rate))[:n_q]
        packets = stream_packets(codes, sizes, book, device_id=args.device_id, stream_id=args.first_stream + i,
                                 frames_per_packet=fpp, key=key, tag_len=args.tag_bytes, priors=priors,
                                 full_every=args.full_every)
        start = time.monotonic()
        for j, packet in enumerate(packets):
            if args.realtime:
                time.sleep(max(0.0, start + (j + 1) * args.packet_s - time.monotonic()))
            send(packet)
        seconds = max(codes.shape[1] / manifest.frame_rate, 1e-9)
        contexts = Contexts()  # what the server will read: the payload's share of the bytes sent
        payload = sum(len(decode_packet(d, {args.device_id: key} if key else None, contexts).payload)
                      for d in packets)
        print(json.dumps({"file": str(path), "stream": args.first_stream + i, "frames": codes.shape[1],
                          "n_q": codes.shape[0], "packets": len(packets), "bytes": sum(map(len, packets)),
                          "payload": "entropy" if priors else "packed",
                          "payload_bps": round(8 * payload / seconds, 1),
                          "bps_on_wire": round(8 * sum(map(len, packets)) / seconds, 1)}), flush=True)
    return 0


def _key(text: str | None) -> bytes | None:
    """--key as bytes: hex, at least 16 bytes (as the server's keys file requires)."""
    if text is None:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AcomError(f"--key {text[:8]}...: not hex (the device's key, as in the server's --keys file)") from None
    if len(key) < 16:
        raise AcomError(f"--key: {len(key)} bytes; keys are at least 16 bytes (32 hex digits)")
    return key


def _priors(args: argparse.Namespace, manifest: Manifest):
    """--entropy: the bundle's CodePriors (an AcomError when it has none); else None (bit-packed payloads)."""
    if not args.entropy:
        return None
    from acom.runtime.bundle import load_priors
    priors = load_priors(args.bundle, manifest)
    if priors is None:
        raise AcomError(f"--entropy: {args.bundle} has no priors (manifest field 'priors'); export it from a "
                        "checkpoint that has them, or send bit-packed codes (leave out --entropy)")
    return priors


def _device_from_c(args: argparse.Namespace, manifest: Manifest, priors, parse_hostport) -> int:
    """--c-device with a bundle that carries its graph in C (MCU bundles): the whole device in C, audio to
    packets, under the board's emulator."""
    from acom.core.audio import load_audio
    from acom.firmware_host.device_c import send_audio
    from acom.firmware_host.edge_c import pcm16
    _check_c_device(args)
    if args.n_q and args.n_q != manifest.n_q:
        raise AcomError(f"--n-q {args.n_q}: the bundle's C graph computes {manifest.n_q} stages")
    clips = [(args.first_stream + i, pcm16(load_audio(p, manifest.sample_rate))) for i, p in enumerate(args.audio)]
    sent = send_audio(args.c_device, args.bundle, clips, device_id=args.device_id, full_every=args.full_every,
                      tag_len=args.tag_bytes,
                      frames_per_packet=max(1, round(args.packet_s * manifest.frame_rate)),
                      key=_key(args.key), priors=priors,
                      udp=parse_hostport(args.udp) if args.udp else None, uart=args.serial)
    for path, s in zip(args.audio, sent):
        seconds = s["frames"] / manifest.frame_rate
        print(json.dumps({"file": str(path), "stream": s["stream"], "frames": s["frames"], "n_q": manifest.n_q,
                          "packets": s["packets"], "bytes": s["bytes"], "sender": f"c:{args.c_device}",
                          "codes_from": "c", "payload": "entropy" if priors else "packed",
                          "payload_bps": round(8 * s["payload_bytes"] / max(seconds, 1e-9), 1),
                          "bps_on_wire": round(8 * s["bytes"] / max(seconds, 1e-9), 1)}), flush=True)
    return 0


def _check_c_device(args: argparse.Namespace) -> None:
    from acom.boards import known_boards
    if args.c_device not in ("host", *known_boards()):
        raise AcomError(f"--c-device {args.c_device}: one of host, {', '.join(known_boards())}")
    if args.realtime:
        raise AcomError("--c-device sends as fast as the emulator runs: leave out --realtime")


def _send_from_c(args: argparse.Namespace, encode: Encoder, manifest: Manifest, n_q: int, fpp: int, key: bytes | None,
                 priors, parse_hostport) -> int:
    """--c-device: every file's codes sent by the C device under the board's emulator, one run for all."""
    from acom.core.audio import load_audio
    from acom.firmware_host.device_c import send
    _check_c_device(args)
    codes = [encode(load_audio(path, manifest.sample_rate))[:n_q] for path in args.audio]
    streams = [(args.device_id, args.first_stream + i, c) for i, c in enumerate(codes)]
    sent = send(args.c_device, streams, list(manifest.model.codebook_sizes), manifest.codebook_hash,
                frames_per_packet=fpp, full_every=args.full_every, key=key, tag_len=args.tag_bytes, priors=priors,
                udp=parse_hostport(args.udp) if args.udp else None, uart=args.serial)
    for path, c, s in zip(args.audio, codes, sent):
        seconds = c.shape[1] / manifest.frame_rate
        print(json.dumps({"file": str(path), "stream": s["stream"], "frames": c.shape[1], "n_q": c.shape[0],
                          "packets": s["packets"], "bytes": s["bytes"], "sender": f"c:{args.c_device}",
                          "codes_from": "host", "payload": "entropy" if priors else "packed",
                          "payload_bps": round(8 * s["payload_bytes"] / max(seconds, 1e-9), 1),
                          "bps_on_wire": round(8 * s["bytes"] / max(seconds, 1e-9), 1)}),
              flush=True)
    return 0


def _transport(args: argparse.Namespace, parse_hostport) -> Callable[[bytes], None]:
    if args.udp:
        addr, sock = parse_hostport(args.udp), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return lambda packet: sock.sendto(packet, addr)
    import serial
    try:
        port = serial.serial_for_url(args.serial, baudrate=115200)
    except (serial.SerialException, ValueError) as e:
        raise AcomError(f"--serial {args.serial}: cannot open ({e})") from e
    return lambda packet: port.write(frame_serial(packet))


if __name__ == "__main__":
    sys.exit(main())
