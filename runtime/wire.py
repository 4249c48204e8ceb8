"""acom wire format v1: packets of RVQ codes, and their serial framing. Spec: docs/wire.md.

Pure functions, no sockets: bytes in, a ``Packet`` or a precise ``WireError`` out. A packet is

    header (31 bytes, little-endian) | payload | [HMAC-SHA256 tag, 16 bytes] | CRC-32C (4 bytes)

and on a serial line each packet is COBS-encoded and ends with one zero byte, so a reader resynchronizes at
the next zero after garbage. The payload is the codes of ``n_frames`` frames with ``n_q`` stages, bit-packed
(fixed length) or range-coded with the bundle's priors (``FLAG_ENTROPY``).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cobs import cobs
from google_crc32c import value as crc32c

from acom.errors import WireError

MAGIC = b"AC"
VERSION = 1
HEADER = struct.Struct("<2sBBIHIIQBHH")  # magic version flags device stream seq first_frame codebook n_q frames len
HEADER_SIZE = HEADER.size  # 31
TAG_SIZE = 16  # HMAC-SHA256 truncated to 128 bits
CRC_SIZE = 4
MAX_PACKET = 1400  # fits one UDP datagram on any Ethernet path without fragmentation
MAX_FRAMES = 4096

FLAG_ENTROPY = 0x01  # payload is range-coded with the bundle's priors (else bit-packed)
FLAG_END = 0x02  # last packet of the stream
FLAG_TAG = 0x04  # an HMAC tag precedes the CRC
KNOWN_FLAGS = FLAG_ENTROPY | FLAG_END | FLAG_TAG


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


def encode_packet(p: Packet, key: bytes | None = None) -> bytes:
    """Packet bytes of ``p`` (with an HMAC tag when ``key`` is given)."""
    for name, value, bits in (("device_id", p.device_id, 32), ("stream_id", p.stream_id, 16), ("seq", p.seq, 32),
                              ("first_frame", p.first_frame, 32), ("codebook_id", p.codebook_id, 64)):
        if not 0 <= value < 1 << bits:
            raise WireError(f"{name} {value}: expected 0..{(1 << bits) - 1}", "field")
    if not 1 <= p.n_q <= 255:
        raise WireError(f"n_q {p.n_q}: expected 1..255", "field")
    if not 0 <= p.n_frames <= MAX_FRAMES:
        raise WireError(f"n_frames {p.n_frames}: expected 0..{MAX_FRAMES}", "field")
    flags = (FLAG_ENTROPY * p.entropy_coded) | (FLAG_END * p.end_of_stream) | (FLAG_TAG * (key is not None))
    body = HEADER.pack(MAGIC, VERSION, flags, p.device_id, p.stream_id, p.seq, p.first_frame, p.codebook_id,
                       p.n_q, p.n_frames, len(p.payload)) + p.payload
    if key is not None:
        body += _tag(key, body)
    data = body + struct.pack("<I", crc32c(body))
    if len(data) > MAX_PACKET:
        raise WireError(f"packet of {len(data)} bytes: at most {MAX_PACKET} (send fewer frames per packet)", "size")
    return data


def decode_packet(data: bytes, keys: dict[int, bytes] | None = None) -> Packet:
    """Parse and check one packet. With ``keys`` (device id -> key) every packet must carry a valid tag.

    Raises:
        WireError: with ``reason`` one of size, magic, version, flags, length, crc, tag, field.
    """
    data = bytes(data)
    if len(data) > MAX_PACKET:
        raise WireError(f"packet of {len(data)} bytes: at most {MAX_PACKET}", "size")
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise WireError(f"packet of {len(data)} bytes: shorter than header + CRC ({HEADER_SIZE + CRC_SIZE})", "size")
    if data[:2] != MAGIC:
        raise WireError(f"magic {data[:2].hex()}: expected {MAGIC.hex()} ('AC')", "magic")
    (_, version, flags, device, stream, seq, first, book, n_q, n_frames, length) = HEADER.unpack_from(data)
    if version != VERSION:
        raise WireError(f"protocol version {version}: this server speaks {VERSION}", "version")
    if flags & ~KNOWN_FLAGS:
        raise WireError(f"flags 0x{flags:02x}: unknown bits 0x{flags & ~KNOWN_FLAGS:02x}", "flags")
    tagged = bool(flags & FLAG_TAG)
    expected = HEADER_SIZE + length + TAG_SIZE * tagged + CRC_SIZE
    if len(data) != expected:
        raise WireError(f"packet of {len(data)} bytes: header says {expected} (payload {length})", "length")
    body, crc = data[:-CRC_SIZE], struct.unpack_from("<I", data, len(data) - CRC_SIZE)[0]
    if crc32c(body) != crc:
        raise WireError(f"CRC-32C 0x{crc:08x} does not match the packet (0x{crc32c(body):08x})", "crc")
    if n_q == 0 or n_frames > MAX_FRAMES:
        raise WireError(f"n_q {n_q} / n_frames {n_frames}: expected n_q >= 1 and n_frames <= {MAX_FRAMES}", "field")
    if keys is not None:
        key = keys.get(device)
        if key is None:
            raise WireError(f"device {device} has no key", "tag")
        if not tagged:
            raise WireError(f"device {device}: packet has no tag and keys are required", "tag")
        signed, tag = body[:-TAG_SIZE], body[-TAG_SIZE:]
        if not hmac.compare_digest(_tag(key, signed), tag):
            raise WireError(f"device {device}: HMAC tag does not match", "tag")
    payload = data[HEADER_SIZE: HEADER_SIZE + length]
    return Packet(device, stream, seq, first, book, n_q, n_frames, payload, bool(flags & FLAG_ENTROPY),
                  bool(flags & FLAG_END), tagged)


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

    ``feed(data)`` returns, in order, a ``Packet`` or a ``WireError`` for each complete frame. A frame longer
    than the largest encoded packet is dropped as it arrives (bounded memory), reported once at its end.
    """

    MAX_FRAME = MAX_PACKET + MAX_PACKET // 254 + 2

    def __init__(self, keys: dict[int, bytes] | None = None) -> None:
        self.keys, self._buf, self._overflow = keys, bytearray(), False

    def feed(self, data: bytes) -> list[Packet | WireError]:
        out: list[Packet | WireError] = []
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

    def _frame(self, raw: bytes) -> Packet | WireError:
        try:
            return decode_packet(cobs.decode(raw), self.keys)
        except cobs.DecodeError as e:
            return WireError(f"serial frame of {len(raw)} bytes is not valid COBS ({e})", "framing")
        except WireError as e:
            return e


def make_payload(codes: np.ndarray, codebook_sizes: Sequence[int], priors=None) -> tuple[bytes, bool]:
    """(payload, entropy_coded) for codes ``[n_q, T]``: range-coded with ``priors`` (a ``CodePriors``) when
    given, else bit-packed."""
    if priors is None:
        return pack_codes(codes, codebook_sizes), False
    from acom.training.bitrate import encode_codes
    return encode_codes(np.asarray(codes), priors), True


def packet_codes(p: Packet, codebook_sizes: Sequence[int], priors=None) -> np.ndarray:
    """Codes ``[n_q, n_frames]`` of a packet; an entropy-coded one needs the bundle's ``priors``."""
    if not p.entropy_coded:
        return unpack_codes(p.payload, codebook_sizes, p.n_q, p.n_frames)
    if priors is None:
        raise WireError("entropy-coded packet, but no priors are loaded for its codebook", "payload")
    if p.n_q > priors.n_q:
        raise WireError(f"n_q {p.n_q}: the priors hold {priors.n_q} stages", "field")
    from acom.errors import AcomError
    from acom.training.bitrate import decode_codes
    try:
        return decode_codes(p.payload, priors, p.n_q, p.n_frames)
    except AcomError as e:  # range coding has no redundancy: some damage decodes, some raises
        raise WireError(f"entropy-coded payload does not decode: {e}", "payload") from e
