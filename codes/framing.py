"""What the wire adds to the codes, so that every rate is reported twice: the codes' bits (payload) and the
bits sent (wire). Sizes of wire format version 3 (docs/wire.md): a stream's full packets (its first, one in
``full_every``, its last) carry a 32-byte header, the others 2 bytes; each ends with the tag (``tag_len``
bytes) or, without a key, a CRC (4 bytes full, 2 short). ``acom.runtime.wire`` writes the packets; a test
checks these sizes against it. IPv4/UDP headers and serial framing are left out (the link's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acom.codes.budget import packed_bits_per_frame

FULL_HEADER, SHORT_HEADER = 32, 2


@dataclass(frozen=True)
class Framing:
    """How a device sends its codes: ``packet_s`` seconds of audio per packet, a tag of ``tag_len`` bytes
    (0: no key), a full packet every ``full_every``."""

    packet_s: float = 1.0
    tag_len: int = 0
    full_every: int = 8

    def describe(self) -> str:
        key = f"{self.tag_len}-byte tag" if self.tag_len else "no key"
        return f"wire v3, {self.packet_s:g} s packets, {key}, full packet every {self.full_every}"


DEFAULT = Framing()


def packet_overhead(tag_len: int, full: bool) -> int:
    """Bytes a packet adds to its payload: header and tag or CRC (a short packet at its stream's n_q)."""
    return (FULL_HEADER if full else SHORT_HEADER) + (tag_len or (4 if full else 2))


def stream_bytes(payload_bytes: Sequence[int], framing: Framing = DEFAULT) -> int:
    """Bytes sent for one stream whose packets carry ``payload_bytes`` (in order)."""
    n = len(payload_bytes)
    full = sum(1 for i in range(n) if i % framing.full_every == 0 or i == n - 1)
    return int(sum(payload_bytes)) + full * packet_overhead(framing.tag_len, True) \
        + (n - full) * packet_overhead(framing.tag_len, False)


def session_payloads(codes: Sequence[np.ndarray], codebook_sizes: Sequence[int], frame_rate: float,
                     framing: Framing = DEFAULT, priors=None) -> list[int]:
    """Payload bytes of each packet when ``codes`` (each [n_q, T], one per item) are sent back to back as one
    session (a device left on): bit-packed, or range-coded with ``priors`` (a CodePriors), one packet at a time."""
    from acom.codes.priors import encode_codes
    fpp = max(1, round(framing.packet_s * frame_rate))
    allc = np.concatenate([np.asarray(c) for c in codes], axis=1)
    bits = packed_bits_per_frame(list(codebook_sizes)[: allc.shape[0]])
    parts = [allc[:, s: s + fpp] for s in range(0, allc.shape[1], fpp)]
    if priors is None:
        return [math.ceil(bits * p.shape[1] / 8) for p in parts]
    return [len(encode_codes(p, priors)) for p in parts]


def session_rates(codes: Sequence[np.ndarray], codebook_sizes: Sequence[int], frame_rate: float,
                  framing: Framing = DEFAULT, priors=None) -> dict:
    """``payload_bps`` and ``wire_bps`` of ``codes`` sent as one session (``session_payloads``)."""
    payloads = session_payloads(codes, codebook_sizes, frame_rate, framing, priors)
    seconds = sum(np.asarray(c).shape[1] for c in codes) / frame_rate
    return {"payload_bps": round(8 * sum(payloads) / seconds, 2),
            "wire_bps": round(8 * stream_bytes(payloads, framing) / seconds, 2)}


def framed_bps(payload_bps: float, seconds: float, framing: Framing = DEFAULT) -> float:
    """The wire rate of a payload of ``payload_bps`` (a codec's bitstream) sent for ``seconds`` in packets
    framed as acom's: each packet carries ``packet_s`` of it."""
    n = max(1, math.ceil(seconds / framing.packet_s))
    per_packet = [payload_bps * framing.packet_s / 8] * n
    return round(8 * stream_bytes(per_packet, framing) / seconds, 2)
