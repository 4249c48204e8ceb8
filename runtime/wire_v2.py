"""Wire format version 2, which servers still read (devices send version 3). Spec: docs/wire.md, "Version 2".

    full:    header (31 bytes) | payload | [HMAC-SHA256 tag, 16 bytes] | CRC-32C (4 bytes)
    compact: header (9 bytes)  | payload | [tag, 16 bytes]               | CRC-32C (4 bytes)

A compact packet is rebuilt from its stream's last full packet from the same source (``V2Context``); tag and
CRC cover the rebuilt full header. ``encode_v2`` writes these packets for tests and for old vectors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google_crc32c import value as crc32c

from acom.errors import WireError
from acom.runtime.packet import Packet, check_tag, hmac_tag

VERSION = 2
MAGIC = b"AC"
HEADER = struct.Struct("<2sBBIHIIQBHH")  # magic version flags device stream seq first_frame codebook n_q frames len
HEADER_SIZE = HEADER.size  # 31
COMPACT_MAGIC = 0x61  # "a"
COMPACT = struct.Struct("<BBBHHH")  # magic, version << 4 | flags, context, seq & 0xFFFF, first_frame & 0xFFFF,
COMPACT_SIZE = COMPACT.size  # 9                                                         n_q << 12 | n_frames
TAG_SIZE = 16
CRC_SIZE = 4
MAX_FRAMES = 4096
FLAG_ENTROPY, FLAG_END, FLAG_TAG, FLAG_COMPACT = 0x01, 0x02, 0x04, 0x08
FULL_FLAGS = FLAG_ENTROPY | FLAG_END | FLAG_TAG


@dataclass
class V2Context:
    """What a v2 full packet tells its stream's compact packets; ``seq``/``first_frame``: the highest seen."""

    device_id: int
    stream_id: int
    codebook_id: int
    seq: int
    first_frame: int


def _extend16(ref: int, low: int) -> int:
    """The value whose low 16 bits are ``low`` nearest to ``ref`` (not negative)."""
    value = ref + ((low - ref + 0x8000) & 0xFFFF) - 0x8000
    return value if value >= 0 else value + 0x10000


def _full_header(flags: int, p: Packet, seq: int, first: int, length: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, flags, p.device_id, p.stream_id, seq, first, p.codebook_id, p.n_q,
                       p.n_frames, length)


def encode_v2(p: Packet, key: bytes | None = None, compact: bool = False) -> bytes:
    """Version 2 bytes of ``p`` (fields already in range): full, or compact (n_q <= 15, n_frames <= 4095)."""
    flags = ((FLAG_ENTROPY * p.entropy_coded) | (FLAG_END * p.end_of_stream) | (FLAG_TAG * (key is not None))
             | (FLAG_COMPACT * compact))
    signed = _full_header(flags, p, p.seq, p.first_frame, len(p.payload)) + p.payload
    tag = b"" if key is None else hmac_tag(key, signed, TAG_SIZE)
    crc = struct.pack("<I", crc32c(signed + tag))
    if not compact:
        return signed + tag + crc
    head = COMPACT.pack(COMPACT_MAGIC, VERSION << 4 | flags, p.stream_id & 0xFF, p.seq & 0xFFFF,
                        p.first_frame & 0xFFFF, p.n_q << 12 | p.n_frames)
    return head + p.payload + tag + crc


def _checked(signed: bytes, tag: bytes, crc: bytes, keys: dict[int, bytes] | None, p: Packet) -> Packet:
    want = struct.unpack("<I", crc)[0]
    if crc32c(signed + tag) != want:
        raise WireError(f"CRC-32C 0x{want:08x} does not match the packet (0x{crc32c(signed + tag):08x})", "crc")
    if p.n_q == 0 or p.n_frames > MAX_FRAMES:
        raise WireError(f"n_q {p.n_q} / n_frames {p.n_frames}: expected n_q >= 1 and n_frames <= {MAX_FRAMES}",
                        "field")
    if keys is not None:
        check_tag(keys, p.device_id, p.tagged, signed, tag)
    return p


def decode_v2_full(data: bytes, keys: dict[int, bytes] | None) -> Packet:
    """A v2 full packet (magic and version already seen)."""
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise WireError(f"packet of {len(data)} bytes: shorter than header + CRC ({HEADER_SIZE + CRC_SIZE})", "size")
    (_, _, flags, device, stream, seq, first, book, n_q, n_frames, length) = HEADER.unpack_from(data)
    if flags & ~FULL_FLAGS:
        raise WireError(f"flags 0x{flags:02x}: unknown bits 0x{flags & ~FULL_FLAGS:02x}", "flags")
    tagged = bool(flags & FLAG_TAG)
    expected = HEADER_SIZE + length + TAG_SIZE * tagged + CRC_SIZE
    if len(data) != expected:
        raise WireError(f"packet of {len(data)} bytes: header says {expected} (payload {length})", "length")
    return _checked(data[:HEADER_SIZE + length], data[HEADER_SIZE + length:-CRC_SIZE], data[-CRC_SIZE:], keys,
                    Packet(device, stream, seq, first, book, n_q, n_frames, data[HEADER_SIZE: HEADER_SIZE + length],
                           bool(flags & FLAG_ENTROPY), bool(flags & FLAG_END), tagged, tag_len=TAG_SIZE * tagged,
                           version=VERSION))


def compact_context(data: bytes) -> int:
    """The context byte of a v2 compact packet (at least 3 bytes long)."""
    return data[2]


def expand_v2_compact(data: bytes, contexts: dict, keys: dict[int, bytes] | None) -> Packet:
    """A v2 compact packet, rebuilt from ``contexts[(2, context byte)]`` (a ``V2Context``) and checked."""
    if len(data) < COMPACT_SIZE + CRC_SIZE:
        raise WireError(f"compact packet of {len(data)} bytes: shorter than header + CRC "
                        f"({COMPACT_SIZE + CRC_SIZE})", "size")
    _, vf, ctx, seq_low, first_low, sizes = COMPACT.unpack_from(data)
    if vf >> 4 != VERSION:
        raise WireError(f"protocol version {vf >> 4}: a compact packet is version {VERSION}", "version")
    flags = vf & 0x0F
    if not flags & FLAG_COMPACT:
        raise WireError(f"flags 0x{flags:02x}: a compact packet must set 0x{FLAG_COMPACT:02x}", "flags")
    c = contexts.get((VERSION, ctx))
    if c is None:
        raise WireError(f"compact packet for context {ctx}: no full packet of that stream from this source "
                        f"yet (it repeats every few packets)", "context")
    tagged = bool(flags & FLAG_TAG)
    length = len(data) - COMPACT_SIZE - TAG_SIZE * tagged - CRC_SIZE
    if length < 0:
        raise WireError(f"compact packet of {len(data)} bytes: too short for its tag", "length")
    seq, first = _extend16(c.seq, seq_low), _extend16(c.first_frame, first_low)
    if seq >= 1 << 32 or first >= 1 << 32:
        raise WireError(f"compact packet: seq {seq} / first frame {first} extended past 32 bits", "field")
    p = Packet(c.device_id, c.stream_id, seq, first, c.codebook_id, sizes >> 12, sizes & 0x0FFF,
               data[COMPACT_SIZE: COMPACT_SIZE + length], bool(flags & FLAG_ENTROPY), bool(flags & FLAG_END),
               tagged, compact=True, tag_len=TAG_SIZE * tagged, version=VERSION)
    signed = _full_header(flags, p, seq, first, length) + p.payload
    return _checked(signed, data[COMPACT_SIZE + length:-CRC_SIZE], data[-CRC_SIZE:], keys, p)


def learn_v2(contexts: dict, p: Packet) -> None:
    """Remember a checked v2 packet's stream: its full header serves that stream's compact packets."""
    c = contexts.get(p.context)
    if c is None or (c.device_id, c.stream_id, c.codebook_id) != (p.device_id, p.stream_id, p.codebook_id):
        contexts[p.context] = V2Context(p.device_id, p.stream_id, p.codebook_id, p.seq, p.first_frame)
    else:
        c.seq, c.first_frame = max(c.seq, p.seq), max(c.first_frame, p.first_frame)
