"""acom wire format v2: packets of RVQ codes, and their serial framing. Spec: docs/wire.md.

Pure functions, no sockets: bytes in, a ``Packet`` or a precise ``WireError`` out. A packet is

    full:    header (31 bytes, little-endian) | payload | [HMAC-SHA256 tag, 16 bytes] | CRC-32C (4 bytes)
    compact: header (9 bytes)                 | payload | [tag, 16 bytes]               | CRC-32C (4 bytes)

A compact packet leaves out what its stream's last full packet from the same source already said (device,
stream, codebook) and sends the low 16 bits of seq and first frame; ``Contexts`` holds those full headers and
rebuilds the full one. Tag and CRC are computed over the rebuilt full header, so a compact packet matched to
the wrong context or extended to the wrong seq fails its CRC. On a serial line each packet is COBS-encoded and
ends with one zero byte, so a reader resynchronizes at the next zero after garbage. The payload is the codes of
``n_frames`` frames with ``n_q`` stages, bit-packed (fixed length) or range-coded with the bundle's priors.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cobs import cobs
from google_crc32c import value as crc32c

from acom.errors import WireError

MAGIC = b"AC"
VERSION = 2
HEADER = struct.Struct("<2sBBIHIIQBHH")  # magic version flags device stream seq first_frame codebook n_q frames len
HEADER_SIZE = HEADER.size  # 31
COMPACT_MAGIC = 0x61  # "a"
COMPACT = struct.Struct("<BBBHHH")  # magic, version << 4 | flags, context, seq & 0xFFFF, first_frame & 0xFFFF,
COMPACT_SIZE = COMPACT.size  # 9                                                         n_q << 12 | n_frames
TAG_SIZE = 16  # HMAC-SHA256 truncated to 128 bits
CRC_SIZE = 4
MAX_PACKET = 1400  # fits one UDP datagram on any Ethernet path without fragmentation
MAX_FRAMES = 4096
MAX_STAGES = 255  # n_q is one byte of the full header (a compact packet holds 15)

FLAG_ENTROPY = 0x01  # payload is range-coded with the bundle's priors (else bit-packed)
FLAG_END = 0x02  # last packet of the stream
FLAG_TAG = 0x04  # an HMAC tag precedes the CRC
FLAG_COMPACT = 0x08  # sent as a compact packet (set in the rebuilt full header too, so tags of the two differ)
FULL_FLAGS = FLAG_ENTROPY | FLAG_END | FLAG_TAG  # the flags a full packet may carry


@dataclass(frozen=True)
class Packet:
    """One parsed packet. ``codebook_id``: the first 8 bytes of the bundle's codebook hash, as an int."""

    device_id: int
    stream_id: int
    seq: int
    first_frame: int  # index of the packet's first frame in the stream: its timestamp in frames
    codebook_id: int
    n_q: int
    n_frames: int
    payload: bytes
    entropy_coded: bool = False
    end_of_stream: bool = False
    tagged: bool = False
    compact: bool = False  # arrived as a compact packet (its header rebuilt from its stream's context)


def codebook_id(codebook_hash: str) -> int:
    """The 64-bit id packets carry for a bundle: the first 8 bytes of its codebook hash (hex SHA-256)."""
    try:
        raw = bytes.fromhex(codebook_hash)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise WireError(f"codebook hash {codebook_hash!r}: expected 64 hex digits (a SHA-256)", "codebook")
    return int.from_bytes(raw[:8], "little")


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:TAG_SIZE]


def encode_packet(p: Packet, key: bytes | None = None, compact: bool = False) -> bytes:
    """Packet bytes of ``p`` (with an HMAC tag when ``key`` is given); ``compact``: the 9-byte header, which
    the receiver expands with the last full packet of the stream (n_q <= 15, n_frames <= 4095)."""
    for name, value, bits in (("device_id", p.device_id, 32), ("stream_id", p.stream_id, 16), ("seq", p.seq, 32),
                              ("first_frame", p.first_frame, 32), ("codebook_id", p.codebook_id, 64)):
        if not 0 <= value < 1 << bits:
            raise WireError(f"{name} {value}: expected 0..{(1 << bits) - 1}", "field")
    if not 1 <= p.n_q <= (15 if compact else MAX_STAGES):
        raise WireError(f"n_q {p.n_q}: expected 1..{15 if compact else MAX_STAGES}" + " in a compact packet" * compact,
                        "field")
    if not 0 <= p.n_frames <= (MAX_FRAMES - compact):
        raise WireError(f"n_frames {p.n_frames}: expected 0..{MAX_FRAMES - compact}", "field")
    flags = ((FLAG_ENTROPY * p.entropy_coded) | (FLAG_END * p.end_of_stream) | (FLAG_TAG * (key is not None))
             | (FLAG_COMPACT * compact))
    signed = _full_header(flags, p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id, p.n_q, p.n_frames,
                          len(p.payload)) + p.payload
    tag = b"" if key is None else _tag(key, signed)
    crc = struct.pack("<I", crc32c(signed + tag))
    if compact:
        head = COMPACT.pack(COMPACT_MAGIC, VERSION << 4 | flags, p.stream_id & 0xFF, p.seq & 0xFFFF,
                            p.first_frame & 0xFFFF, p.n_q << 12 | p.n_frames)
        data = head + p.payload + tag + crc
    else:
        data = signed + tag + crc
    if len(data) > MAX_PACKET:
        raise WireError(f"packet of {len(data)} bytes: at most {MAX_PACKET} (send fewer frames per packet)", "size")
    return data


def _full_header(flags: int, device: int, stream: int, seq: int, first: int, book: int, n_q: int, n_frames: int,
                 length: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, flags, device, stream, seq, first, book, n_q, n_frames, length)


def decode_packet(data: bytes, keys: dict[int, bytes] | None = None, contexts: Contexts | None = None) -> Packet:
    """Parse and check one packet. With ``keys`` (device id -> key) every packet must carry a valid tag. A
    compact packet needs ``contexts`` (its source's ``Contexts``), which each full packet that passes updates.

    Raises:
        WireError: with ``reason`` one of size, magic, version, flags, length, crc, tag, field, context.
    """
    data = bytes(data)
    if len(data) > MAX_PACKET:
        raise WireError(f"packet of {len(data)} bytes: at most {MAX_PACKET}", "size")
    if data[:1] == bytes([COMPACT_MAGIC]):
        if contexts is None:
            raise WireError("compact packet, but this reader keeps no stream contexts", "context")
        return contexts.expand(data, keys)
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise WireError(f"packet of {len(data)} bytes: shorter than header + CRC ({HEADER_SIZE + CRC_SIZE})", "size")
    if data[:2] != MAGIC:
        raise WireError(f"magic {data[:2].hex()}: expected {MAGIC.hex()} ('AC') or {COMPACT_MAGIC:02x} ('a')",
                        "magic")
    (_, version, flags, device, stream, seq, first, book, n_q, n_frames, length) = HEADER.unpack_from(data)
    if version != VERSION:
        raise WireError(f"protocol version {version}: this server speaks {VERSION}", "version")
    if flags & ~FULL_FLAGS:
        raise WireError(f"flags 0x{flags:02x}: unknown bits 0x{flags & ~FULL_FLAGS:02x}", "flags")
    tagged = bool(flags & FLAG_TAG)
    expected = HEADER_SIZE + length + TAG_SIZE * tagged + CRC_SIZE
    if len(data) != expected:
        raise WireError(f"packet of {len(data)} bytes: header says {expected} (payload {length})", "length")
    p = _checked(data[:HEADER_SIZE + length], data[HEADER_SIZE + length:-CRC_SIZE], data[-CRC_SIZE:], keys,
                 Packet(device, stream, seq, first, book, n_q, n_frames, data[HEADER_SIZE: HEADER_SIZE + length],
                        bool(flags & FLAG_ENTROPY), bool(flags & FLAG_END), tagged))
    if contexts is not None:
        contexts.learn(p)
    return p


def _checked(signed: bytes, tag: bytes, crc: bytes, keys: dict[int, bytes] | None, p: Packet) -> Packet:
    """``p`` if the CRC of ``signed + tag`` is ``crc``, its fields are in range and (with keys) its tag is
    right; ``signed``: the full header and payload, as the sender computed tag and CRC over them."""
    want = struct.unpack("<I", crc)[0]
    if crc32c(signed + tag) != want:
        raise WireError(f"CRC-32C 0x{want:08x} does not match the packet (0x{crc32c(signed + tag):08x})", "crc")
    if p.n_q == 0 or p.n_frames > MAX_FRAMES:
        raise WireError(f"n_q {p.n_q} / n_frames {p.n_frames}: expected n_q >= 1 and n_frames <= {MAX_FRAMES}",
                        "field")
    if keys is not None:
        key = keys.get(p.device_id)
        if key is None:
            raise WireError(f"device {p.device_id} has no key", "tag")
        if not p.tagged:
            raise WireError(f"device {p.device_id}: packet has no tag and keys are required", "tag")
        if not hmac.compare_digest(_tag(key, signed), tag):
            raise WireError(f"device {p.device_id}: HMAC tag does not match", "tag")
    return p


@dataclass
class _Context:
    device_id: int
    stream_id: int
    codebook_id: int
    seq: int  # the highest seq and first frame seen: what 16-bit values are extended around
    first_frame: int


def _extend(ref: int, low: int) -> int:
    """The value whose low 16 bits are ``low`` nearest to ``ref`` (not negative)."""
    value = ref + ((low - ref + 0x8000) & 0xFFFF) - 0x8000
    return value if value >= 0 else value + 0x10000


class Contexts:
    """Compact-packet contexts of one source (a UDP address, a serial line): per context byte (the low byte
    of the stream id), the last full header that passed its checks. At most 256 entries."""

    def __init__(self) -> None:
        self._by_byte: dict[int, _Context] = {}

    def learn(self, p: Packet) -> None:
        """Remember ``p``'s stream (a checked packet): its full header serves that stream's compact packets."""
        c = self._by_byte.get(p.stream_id & 0xFF)
        if c is None or (c.device_id, c.stream_id, c.codebook_id) != (p.device_id, p.stream_id, p.codebook_id):
            self._by_byte[p.stream_id & 0xFF] = _Context(p.device_id, p.stream_id, p.codebook_id, p.seq, p.first_frame)
        else:
            c.seq, c.first_frame = max(c.seq, p.seq), max(c.first_frame, p.first_frame)

    def expand(self, data: bytes, keys: dict[int, bytes] | None = None) -> Packet:
        """A compact packet, checked against the full header it stands for."""
        if len(data) < COMPACT_SIZE + CRC_SIZE:
            raise WireError(f"compact packet of {len(data)} bytes: shorter than header + CRC "
                            f"({COMPACT_SIZE + CRC_SIZE})", "size")
        _, vf, ctx, seq_low, first_low, sizes = COMPACT.unpack_from(data)
        if vf >> 4 != VERSION:
            raise WireError(f"protocol version {vf >> 4}: this server speaks {VERSION}", "version")
        flags = vf & 0x0F
        if not flags & FLAG_COMPACT:
            raise WireError(f"flags 0x{flags:02x}: a compact packet must set 0x{FLAG_COMPACT:02x}", "flags")
        c = self._by_byte.get(ctx)
        if c is None:
            raise WireError(f"compact packet for context {ctx}: no full packet of that stream from this source "
                            f"yet (it repeats every few packets)", "context")
        tagged = bool(flags & FLAG_TAG)
        length = len(data) - COMPACT_SIZE - TAG_SIZE * tagged - CRC_SIZE
        if length < 0:
            raise WireError(f"compact packet of {len(data)} bytes: too short for its tag", "length")
        seq, first = _extend(c.seq, seq_low), _extend(c.first_frame, first_low)
        n_q, n_frames = sizes >> 12, sizes & 0x0FFF
        payload = data[COMPACT_SIZE: COMPACT_SIZE + length]
        signed = _full_header(flags, c.device_id, c.stream_id, seq, first, c.codebook_id, n_q, n_frames,
                              length) + payload
        p = _checked(signed, data[COMPACT_SIZE + length:-CRC_SIZE], data[-CRC_SIZE:], keys,
                     Packet(c.device_id, c.stream_id, seq, first, c.codebook_id, n_q, n_frames, payload,
                            bool(flags & FLAG_ENTROPY), bool(flags & FLAG_END), tagged, compact=True))
        self.learn(p)  # same stream: moves the highest seq and first frame on
        return p


class SourceContexts:
    """``Contexts`` per source (a UDP address; ``("serial", url)``), the least recently heard dropped beyond
    ``max_sources``, and compact packets **held** while their context is missing: a full packet of their stream
    from the same source (a later one, or the one they overtook) releases them. At most ``max_held`` held."""

    def __init__(self, max_sources: int = 10000, max_held: int = 4096) -> None:
        self.max_sources, self.max_held = max_sources, max_held
        self._by_source: OrderedDict = OrderedDict()
        self._held: list[tuple[float, object, int, bytes]] = []  # (arrival, source, context byte, packet), in order

    def get(self, source) -> Contexts:
        c = self._by_source.get(source)
        if c is None:
            c = self._by_source[source] = Contexts()
            if len(self._by_source) > self.max_sources:
                self._by_source.popitem(last=False)
        else:
            self._by_source.move_to_end(source)
        return c

    def hold(self, source, data: bytes, now: float) -> int:
        """Keep a compact packet whose context is missing; returns how many old ones were pushed out (lost)."""
        self._held.append((now, source, data[2], data))
        over = max(0, len(self._held) - self.max_held)
        del self._held[:over]
        return over

    def release(self, source, context: int) -> list[bytes]:
        """The held packets of ``source`` for this context byte, oldest first (a full packet just set it)."""
        out = [h[3] for h in self._held if h[1] == source and h[2] == context]
        if out:
            self._held = [h for h in self._held if not (h[1] == source and h[2] == context)]
        return out

    def expire(self, now: float, timeout: float) -> int:
        """Forget packets held ``timeout`` seconds or more (all of them when ``timeout`` is 0); returns how many."""
        gone = 0  # held in arrival order: the expired ones are a prefix (called every tick, usually empty)
        while gone < len(self._held) and (not timeout or now - self._held[gone][0] >= timeout):
            gone += 1
        del self._held[:gone]
        return gone


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
