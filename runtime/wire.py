"""acom wire format v3: packets of RVQ codes, and their serial framing. Spec: docs/wire.md.

Pure functions, no sockets: bytes in, a ``Packet`` or a precise ``WireError`` out. What a stream repeats is said
by its **full** packets (the first, every N-th, the last); the others are **short**:

    full:  header (32 bytes: "AC", version, flags, ids, seq, first frame, codebook, sizes, stream settings)
           | payload | HMAC-SHA256 tag (4, 8 or 16 bytes: a stream setting) or CRC-32C (4 bytes, no key)
    short: 1 byte (short, end, n_q follows, n_frames follows, context) | seq & 0xFF | [n_q] | [n_frames]
           | payload | tag (the stream's length) or CRC-16 (2 bytes, no key)

``Contexts`` keeps, per source, the last full packet of each context (stream id & 15) and rebuilds a short
packet's full header from it: seq extended from its low byte, first frame from seq and the stream's frames per
packet. Tag and check are computed over that rebuilt header (``SIGNED``), so a short packet read with the wrong
context or extended to the wrong seq fails them. Version 2 packets are still read (``wire_v2``). On a serial
line each packet is COBS-encoded and ends with one zero byte. The payload is the codes of ``n_frames`` frames with
``n_q`` stages, bit-packed (fixed length) or range-coded with the bundle's priors.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cobs import cobs
from google_crc32c import value as crc32c

from acom.errors import WireError
from acom.runtime import wire_v2
from acom.runtime.packet import Packet, check_tag, codebook_id, hmac_tag

__all__ = ["Packet", "codebook_id", "Contexts", "StreamContext", "SerialDeframer", "decode_packet", "encode_packet",
           "encode_short", "frame_serial", "make_payload", "pack_codes", "packet_codes", "unpack_codes"]

MAGIC = b"AC"
VERSION = 3
# magic version flags device stream seq first_frame codebook n_q n_frames frames_per_packet stream_n_q
HEADER = struct.Struct("<2sBBIHIIQBHHB")
HEADER_SIZE = HEADER.size  # 32
SIGNED = struct.Struct("<2sBBIHIIQBHHBH")  # the full header + payload length: what tags and checks cover
SHORT = 0x80  # first byte of a short packet: this bit set (a v2 packet starts with 0x41 or 0x61)
SHORT_END = 0x40  # end of stream
SHORT_NQ = 0x20  # a byte n_q follows (else the stream's n_q)
SHORT_NFRAMES = 0x10  # two bytes n_frames follow (else the stream's frames per packet)
SHORT_HEADER = 2  # first byte, seq & 0xFF
CONTEXTS = 16  # contexts per source: a short packet names its stream by stream_id & 15
FLAG_ENTROPY = 0x01  # payload is range-coded with the bundle's priors (else bit-packed)
FLAG_END = 0x02  # last packet of the stream
TAG_SHIFT = 2  # flags bits 2-3: the tag length's code (TAG_SIZES)
FLAG_SHORT = 0x10  # in the rebuilt header of a short packet only, so the tags of the two kinds differ
FULL_FLAGS = 0x0F  # the flags a full packet may carry
TAG_SIZES = (0, 4, 8, 16)  # HMAC-SHA256 truncated to this many bytes (0: no key; a CRC instead)
DEFAULT_TAG = 8
CRC_SIZE = 4  # CRC-32C of an untagged full packet
CHECK_SIZE = 2  # CRC-16/CCITT-FALSE of an untagged short packet
MAX_PACKET = 1400  # fits one UDP datagram on any Ethernet path without fragmentation
MAX_FRAMES = 4096
MAX_STAGES = 255  # n_q is one byte
READS = (2, 3)  # the versions decode_packet reads


@dataclass
class StreamContext:
    """What a stream's full packet tells its short packets (``seq``/``first_frame``: that full packet's);
    ``high_seq``: the highest seq seen, which a short packet's low byte is extended around."""

    device_id: int
    stream_id: int
    codebook_id: int
    seq: int
    first_frame: int
    frames_per_packet: int
    n_q: int  # the stream's usual n_q: a short packet that says none has this many stages
    entropy_coded: bool
    tag_len: int
    high_seq: int

    @classmethod
    def of(cls, p: Packet) -> StreamContext:
        """The context a full packet ``p`` sets."""
        return cls(p.device_id, p.stream_id, p.codebook_id, p.seq, p.first_frame, p.frames_per_packet,
                   p.stream_n_q, p.entropy_coded, p.tag_len, p.seq)

    def implied_first_frame(self, seq: int) -> int:
        """The first frame of packet ``seq`` of this stream when every packet holds ``frames_per_packet``."""
        return self.first_frame + (seq - self.seq) * self.frames_per_packet


def _check_fields(p: Packet, tag_len: int) -> None:
    for name, value, bits in (("device_id", p.device_id, 32), ("stream_id", p.stream_id, 16), ("seq", p.seq, 32),
                              ("first_frame", p.first_frame, 32), ("codebook_id", p.codebook_id, 64)):
        if not 0 <= value < 1 << bits:
            raise WireError(f"{name} {value}: expected 0..{(1 << bits) - 1}", "field")
    for name, value, low, high in (("n_q", p.n_q, 1, MAX_STAGES), ("n_frames", p.n_frames, 0, MAX_FRAMES),
                                   ("frames_per_packet", p.frames_per_packet, 1, MAX_FRAMES),
                                   ("stream_n_q", p.stream_n_q, 1, MAX_STAGES)):
        if not low <= value <= high:
            raise WireError(f"{name} {value}: expected {low}..{high}", "field")
    if tag_len not in TAG_SIZES:
        raise WireError(f"tag length {tag_len}: expected one of {TAG_SIZES}", "field")


def _flags(p: Packet, tag_len: int, short: bool) -> int:
    return ((FLAG_ENTROPY * p.entropy_coded) | (FLAG_END * p.end_of_stream)
            | TAG_SIZES.index(tag_len) << TAG_SHIFT | (FLAG_SHORT * short))


def _signed(p: Packet, flags: int) -> bytes:
    """The full header a packet stands for, with its payload's length, then the payload."""
    return SIGNED.pack(MAGIC, VERSION, flags, p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id, p.n_q,
                       p.n_frames, p.frames_per_packet, p.stream_n_q, len(p.payload)) + p.payload


def _seal(signed: bytes, key: bytes | None, tag_len: int, short: bool) -> bytes:
    """The packet's last bytes: its tag, or without a key its CRC (CRC-32C full, CRC-16 short)."""
    if key is not None:
        return hmac_tag(key, signed, tag_len)
    return struct.pack("<H", crc_hqx(signed, 0xFFFF)) if short else struct.pack("<I", crc32c(signed))


def _check_size(header: int, payload: int, seal: int) -> None:
    if header + payload + seal > MAX_PACKET:
        raise WireError(f"packet of {header + payload + seal} bytes: at most {MAX_PACKET} (send fewer frames per "
                        f"packet)", "size")


def encode_packet(p: Packet, key: bytes | None = None, tag_len: int = DEFAULT_TAG) -> bytes:
    """Full-packet bytes of ``p``: its header says the stream's settings (``p.frames_per_packet``,
    ``p.stream_n_q``); with ``key`` an HMAC tag of ``tag_len`` bytes (4, 8 or 16) ends it, else a CRC-32C."""
    tag_len = tag_len if key is not None else 0
    _check_fields(p, tag_len)
    if key is not None and not tag_len:
        raise WireError("tag length 0 with a key: expected 4, 8 or 16", "field")
    _check_size(HEADER_SIZE, len(p.payload), tag_len or CRC_SIZE)
    flags = _flags(p, tag_len, short=False)
    head = HEADER.pack(MAGIC, VERSION, flags, p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id, p.n_q,
                       p.n_frames, p.frames_per_packet, p.stream_n_q)
    return head + p.payload + _seal(_signed(p, flags), key, tag_len, short=False)


def encode_short(p: Packet, ctx: StreamContext, key: bytes | None = None) -> bytes:
    """Short-packet bytes of ``p``, whose stream's receiver holds ``ctx`` (from the stream's full packets).

    ``p`` must be of that stream (ids, codebook, coding, settings) at the first frame its seq implies;
    ``key`` signs with the stream's tag length."""
    _check_fields(p, ctx.tag_len)
    same = ((p.device_id, p.stream_id, p.codebook_id, p.entropy_coded, p.frames_per_packet, p.stream_n_q)
            == (ctx.device_id, ctx.stream_id, ctx.codebook_id, ctx.entropy_coded, ctx.frames_per_packet, ctx.n_q))
    if not same or p.first_frame != ctx.implied_first_frame(p.seq):
        raise WireError(f"packet seq {p.seq} does not follow its stream's full packet (seq {ctx.seq}): send it "
                        f"as a full packet", "field")
    if (key is None) != (ctx.tag_len == 0):
        raise WireError(f"stream tag length {ctx.tag_len}, key {'missing' if key is None else 'given'}", "field")
    first = (SHORT | SHORT_END * p.end_of_stream | SHORT_NQ * (p.n_q != ctx.n_q)
             | SHORT_NFRAMES * (p.n_frames != ctx.frames_per_packet) | p.stream_id % CONTEXTS)
    head = bytes([first, p.seq & 0xFF])
    if first & SHORT_NQ:
        head += bytes([p.n_q])
    if first & SHORT_NFRAMES:
        head += struct.pack("<H", p.n_frames)
    _check_size(len(head), len(p.payload), ctx.tag_len or CHECK_SIZE)
    signed = _signed(p, _flags(p, ctx.tag_len, short=True))
    return head + p.payload + _seal(signed, key, ctx.tag_len, short=True)


def _verify(signed: bytes, seal: bytes, keys: dict[int, bytes] | None, p: Packet, short: bool) -> Packet:
    """``p`` if ``seal`` (its tag, or its CRC) is right for ``signed`` and its fields are in range."""
    if p.tag_len:
        if keys is None:
            raise WireError(f"device {p.device_id}: packet has a tag and this reader has no keys to check it", "tag")
        check_tag(keys, p.device_id, True, signed, seal)
    else:
        want = crc_hqx(signed, 0xFFFF) if short else crc32c(signed)
        got = int.from_bytes(seal, "little")
        if got != want:
            kind = "CRC-16" if short else "CRC-32C"
            raise WireError(f"{kind} 0x{got:0{len(seal) * 2}x} does not match the packet (0x{want:0{len(seal) * 2}x})",
                            "crc")
        if keys is not None:
            raise WireError(f"device {p.device_id}: packet has no tag and keys are required", "tag")
    if not (1 <= p.n_q and p.n_frames <= MAX_FRAMES and 1 <= p.frames_per_packet <= MAX_FRAMES
            and p.stream_n_q >= 1):
        raise WireError(f"n_q {p.n_q} / n_frames {p.n_frames} / frames per packet {p.frames_per_packet} / stream "
                        f"n_q {p.stream_n_q}: expected n_q >= 1 and frame counts 1..{MAX_FRAMES}", "field")
    return p


def _decode_full(data: bytes, keys: dict[int, bytes] | None) -> Packet:
    (_, _, flags, device, stream, seq, first, book, n_q, n_frames, fpp, stream_n_q) = HEADER.unpack_from(data)
    if flags & ~FULL_FLAGS:
        raise WireError(f"flags 0x{flags:02x}: unknown bits 0x{flags & ~FULL_FLAGS:02x}", "flags")
    tag_len = TAG_SIZES[flags >> TAG_SHIFT & 3]
    seal_len = tag_len or CRC_SIZE
    length = len(data) - HEADER_SIZE - seal_len
    if length < 0:
        raise WireError(f"packet of {len(data)} bytes: shorter than header + tag ({HEADER_SIZE + seal_len})", "length")
    p = Packet(device, stream, seq, first, book, n_q, n_frames, data[HEADER_SIZE: HEADER_SIZE + length],
               bool(flags & FLAG_ENTROPY), bool(flags & FLAG_END), tag_len > 0, False, fpp, tag_len,
               stream_n_q=stream_n_q)
    return _verify(_signed(p, flags), data[HEADER_SIZE + length:], keys, p, short=False)


SEQ_BEHIND = 32  # a short packet's seq is taken within [highest seen - 32, highest seen + 223]


def _extend8(ref: int, low: int) -> int:
    """The value whose low 8 bits are ``low`` in [``ref`` - 32, ``ref`` + 223] (not negative): up to 222
    packets may be lost in a row, and a packet may arrive 32 packets late (the server's reorder window)."""
    value = ref + ((low - ref + SEQ_BEHIND) & 0xFF) - SEQ_BEHIND
    return value if value >= 0 else value + 0x100


def _decode_short(data: bytes, c: StreamContext | None, keys: dict[int, bytes] | None) -> Packet:
    first = data[0]
    if c is None:
        raise WireError(f"short packet for context {first % CONTEXTS}: no full packet of that stream from this "
                        f"source yet (it repeats every few packets)", "context")
    pos, n_q, n_frames = SHORT_HEADER, c.n_q, c.frames_per_packet
    if first & SHORT_NQ:
        n_q, pos = data[pos] if len(data) > pos else 0, pos + 1
    if first & SHORT_NFRAMES:
        n_frames, pos = int.from_bytes(data[pos: pos + 2], "little"), pos + 2
    seal_len = c.tag_len or CHECK_SIZE
    length = len(data) - pos - seal_len
    if length < 0:
        raise WireError(f"short packet of {len(data)} bytes: shorter than its header + tag ({pos + seal_len})",
                        "length")
    seq = _extend8(c.high_seq, data[1])
    first_frame = c.implied_first_frame(seq)
    if not (0 <= first_frame < 1 << 32 and seq < 1 << 32):
        raise WireError(f"short packet seq {seq}: outside its stream (first frame {first_frame})", "field")
    p = Packet(c.device_id, c.stream_id, seq, first_frame, c.codebook_id, n_q, n_frames, data[pos: pos + length],
               c.entropy_coded, bool(first & SHORT_END), c.tag_len > 0, True, c.frames_per_packet, c.tag_len,
               stream_n_q=c.n_q)
    flags = _flags(p, c.tag_len, short=True)
    return _verify(_signed(p, flags), data[pos + length:], keys, p, short=True)


class Contexts:
    """The stream contexts of one source (a UDP address, a serial line): per (version, context number), what
    the last full packet of that stream said. At most 16 v3 and 256 v2 entries."""

    def __init__(self) -> None:
        self._by: dict[tuple[int, int], object] = {}

    def learn(self, p: Packet) -> None:
        """Remember a checked packet's stream (a full packet sets it, a short one moves its highest seq on)."""
        if p.version == 2:
            wire_v2.learn_v2(self._by, p)
            return
        c = self._by.get(p.context)
        if p.compact:
            c.high_seq = max(c.high_seq, p.seq)
        else:  # the latest full packet of the stream; the highest seq carries over within the same stream
            new = self._by[p.context] = StreamContext.of(p)
            if c is not None and (c.device_id, c.stream_id, c.codebook_id) == (p.device_id, p.stream_id, p.codebook_id):
                new.high_seq = max(c.high_seq, p.seq)

    def expand(self, data: bytes, keys: dict[int, bytes] | None = None) -> Packet:
        """A short (v3) or compact (v2) packet, checked against the full header it stands for."""
        if data[0] & SHORT:
            p = _decode_short(data, self._by.get((VERSION, data[0] % CONTEXTS)), keys)
        else:
            p = wire_v2.expand_v2_compact(data, self._by, keys)
        self.learn(p)
        return p


def context_of(data: bytes) -> tuple[int, int]:
    """(version, context number) of a short or compact packet's bytes (as ``Packet.context``)."""
    return (VERSION, data[0] % CONTEXTS) if data[0] & SHORT else (2, wire_v2.compact_context(data))


def decode_packet(data: bytes, keys: dict[int, bytes] | None = None, contexts: Contexts | None = None) -> Packet:
    """Parse and check one packet (v3, or v2). With ``keys`` (device id -> key) every packet must carry a valid
    tag. A short or compact packet needs ``contexts`` (its source's), which each packet that passes updates.

    Raises:
        WireError: with ``reason`` one of size, magic, version, flags, length, crc, tag, field, context.
    """
    data = bytes(data)
    if len(data) > MAX_PACKET:
        raise WireError(f"packet of {len(data)} bytes: at most {MAX_PACKET}", "size")
    if data[:1] and (data[0] & SHORT or data[0] == wire_v2.COMPACT_MAGIC):
        if contexts is None:
            raise WireError("short packet, but this reader keeps no stream contexts", "context")
        if len(data) < SHORT_HEADER + CHECK_SIZE or (data[0] == wire_v2.COMPACT_MAGIC and len(data) < 3):
            raise WireError(f"short packet of {len(data)} bytes: shorter than header + check "
                            f"({SHORT_HEADER + CHECK_SIZE})", "size")
        return contexts.expand(data, keys)
    if len(data) < HEADER_SIZE + CRC_SIZE - 1:  # v2's 31 + 4, v3's 32 + 4 (a 4-byte tag or the CRC) less a byte
        raise WireError(f"packet of {len(data)} bytes: shorter than any full packet ({HEADER_SIZE + CRC_SIZE - 1})",
                        "size")
    if data[:2] != MAGIC:
        raise WireError(f"magic {data[:2].hex()}: expected {MAGIC.hex()} ('AC'), a short packet (first bit set) "
                        f"or {wire_v2.COMPACT_MAGIC:02x} (v2 compact)", "magic")
    if data[2] not in READS:
        raise WireError(f"protocol version {data[2]}: this server reads {' and '.join(map(str, READS))}", "version")
    p = _decode_full(data, keys) if data[2] == VERSION else wire_v2.decode_v2_full(data, keys)
    if contexts is not None:
        contexts.learn(p)
    return p


def _bits(codebook_sizes: Sequence[int]) -> list[int]:
    return [(int(k) - 1).bit_length() for k in codebook_sizes]


def pack_codes(codes: np.ndarray, codebook_sizes: Sequence[int]) -> bytes:
    """Bit-pack codes ``[n_q, T]``: frame by frame, stage by stage, ceil(log2 K_s) bits each, LSB first."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] > len(codebook_sizes):
        raise WireError(f"codes of shape {codes.shape}: expected [n_q <= {len(codebook_sizes)}, T]", "field")
    bits = _bits(codebook_sizes)[: codes.shape[0]]
    if codes.size and (codes.min() < 0 or any(codes[s].max() >= codebook_sizes[s] for s in range(codes.shape[0]))):
        raise WireError(f"codes outside 0..K-1 for K = {list(codebook_sizes[: codes.shape[0]])}", "field")
    acc, n, out = 0, 0, bytearray()
    for t in range(codes.shape[1]):
        for s, b in enumerate(bits):
            acc |= int(codes[s, t]) << n
            n += b
            while n >= 8:
                out.append(acc & 0xFF)
                acc, n = acc >> 8, n - 8
    if n:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_codes(payload: bytes, codebook_sizes: Sequence[int], n_q: int, n_frames: int) -> np.ndarray:
    """Inverse of ``pack_codes`` -> int64 ``[n_q, n_frames]``; WireError if the length or a code is wrong."""
    if not 1 <= n_q <= len(codebook_sizes):
        raise WireError(f"n_q {n_q}: this codebook has 1..{len(codebook_sizes)} stages", "field")
    bits = _bits(codebook_sizes)[:n_q]
    need = (sum(bits) * n_frames + 7) // 8
    if len(payload) != need:
        raise WireError(f"payload of {len(payload)} bytes: {n_frames} frames x {n_q} stages need {need}", "length")
    value = int.from_bytes(payload, "little")
    out = np.empty((n_q, n_frames), dtype=np.int64)
    pos = 0
    for t in range(n_frames):
        for s, b in enumerate(bits):
            out[s, t] = (value >> pos) & ((1 << b) - 1)
            pos += b
    bad = [s for s in range(n_q) if n_frames and out[s].max() >= codebook_sizes[s]]
    if bad:
        raise WireError(f"stage {bad[0]} has a code >= K = {codebook_sizes[bad[0]]}", "field")
    return out


def frame_serial(packet: bytes) -> bytes:
    """A packet as it goes on a serial line: COBS-encoded, then one zero byte."""
    return cobs.encode(packet) + b"\x00"


class SerialDeframer:
    """Splits a serial byte stream into packets at zero bytes; survives garbage, cut and oversized frames.

    ``feed(data)`` returns, in order, a ``Packet`` or a ``WireError`` for each complete frame (with
    ``decode=False``: the packet's bytes, for a caller that decodes them itself). A frame longer than the
    largest encoded packet is dropped as it arrives (bounded memory), reported once at its end.
    """

    MAX_FRAME = MAX_PACKET + MAX_PACKET // 254 + 2

    def __init__(self, keys: dict[int, bytes] | None = None, decode: bool = True) -> None:
        self.keys, self.decode, self._buf, self._overflow = keys, decode, bytearray(), False
        self.contexts = Contexts()  # a serial line is one source

    def feed(self, data: bytes) -> list[Packet | WireError | bytes]:
        out: list[Packet | WireError | bytes] = []
        parts = bytes(data).split(b"\x00")
        for part in parts[:-1]:  # each ends at a delimiter: a complete frame
            if self._overflow or len(self._buf) + len(part) > self.MAX_FRAME:
                out.append(WireError(f"serial frame longer than {self.MAX_FRAME} bytes: dropped", "size"))
            elif self._buf or part:  # back-to-back delimiters carry nothing
                out.append(self._frame(bytes(self._buf) + part))
            self._buf.clear()
            self._overflow = False
        self._buf += parts[-1]
        if len(self._buf) > self.MAX_FRAME:  # keep memory bounded while the delimiter is awaited
            self._buf.clear()
            self._overflow = True
        return out

    def _frame(self, raw: bytes) -> Packet | WireError | bytes:
        try:
            data = cobs.decode(raw)
            return decode_packet(data, self.keys, self.contexts) if self.decode else data
        except cobs.DecodeError as e:
            return WireError(f"serial frame of {len(raw)} bytes is not valid COBS ({e})", "framing")
        except WireError as e:
            return e


def make_payload(codes: np.ndarray, codebook_sizes: Sequence[int], priors=None) -> tuple[bytes, bool]:
    """(payload, entropy_coded) for codes ``[n_q, T]``: range-coded with ``priors`` (a ``CodePriors``) when
    given, else bit-packed."""
    if priors is None:
        return pack_codes(codes, codebook_sizes), False
    from acom.codes.priors import encode_codes
    return encode_codes(np.asarray(codes), priors), True


def packet_codes(p: Packet, codebook_sizes: Sequence[int], priors=None) -> np.ndarray:
    """Codes ``[n_q, n_frames]`` of a packet; an entropy-coded one needs the bundle's ``priors``."""
    if not p.entropy_coded:
        return unpack_codes(p.payload, codebook_sizes, p.n_q, p.n_frames)
    if priors is None:
        raise WireError("entropy-coded packet, but no priors are loaded for its codebook", "payload")
    if p.n_q > priors.n_q:
        raise WireError(f"n_q {p.n_q}: the priors hold {priors.n_q} stages", "field")
    from acom.codes.priors import decode_codes
    from acom.errors import AcomError
    try:
        return decode_codes(p.payload, priors, p.n_q, p.n_frames)
    except AcomError as e:  # range coding has no redundancy: some damage decodes, some raises
        raise WireError(f"entropy-coded payload does not decode: {e}", "payload") from e
