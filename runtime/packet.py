"""What a packet says, whatever version carried it: ``Packet``, the codebook id, the HMAC tag. Spec: docs/wire.md."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from acom.errors import WireError


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
    compact: bool = False  # arrived with its header implied by its stream's context (v2 compact, v3 short)
    frames_per_packet: int = 0  # v3: the stream's frames per packet, said by its full packets (0: v2)
    tag_len: int = 0  # bytes of HMAC tag (v2: 16 when tagged; v3: 0, 4, 8 or 16, a stream setting)
    stream_n_q: int = 0  # v3: the stream's usual n_q, said by its full packets (a short packet may differ)
    version: int = 3

    @property
    def context(self) -> tuple[int, int]:
        """(version, context number): which of its source's stream contexts this packet's stream uses."""
        return (self.version, self.stream_id & (0xFF if self.version == 2 else 0x0F))


def codebook_id(codebook_hash: str) -> int:
    """The 64-bit id packets carry for a bundle: the first 8 bytes of its codebook hash (hex SHA-256)."""
    try:
        raw = bytes.fromhex(codebook_hash)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise WireError(f"codebook hash {codebook_hash!r}: expected 64 hex digits (a SHA-256)", "codebook")
    return int.from_bytes(raw[:8], "little")


def hmac_tag(key: bytes, data: bytes, size: int) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key``, its first ``size`` bytes."""
    return hmac.new(key, data, hashlib.sha256).digest()[:size]


def check_tag(keys: dict[int, bytes], device_id: int, tagged: bool, signed: bytes, tag: bytes) -> None:
    """Raise ``WireError("tag")`` unless ``tag`` is the device's HMAC of ``signed`` (keys are required)."""
    key = keys.get(device_id)
    if key is None:
        raise WireError(f"device {device_id} has no key", "tag")
    if not tagged:
        raise WireError(f"device {device_id}: packet has no tag and keys are required", "tag")
    if not hmac.compare_digest(hmac_tag(key, signed, len(tag)), tag):
        raise WireError(f"device {device_id}: HMAC tag does not match", "tag")
