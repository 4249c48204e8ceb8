"""The device's C wire implementation (firmware_host/c/) against the test vectors, built for a board and run
under its emulator: ``python -m acom.firmware_host.wire_c --board rpi4`` (or ``host``: this machine's gcc).

Builds ``c/test/wire_vectors.c`` with the board's cross compiler (boards/NAME.toml ``[emulator]``): a static
aarch64 Linux binary run by ``qemu-aarch64`` for Raspberry Pi boards, bare-metal firmware run by
``qemu-system-arm -semihosting`` on the board's MPS2/MPS3 image for Cortex-M boards. Its output (every vector
case's packets and serial frames; CRC-32C, SHA-256, HMAC-SHA256 and COBS of extra inputs; the refusals) is
compared with runtime/wire_vectors/wire_v2.json and Python's own libraries, byte for byte. Exit 0: all equal; 1:
something differs (listed); 2: bad arguments or a tool missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from google_crc32c import value as crc32c

from acom.boards import known_boards
from acom.errors import AcomError
from acom.export.c_priors import c_array, c_tables
from acom.firmware_host.cbuild import TEST_DIR, build, run_command
from acom.runtime.sender import stream_packets
from acom.runtime.vectors import VECTORS_DIR
from acom.runtime.wire import Packet, WireError, codebook_id, frame_serial

VECTORS = VECTORS_DIR / "wire_v2.json"
ERRORS = "01020102"  # -ACOM_E_FIELD, -ACOM_E_SIZE, -ACOM_E_FIELD, -ACOM_E_SIZE (wire_vectors.c's refusals)


def extra_inputs() -> list[tuple[bytes, bytes]]:
    """(message, HMAC key) pairs beyond the vectors: the CRC check string, SHA-256 padding edges (55, 56, 63,
    64, 65 bytes), COBS block edges (253-255 and 508 non-zero bytes), keys longer than a block, zeros."""
    rng = np.random.default_rng(7)
    msgs = [b"123456789", b"", b"\x00", bytes(range(1, 255)), bytes(range(1, 256)) + b"\x01", bytes(range(1, 254)),
            bytes(range(1, 255)) * 2, bytes(rng.integers(0, 4, 1000, dtype=np.uint8))]
    msgs += [bytes(rng.integers(1, 256, n, dtype=np.uint8)) for n in (55, 56, 63, 64, 65)]
    keys = [b"key", b"k" * 100, b"K" * 64, b"acom-test-key-0001"]
    return [(m, keys[i % len(keys)]) for i, m in enumerate(msgs)]


@dataclasses.dataclass(frozen=True)
class StreamCase:
    """One stream to send: codes [stages, T] of a codebook, the first n_q stages sent as
    ``sender.stream_packets`` would, and the packets that must come out (hex)."""

    sizes: list[int]
    codebook_hash: str
    codes: np.ndarray
    n_q: int
    key: bytes | None
    device_id: int
    stream_id: int
    first_seq: int
    frames_per_packet: int
    full_every: int
    packets: list[str]
    serial: list[str]  # the packets' serial frames (hex)
    priors: object = None  # a CodePriors: payloads range-coded under it (None: bit-packed)


def vector_cases(vectors: dict) -> list[StreamCase]:
    """The vectors file's cases, with the packets it stores (the entropy-coded ones under its priors)."""
    from acom.runtime.vectors import priors_from_json
    codes = np.asarray(vectors["codes"], dtype=np.int64)
    priors = priors_from_json(vectors["priors"]) if "priors" in vectors else None
    return [StreamCase(vectors["codebook_sizes"], vectors["codebook_hash"], codes, c["n_q"],
                       None if c["hmac_key"] is None else c["hmac_key"].encode(), c["device_id"], c["stream_id"],
                       c["first_seq"], c["frames_per_packet"], c["full_every"], c["packets"], c["serial"],
                       priors if c.get("entropy_coded") else None)
            for c in vectors["cases"]]


def random_cases(seed: int = 0) -> list[StreamCase]:
    """Streams the vectors do not cover, with the packets ``stream_packets`` makes: 1- to 16-bit codes (K = 2,
    3, 1024, 65536), 15 stages (the most a compact packet holds) and 16 (full headers only), a payload over
    1 KiB (long COBS blocks), a key longer than a hash block, ids and sequence numbers near their limits; and 3
    range-coded streams (K 2 to 65536, a K = 1 stage, codes the priors never saw)."""
    from acom.codes.priors import CodePriors
    rng = np.random.default_rng(seed)
    spec = [([2], 1, 40, 7, 3, None, (1, 0, 0)), ([3, 1024, 65536], 3, 30, 4, 1, b"k" * 100, (2, 1, 5)),
            ([512, 64, 64], 2, 50, 25, 8, b"acom-test-key-0001", (3, 2, 9)),
            ([256] * 15, 15, 10, 3, 2, None, (4, 3, 0)),
            ([256] * 16, 16, 6, 2, 2, b"key", (5, 4, 1)), ([4096], 1, 700, 700, 1, None, (6, 5, 2)),
            ([1024, 32], 2, 90, 9, 4, b"K" * 64, (0xFFFFFFFF, 0xFFFF, 0xFFFFFFF0))]
    # range-coded: priors counted on skewed "training" codes; the streams mix likely codes and unseen ones
    entropy = [([64], 1, 60, 25, 8, None, (7, 6, 0)), ([512, 64, 2], 3, 40, 10, 2, b"key", (8, 7, 3)),
               ([65536, 3, 1], 3, 30, 7, 3, None, (9, 8, 0))]
    cases = []
    for i, (sizes, n_q, t, fpp, every, key, (dev, stream, seq)) in enumerate(spec + entropy):
        skewed = lambda n: np.stack([np.minimum(rng.geometric(0.2, n) - 1, k - 1) for k in sizes])  # noqa: E731
        priors = CodePriors.estimate([skewed(200)], sizes) if i >= len(spec) else None
        if priors is None:
            codes = np.stack([rng.integers(0, k, t) for k in sizes])
        else:  # mostly likely codes, every fifth one uniform (unlikely under the priors)
            codes = skewed(t)
            codes[:, ::5] = np.stack([rng.integers(0, k, codes[:, ::5].shape[1]) for k in sizes])
        book = rng.bytes(32).hex()
        packets = stream_packets(codes[:n_q], sizes, codebook_id(book), device_id=dev, stream_id=stream,
                                 frames_per_packet=fpp, key=key, priors=priors, first_seq=seq, full_every=every)
        cases.append(StreamCase(sizes, book, codes, n_q, key, dev, stream, seq, fpp, every, [p.hex() for p in packets],
                                [frame_serial(p).hex() for p in packets], priors))
    return cases


def write_inputs(cases: list[StreamCase], extras: list[tuple[bytes, bytes]], path: Path) -> None:
    """vectors_in.h: the streams to send and the extra inputs, as C constants."""
    lines, rows = ["/* written by acom.firmware_host.wire_c: do not edit */", "#include <stddef.h>",
                   "#include <stdint.h>"], []
    for i, c in enumerate(cases):
        lines += [f"static const uint32_t S{i}_SIZES[] = {c_array(c.sizes)};",
                  f"static const uint8_t S{i}_HASH[32] = {c_array(bytes.fromhex(c.codebook_hash))};",
                  f"static const uint16_t S{i}_CODES[] = {c_array(c.codes.ravel())};",
                  f"static const uint8_t S{i}_KEY[] = {c_array(c.key or b'')};"]
        if c.priors is not None:
            lines += c_tables(c.priors, c.n_q, f"S{i}_PRIORS")
        key = "NULL, 0" if c.key is None else f"S{i}_KEY, {len(c.key)}"
        rows.append(f"{{S{i}_SIZES, S{i}_HASH, S{i}_CODES, {c.codes.shape[1]}, {c.n_q}, {key}, {c.device_id}u, "
                    f"{c.stream_id}u, {c.first_seq}u, {c.frames_per_packet}, {c.full_every}u, "
                    f"{'NULL' if c.priors is None else f'S{i}_PRIORS'}}}")
    blob, extra_rows = b"", []
    for msg, key in extras:
        extra_rows.append(f"{{{len(blob)}u, {len(msg)}u, {len(blob) + len(msg)}u, {len(key)}u}}")
        blob += msg + key
    lines += ["typedef struct { const uint32_t *sizes; const uint8_t *hash; const uint16_t *codes; int t; int n_q;",
              "                 const uint8_t *key; size_t key_len; uint32_t device_id; uint16_t stream_id;",
              "                 uint32_t first_seq; int frames_per_packet; uint32_t full_every;",
              "                 const acom_prior *priors; } v_case;",
              f"#define V_NCASES {len(rows)}", f"static const v_case V_CASES[] = {{{', '.join(rows)}}};",
              f"#define V_NEXTRA {len(extra_rows)}",
              "static const struct { uint32_t off, len, key_off, key_len; } "
              f"V_EXTRA[] = {{{', '.join(extra_rows)}}};",
              f"static const uint8_t V_BLOB[] = {c_array(blob)};"]
    path.write_text("\n".join(lines) + "\n")


def expected_lines(cases: list[StreamCase], extras: list[tuple[bytes, bytes]]) -> list[str]:
    """What wire_vectors.c must print: the cases' packets and serial frames, and for the extra inputs
    Python's CRC-32C, SHA-256, HMAC and COBS."""
    out = []
    for i, c in enumerate(cases):
        for j, (pkt, ser) in enumerate(zip(c.packets, c.serial)):
            out += [f"packet {i} {j} {pkt}", f"serial {i} {j} {ser}"]
    for k, (msg, key) in enumerate(extras):
        n = len(msg)
        out += [f"crc {k} {n} {crc32c(msg).to_bytes(4, 'little').hex()}",
                f"sha256 {k} {n} {hashlib.sha256(msg).hexdigest()}",
                f"hmac {k} {n} {hmac.new(key, msg, hashlib.sha256).hexdigest()}",
                f"serial -1 {k} {frame_serial(msg).hex()}"]
    return out + [f"errors 0 0 {ERRORS}", "done"]


def build_and_run(board: str, work: Path, timeout: float = 60.0) -> str:
    """Build wire_vectors for `board` ("host" or a board profile's name) in `work` (holding vectors_in.h);
    its output."""
    exe = build(board, [TEST_DIR / "wire_vectors.c"], work / "wire_vectors", work)
    cmd = run_command(board, exe)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise AcomError(f"{' '.join(cmd[:3])}: exit {run.returncode}: {(run.stdout + run.stderr)[-500:]}")
    return run.stdout


ERROR_CODES = {"field": -1, "size": -2}  # acom_wire.h's ACOM_E_FIELD, ACOM_E_SIZE


def packet_record(p: Packet, key: bytes | None, compact: bool) -> bytes:
    """An encode_stdin.c 'P' record: encode `p` (payload up to 65535 bytes, key up to 65535)."""
    return (b"P" + struct.pack("<IHIIQBHBBBH", p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id, p.n_q,
                               p.n_frames, p.entropy_coded, p.end_of_stream, compact, len(p.payload)) + p.payload
            + struct.pack("<BH", key is not None, len(key or b"")) + (key or b""))


def pack_record(codes: np.ndarray, sizes: list[int]) -> bytes:
    """An encode_stdin.c 'C' record: bit-pack codes [n_q, T] (n_q = len(sizes))."""
    return (b"C" + struct.pack(f"<BH{len(sizes)}I", codes.shape[0], codes.shape[1], *sizes)
            + np.asarray(codes, dtype="<u2").tobytes())


def frame_record(data: bytes) -> bytes:
    """An encode_stdin.c 'F' record: a serial frame of `data`."""
    return b"F" + struct.pack("<H", len(data)) + data


def entropy_record(codes: np.ndarray, priors) -> bytes:
    """An encode_stdin.c 'E' record: range-code codes [n_q, T] under the first n_q stages of `priors`."""
    from acom.export.c_priors import stage_tables
    out = [b"E" + struct.pack("<BH", *codes.shape)]
    for s in range(codes.shape[0]):
        t = stage_tables(priors, s)
        out.append(struct.pack("<II", int(t["k"][0]), t["cur"].size) + t["p_uni"].astype("<f8").tobytes()
                   + t["ctx_types"].astype("<f8").tobytes() + t["ctx_denom"].astype("<f8").tobytes()
                   + t["indptr"].astype("<u4").tobytes() + t["cur"].astype("<u2").tobytes()
                   + t["count"].astype("<u4").tobytes())
    return b"".join(out) + np.asarray(codes, dtype="<u2").tobytes()


def expected_encoding(kind: str, fn, *args) -> str:
    """The line encode_stdin.c must print for a record: Python's bytes, or the error its WireError names."""
    try:
        data = fn(*args)
    except WireError as e:
        return f"{kind} {ERROR_CODES[e.reason]} "
    return f"{kind} {len(data)} {data.hex()}"


def run_encoder(board: str, records: bytes, timeout: float = 120.0) -> list[str]:
    """encode_stdin.c built for `board` ("host" or a Linux board, under qemu-aarch64) run on `records`."""
    with tempfile.TemporaryDirectory(prefix="acom-wire-c-") as tmp:
        exe = build(board, [TEST_DIR / "encode_stdin.c"], Path(tmp) / "encode_stdin", Path(tmp))
        run = subprocess.run(run_command(board, exe), input=records, capture_output=True, timeout=timeout)
    if run.returncode != 0:
        raise AcomError(f"encode_stdin on {board}: exit {run.returncode}: {run.stderr[-300:]!r}")
    return run.stdout.decode().splitlines()


def check(board: str, vectors_path: Path = VECTORS) -> dict:
    """{"board", "lines", "differences": [...]} of the C implementation on `board` against the vectors file's
    cases, ``random_cases()`` and ``extra_inputs()``."""
    try:
        cases = vector_cases(json.loads(Path(vectors_path).read_text()))
    except (OSError, ValueError) as e:
        raise AcomError(f"{vectors_path}: not a readable vectors file ({e})") from e
    except (KeyError, TypeError) as e:
        raise AcomError(f"{vectors_path}: no field {e} where a wire_v2.json from acom.runtime.vectors has one") from e
    cases += random_cases()
    extras = extra_inputs()
    with tempfile.TemporaryDirectory(prefix="acom-wire-c-") as tmp:
        write_inputs(cases, extras, Path(tmp) / "vectors_in.h")
        got = build_and_run(board, Path(tmp)).splitlines()
    want = expected_lines(cases, extras)
    diffs = [f"line {i + 1}: want {w!r}, got {g!r}" for i, (w, g) in enumerate(zip(want, got)) if w != g]
    if len(got) != len(want):
        diffs.append(f"{len(got)} lines, want {len(want)}")
    return {"board": board, "lines": len(got), "differences": diffs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m acom.firmware_host.wire_c", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", action="append", choices=["host", *known_boards()],
                   help="where to build and run (repeat; default: host and every board)")
    p.add_argument("--vectors", type=Path, default=VECTORS, 
                   help="the vectors to reproduce (default: the copy shipped in acom/runtime/wire_vectors/)")
    p.add_argument("--json", action="store_true", help="print one JSON object per board")
    ns = p.parse_args(argv)
    status = 0
    for board in ns.board or ["host", *known_boards()]:
        try:
            r = check(board, ns.vectors)
        except AcomError as e:
            print(f"{board}: {e}", file=sys.stderr)
            return 2
        status |= bool(r["differences"])
        if ns.json:
            print(json.dumps(r))
        else:
            verdict = "byte-exact" if not r["differences"] else f"{len(r['differences'])} differences"
            print(f"{board}: {r['lines']} lines, {verdict}")
            for d in r["differences"][:10]:
                print(f"  {d}")
    return status


if __name__ == "__main__":
    sys.exit(main())
