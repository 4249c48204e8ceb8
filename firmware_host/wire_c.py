"""The device's C wire implementation (firmware_host/c/) against the test vectors, built for a board and run
under its emulator: ``python -m acom.firmware_host.wire_c --board rpi4`` (or ``host``: this machine's gcc).

Builds ``c/test/wire_vectors.c`` with the board's cross compiler (boards/NAME.toml ``[emulator]``): a static
aarch64 Linux binary run by ``qemu-aarch64`` for Raspberry Pi boards, bare-metal firmware run by
``qemu-system-arm -semihosting`` on the board's MPS2/MPS3 image for Cortex-M boards. Its output (every vector
case's packets and serial frames, those of more streams, full and short packets encoded one by one; CRC-32C,
CRC-16, SHA-256, HMAC-SHA256 and COBS of extra inputs; the refusals) is compared with
runtime/wire_vectors/wire_v3.json and the Python implementation (``sender.StreamSender``, ``wire.encode_packet``,
``wire.encode_short``, hashlib, google_crc32c, cobs), byte for byte. Exit 0: all equal; 1: something differs
(listed); 2: bad arguments or a tool missing.
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
from binascii import crc_hqx
from pathlib import Path

import numpy as np
from google_crc32c import value as crc32c

from acom.boards import known_boards
from acom.errors import AcomError
from acom.export.c_priors import c_array, c_tables
from acom.firmware_host.cbuild import TEST_DIR, build, run_command
from acom.runtime.sender import StreamSender
from acom.runtime.vectors import VECTORS_DIR
from acom.runtime.wire import (
    Packet,
    StreamContext,
    WireError,
    codebook_id,
    encode_packet,
    encode_short,
    frame_serial,
    make_payload,
)

VECTORS = VECTORS_DIR / "wire_v3.json"
# wire_vectors.c's refusals: a code >= K, a buffer too small for each encoder, a stream past seq 2^32 - 1 and past
# frame 2^32 - 1
ERRORS = "01020202020101"
ERROR_CODES = {"field": -1, "size": -2}  # acom_wire.h's ACOM_E_FIELD, ACOM_E_SIZE


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
    """One stream to send: codes [stages, T] of a codebook, cut into packets of (n_q, n_frames) each (``cuts``,
    in order, frames taken one after another), sent as ``sender.StreamSender`` sends them (``n_q``: the stream's
    usual one), and the packets that must come out (hex)."""

    sizes: list[int]
    codebook_hash: str
    codes: np.ndarray
    n_q: int
    key: bytes | None
    tag_len: int
    device_id: int
    stream_id: int
    first_seq: int
    frames_per_packet: int
    full_every: int
    cuts: list[tuple[int, int]]
    packets: list[str]
    serial: list[str]  # the packets' serial frames (hex)
    priors: object = None  # a CodePriors: payloads range-coded under it (None: bit-packed)


def regular_cuts(n_q: int, total: int, frames_per_packet: int) -> list[tuple[int, int]]:
    """How ``sender.stream_packets`` cuts T frames: frames_per_packet each, the rest last (one empty if T = 0)."""
    return [(n_q, min(frames_per_packet, total - t)) for t in range(0, total, frames_per_packet)] or [(n_q, 0)]


def send_cuts(codes: np.ndarray, sizes: list[int], book: int, cuts: list[tuple[int, int]], priors=None,
              **stream) -> list[bytes]:
    """The packets ``StreamSender(book, **stream)`` sends for codes [stages, T] cut as ``cuts`` (the last one
    the end of the stream)."""
    sender = StreamSender(book, entropy_coded=priors is not None, **stream)
    out, t = [], 0
    for i, (n_q, n) in enumerate(cuts):
        payload, _ = make_payload(codes[:n_q, t: t + n], sizes, priors)
        out.append(sender.packet(payload, n_q, n, end=i == len(cuts) - 1))
        t += n
    return out


def vector_cases(vectors: dict) -> list[StreamCase]:
    """The vectors file's cases, with the packets it stores (the entropy-coded ones under its priors)."""
    from acom.runtime.vectors import priors_from_json
    codes = np.asarray(vectors["codes"], dtype=np.int64)
    priors = priors_from_json(vectors["priors"]) if "priors" in vectors else None
    return [StreamCase(vectors["codebook_sizes"], vectors["codebook_hash"], codes, c["n_q"],
                       None if c["hmac_key"] is None else c["hmac_key"].encode(), c["tag_len"], c["device_id"],
                       c["stream_id"], c["first_seq"], c["frames_per_packet"], c["full_every"],
                       regular_cuts(c["n_q"], codes.shape[1], c["frames_per_packet"]), c["packets"], c["serial"],
                       priors if c.get("entropy_coded") else None)
            for c in vectors["cases"]]


# sizes, n_q, T, frames per packet, full every, key, tag length, (device, stream, first seq), cuts (None: regular)
_KEY = b"acom-test-key-0001"
_BIT_PACKED = [
    ([2], 1, 40, 7, 3, None, 0, (1, 0, 0), None), ([3, 1024, 65536], 3, 30, 4, 1, b"k" * 100, 16, (2, 1, 5), None),
    ([512, 64, 64], 2, 50, 25, 8, _KEY, 4, (3, 2, 9), None), ([256] * 15, 15, 10, 3, 2, None, 0, (4, 3, 0), None),
    ([256] * 16, 16, 6, 2, 2, b"key", 8, (5, 4, 1), None), ([4096], 1, 700, 700, 1, None, 0, (6, 5, 2), None),
    ([1024, 32], 2, 90, 9, 4, b"K" * 64, 8, (0xFFFFFFFF, 0xFFFF, 0xFFFFFFF0), None),
    # seq's low byte wraps in short packets (stream ids 17 and 33: context 1), up to seq 2^32 - 57
    ([64], 1, 300, 1, 100, None, 0, (10, 17, 200), None),
    ([64, 64], 2, 200, 1, 50, b"key", 4, (11, 33, 2**32 - 256), None),
    # short packets with their own n_q and n_frames; after one that is not the stream's frames per packet, full
    ([64, 32, 16], 2, 31, 5, 4, None, 0, (12, 0x1234, 77),
     [(2, 5), (1, 5), (3, 5), (1, 4), (2, 5), (2, 5), (2, 2)]),
    ([64, 32, 16], 2, 20, 5, 3, _KEY, 16, (13, 2, 254), [(2, 5), (2, 5), (2, 0), (2, 5), (1, 5)]),
    ([8], 1, 0, 25, 8, None, 0, (14, 3, 0), None),  # no frames at all: one empty packet
]
_RANGE_CODED = [
    ([64], 1, 60, 25, 8, None, 0, (7, 6, 0), None), ([512, 64, 2], 3, 40, 10, 2, b"key", 8, (8, 7, 3),
                                                      [(3, 10), (2, 10), (3, 10), (1, 10)]),
    ([65536, 3, 1], 3, 30, 7, 3, None, 0, (9, 8, 0), None), ([64, 8], 2, 24, 2, 6, _KEY, 4, (15, 9, 250), None),
]


def random_cases(seed: int = 0) -> list[StreamCase]:
    """Streams the vectors do not cover, with the packets ``StreamSender`` makes: 1- to 16-bit codes (K = 2,
    3, 1024, 65536), 15 and 16 stages, a payload over 1 KiB (long COBS blocks), keys longer than a hash block,
    tags of 4, 8 and 16 bytes, ids and sequence numbers near their limits, seq's low byte wrapping in short
    packets, packets whose n_q or n_frames is not the stream's, an empty stream; and 4 range-coded streams (K 2
    to 65536, a K = 1 stage, codes the priors never saw)."""
    from acom.codes.priors import CodePriors
    rng = np.random.default_rng(seed)
    cases = []
    for i, (sizes, n_q, t, fpp, every, key, tag_len, (dev, stream, seq), cuts) in enumerate(_BIT_PACKED
                                                                                             + _RANGE_CODED):
        skewed = lambda n: np.stack([np.minimum(rng.geometric(0.2, n) - 1, k - 1) for k in sizes])  # noqa: E731
        priors = CodePriors.estimate([skewed(200)], sizes) if i >= len(_BIT_PACKED) else None
        if priors is None:
            codes = np.stack([rng.integers(0, k, t) for k in sizes])
        else:  # mostly likely codes, every fifth one uniform (unlikely under the priors)
            codes = skewed(t)
            codes[:, ::5] = np.stack([rng.integers(0, k, codes[:, ::5].shape[1]) for k in sizes])
        book = rng.bytes(32).hex()
        cuts = cuts or regular_cuts(n_q, t, fpp)
        packets = send_cuts(codes, sizes, codebook_id(book), cuts, priors, device_id=dev, stream_id=stream,
                            frames_per_packet=fpp, n_q=n_q, key=key, tag_len=tag_len, first_seq=seq,
                            full_every=every)
        cases.append(StreamCase(sizes, book, codes, n_q, key, tag_len, dev, stream, seq, fpp, every, cuts,
                                [p.hex() for p in packets], [frame_serial(p).hex() for p in packets], priors))
    return cases


@dataclasses.dataclass(frozen=True)
class EncodeCase:
    """One packet encoded on its own: full (``context`` None: ``wire.encode_packet(packet, key, tag_len)``) or
    short (``wire.encode_short(packet, context, key)``)."""

    packet: Packet
    key: bytes | None
    tag_len: int = 0
    context: StreamContext | None = None

    def expected(self) -> tuple[int, bytes]:
        """(length, bytes) Python writes, or (the error's ACOM_E_* code, b"")."""
        try:
            data = (encode_packet(self.packet, self.key, self.tag_len) if self.context is None
                    else encode_short(self.packet, self.context, self.key))
        except WireError as e:
            return ERROR_CODES[e.reason], b""
        return len(data), data


def context_for(p: Packet, seq: int, tag_len: int, n_q: int | None = None) -> StreamContext:
    """The context of p's stream whose full packet had `seq`, so that p follows it (its usual n_q: `n_q`)."""
    fpp = p.frames_per_packet
    return StreamContext(p.device_id, p.stream_id, p.codebook_id, seq, p.first_frame - (p.seq - seq) * fpp, fpp,
                         p.stream_n_q if n_q is None else n_q, p.entropy_coded, tag_len, seq)


def encode_cases(seed: int = 1) -> list[EncodeCase]:
    """Packets encoded one by one: full ones with each tag length, short ones whose n_q and n_frames are or are
    not the stream's, seq's low byte wrapping, context numbers of large stream ids, a short packet before its
    context's seq, packets of exactly 1400 bytes; and refusals (Python's ``field`` and ``size``): a short packet
    that does not follow its context (frame, device, codebook, coding, settings), a key without a tag length or
    a tag length without a key, tag lengths the format has not, n_q 0, n_frames 4097, frames per packet 0 and
    4097, stream n_q 0, a packet of 1401 bytes; then 40 random ones."""
    rng = np.random.default_rng(seed)

    def pkt(**kw) -> Packet:
        base = dict(device_id=7, stream_id=0x1234, seq=0x1FF, first_frame=100000, codebook_id=0x0123456789ABCDEF,
                    n_q=2, n_frames=25, payload=bytes(range(40)), frames_per_packet=25, stream_n_q=2)
        return Packet(**{**base, **kw})

    p, big = pkt(), pkt(payload=bytes(rng.integers(0, 256, 1364, dtype=np.uint8)))
    ctx = context_for(p, 0x1FC, 0)  # seq 0x1FC -> 0x1FF
    cases = [EncodeCase(p, None), EncodeCase(pkt(entropy_coded=True, end_of_stream=True), _KEY, 4),
             EncodeCase(p, _KEY, 8), EncodeCase(pkt(stream_id=0xFFFF, device_id=2**32 - 1), b"", 16),
             EncodeCase(p, None, 12), EncodeCase(big, None), EncodeCase(pkt(payload=big.payload + b"x"), None),
             EncodeCase(pkt(payload=big.payload[:-4]), _KEY, 8), EncodeCase(pkt(payload=big.payload[:-3]), _KEY, 8)]
    cases += [EncodeCase(p, None, 0, ctx), EncodeCase(pkt(seq=0x200, first_frame=100025), None, 0, ctx),
              EncodeCase(pkt(n_q=1), None, 0, ctx), EncodeCase(pkt(n_q=255), None, 0, ctx),
              EncodeCase(pkt(n_frames=7), None, 0, ctx), EncodeCase(pkt(n_frames=0, n_q=3, end_of_stream=True),
                                                                    None, 0, ctx),
              EncodeCase(pkt(seq=0x100, first_frame=100000 - 255 * 25), None, 0, ctx)]
    for tag in (4, 8, 16):
        tagged = context_for(p, 0x1FC, tag)
        cases += [EncodeCase(p, _KEY, 0, tagged), EncodeCase(pkt(n_q=1, n_frames=3, entropy_coded=True),
                                                             b"K" * 100, 0, context_for(pkt(entropy_coded=True),
                                                                                        0x1FC, tag))]
    short_big = pkt(payload=bytes(1400 - 2 - 8))
    cases += [EncodeCase(short_big, _KEY, 0, context_for(p, 0x1FC, 8)),
              EncodeCase(pkt(payload=short_big.payload + b"x"), _KEY, 0, context_for(p, 0x1FC, 8))]
    bad = [pkt(first_frame=100001), pkt(device_id=8), pkt(codebook_id=1), pkt(entropy_coded=True),
           pkt(frames_per_packet=24, first_frame=100000 - 3), pkt(stream_n_q=3), pkt(stream_id=0x1235)]
    cases += [EncodeCase(b, None, 0, ctx) for b in bad]
    cases += [EncodeCase(p, _KEY, 0, ctx), EncodeCase(p, None, 0, context_for(p, 0x1FC, 8)),
              EncodeCase(p, _KEY, 0, context_for(p, 0x1FC, 5)), EncodeCase(p, _KEY, 0),
              EncodeCase(p, _KEY, 32), EncodeCase(pkt(n_q=0), None), EncodeCase(pkt(n_frames=4097), None),
              EncodeCase(pkt(frames_per_packet=0), None), EncodeCase(pkt(frames_per_packet=4097), None),
              EncodeCase(pkt(stream_n_q=0), None), EncodeCase(pkt(n_q=0), None, 0, ctx)]
    return cases + [random_encode_case(rng) for _ in range(40)]


def random_encode_case(rng: np.random.Generator) -> EncodeCase:
    """A random packet, full or short (mostly following a context of its stream), any tag length."""
    fpp, seq, n_q = int(rng.integers(1, 4097)), int(rng.integers(0, 2**32)), int(rng.integers(1, 256))
    p = Packet(int(rng.integers(2**32)), int(rng.integers(2**16)), seq, int(rng.integers(2**20, 2**32 - 2**20)),
               int(rng.integers(2**63)) * 2 + int(rng.integers(2)), n_q,
               fpp if rng.integers(2) else int(rng.integers(0, 4097)), rng.bytes(int(rng.integers(0, 300))),
               bool(rng.integers(2)), bool(rng.integers(2)), frames_per_packet=fpp,
               stream_n_q=n_q if rng.integers(2) else int(rng.integers(1, 256)))
    key = None if rng.integers(3) == 0 else rng.bytes(int(rng.integers(0, 80)))
    tag_len = 0 if key is None else int(rng.choice([4, 8, 16]))
    if rng.integers(3) == 0:
        return EncodeCase(p, key, tag_len)
    back = int(rng.integers(0, min(p.first_frame // fpp, seq, 300) + 1))  # the context's full packet: seq - back
    ctx_n_q = p.stream_n_q if rng.integers(6) else int(rng.integers(1, 256))  # now and then not the stream's
    return EncodeCase(p, key, 0, context_for(p, seq - back, tag_len, ctx_n_q))


def _c_packet(p: Packet) -> str:
    return (f"{{{p.device_id}u, {p.stream_id}u, {p.seq}u, {p.first_frame}u, {p.codebook_id:#x}ull, {p.n_q}u, "
            f"{p.n_frames}u, {p.frames_per_packet}u, {p.stream_n_q}u, {int(p.entropy_coded)}u, "
            f"{int(p.end_of_stream)}u}}")


def _c_context(c: StreamContext | None) -> str:
    if c is None:
        return "{0}"
    return (f"{{{c.device_id}u, {c.stream_id}u, {c.codebook_id:#x}ull, {c.seq}u, {c.first_frame}u, "
            f"{c.frames_per_packet}u, {c.n_q}u, {int(c.entropy_coded)}u, {c.tag_len}u}}")


def write_inputs(cases: list[StreamCase], encodes: list[EncodeCase], extras: list[tuple[bytes, bytes]],
                 path: Path) -> None:
    """vectors_in.h: the streams to send, the packets to encode one by one and the extra inputs, as C
    constants."""
    lines, rows = ["/* written by acom.firmware_host.wire_c: do not edit */", "#include <stddef.h>",
                   "#include <stdint.h>"], []
    # each priors' tables once, with as many stages as its streams send (the vectors' cases share one)
    stages: dict[int, tuple[object, int]] = {}
    for c in cases:
        if c.priors is not None:
            stages[id(c.priors)] = (c.priors, max([n for n, _ in c.cuts] + [stages.get(id(c.priors), (0, 0))[1]]))
    tables = {key: f"P{k}" for k, key in enumerate(stages)}
    for key, (priors, n_q) in stages.items():
        lines += c_tables(priors, n_q, tables[key])
    for i, c in enumerate(cases):
        lines += [f"static const uint32_t S{i}_SIZES[] = {c_array(c.sizes)};",
                  f"static const uint8_t S{i}_HASH[32] = {c_array(bytes.fromhex(c.codebook_hash))};",
                  f"static const uint16_t S{i}_CODES[] = {c_array(c.codes.ravel())};",
                  f"static const uint8_t S{i}_KEY[] = {c_array(c.key or b'')};",
                  f"static const uint16_t S{i}_CUTS[] = {c_array(np.ravel(c.cuts))};"]
        key = "NULL, 0" if c.key is None else f"S{i}_KEY, {len(c.key)}"
        rows.append(f"{{S{i}_SIZES, S{i}_HASH, S{i}_CODES, {c.codes.shape[1]}, {c.n_q}, {key}, {c.tag_len}, "
                    f"{c.device_id}u, {c.stream_id}u, {c.first_seq}u, {c.frames_per_packet}, {c.full_every}u, "
                    f"{'NULL' if c.priors is None else tables[id(c.priors)]}, S{i}_CUTS, {len(c.cuts)}}}")
    blob, extra_rows, encode_rows = bytearray(), [], []

    def place(data: bytes) -> int:  # where data sits in the blob (bytes already there are shared)
        at = blob.find(data)
        if at < 0:
            at = len(blob)
            blob.extend(data)
        return at

    for msg, key in extras:
        extra_rows.append(f"{{{place(msg)}u, {len(msg)}u, {place(key)}u, {len(key)}u}}")
    for e in sorted(encodes, key=lambda e: -len(e.packet.payload)):  # longest first: shorter ones may be within
        place(e.packet.payload)
    for e in encodes:
        key_at = -1 if e.key is None else place(e.key)
        encode_rows.append(f"{{{_c_packet(e.packet)}, {_c_context(e.context)}, {int(e.context is not None)}, "
                           f"{e.tag_len}, {place(e.packet.payload)}u, {len(e.packet.payload)}u, {key_at}, "
                           f"{len(e.key or b'')}u}}")
    lines += ["typedef struct { const uint32_t *sizes; const uint8_t *hash; const uint16_t *codes; int t; int n_q;",
              "                 const uint8_t *key; size_t key_len; int tag_len; uint32_t device_id;",
              "                 uint16_t stream_id; uint32_t first_seq; int frames_per_packet; uint32_t full_every;",
              "                 const acom_prior *priors; const uint16_t *cuts; int n_cuts; } v_case;",
              f"#define V_NCASES {len(rows)}", f"static const v_case V_CASES[] = {{{', '.join(rows)}}};",
              "typedef struct { acom_packet p; acom_context c; int is_short; int tag_len; uint32_t off, len;",
              "                 int32_t key_off; uint32_t key_len; } v_encode;",
              f"#define V_NENCODE {len(encode_rows)}",
              f"static const v_encode V_ENCODE[] = {{{', '.join(encode_rows)}}};",
              f"#define V_NEXTRA {len(extra_rows)}",
              "static const struct { uint32_t off, len, key_off, key_len; } "
              f"V_EXTRA[] = {{{', '.join(extra_rows)}}};",
              f"static const uint8_t V_BLOB[] = {c_array(blob)};"]
    path.write_text("\n".join(lines) + "\n")


def expected_lines(cases: list[StreamCase], encodes: list[EncodeCase], extras: list[tuple[bytes, bytes]]) -> list[str]:
    """What wire_vectors.c must print: the cases' packets and serial frames, the packets encoded one by one
    (length and bytes, or the error), and for the extra inputs Python's CRC-32C, CRC-16, SHA-256, HMAC and
    COBS."""
    out = []
    for i, c in enumerate(cases):
        for j, (pkt, ser) in enumerate(zip(c.packets, c.serial)):
            out += [f"packet {i} {j} {pkt}", f"serial {i} {j} {ser}"]
    for k, e in enumerate(encodes):
        n, data = e.expected()
        out.append(f"encode {k} {n} {data.hex()}")
    for k, (msg, key) in enumerate(extras):
        n = len(msg)
        out += [f"crc {k} {n} {crc32c(msg).to_bytes(4, 'little').hex()}",
                f"crc16 {k} {n} {crc_hqx(msg, 0xFFFF).to_bytes(2, 'little').hex()}",
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


def _packet_fields(p: Packet) -> bytes:
    return struct.pack("<IHIIQBHHBBB", p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id, p.n_q,
                       p.n_frames, p.frames_per_packet, p.stream_n_q, p.entropy_coded, p.end_of_stream)


def _payload_and_key(p: Packet, key: bytes | None) -> bytes:
    return (struct.pack("<H", len(p.payload)) + p.payload + struct.pack("<BH", key is not None, len(key or b""))
            + (key or b""))


def packet_record(p: Packet, key: bytes | None, tag_len: int) -> bytes:
    """An encode_stdin.c 'P' record: `p` as a full packet (payload and key up to 65535 bytes, fields within
    their C types)."""
    return b"P" + _packet_fields(p) + struct.pack("<B", tag_len) + _payload_and_key(p, key)


def short_record(p: Packet, ctx: StreamContext, key: bytes | None) -> bytes:
    """An encode_stdin.c 'S' record: `p` as a short packet against `ctx`."""
    return (b"S" + _packet_fields(p) + struct.pack("<IHQIIHBBB", ctx.device_id, ctx.stream_id, ctx.codebook_id,
                                                   ctx.seq, ctx.first_frame, ctx.frames_per_packet, ctx.n_q,
                                                   ctx.entropy_coded, ctx.tag_len) + _payload_and_key(p, key))


def encode_record(e: EncodeCase) -> tuple[bytes, str]:
    """The encode_stdin.c record of `e` ('P' full, 'S' short) and the line it must print (Python's)."""
    n, data = e.expected()
    if e.context is None:
        return packet_record(e.packet, e.key, e.tag_len), f"P {n} {data.hex()}"
    return short_record(e.packet, e.context, e.key), f"S {n} {data.hex()}"


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
    cases, ``random_cases()``, ``encode_cases()`` and ``extra_inputs()``."""
    try:
        cases = vector_cases(json.loads(Path(vectors_path).read_text()))
    except (OSError, ValueError) as e:
        raise AcomError(f"{vectors_path}: not a readable vectors file ({e})") from e
    except (KeyError, TypeError) as e:
        raise AcomError(f"{vectors_path}: no field {e} where a wire_v3.json from acom.runtime.vectors has one") from e
    cases += random_cases()
    encodes, extras = encode_cases(), extra_inputs()
    with tempfile.TemporaryDirectory(prefix="acom-wire-c-") as tmp:
        write_inputs(cases, encodes, extras, Path(tmp) / "vectors_in.h")
        got = build_and_run(board, Path(tmp)).splitlines()
    want = expected_lines(cases, encodes, extras)
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
