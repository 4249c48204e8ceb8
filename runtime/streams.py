"""Stream reassembly on the server: packets of one (device, stream) back into frames, in order, exactly once.

Pure logic, no sockets and no clock of its own (the caller passes ``now`` in seconds). Per stream:

- a **reorder buffer** of at most ``window`` packets: a packet ahead of the next expected ``seq`` waits;
- **duplicates** (a ``seq`` already received) and **late** packets (their frames were already declared lost)
  are dropped and counted, never applied twice;
- **loss**: a gap is declared lost when the oldest waiting packet has waited ``reorder_timeout`` seconds or
  the buffer is full; its frames become one ``Chunk`` with ``codes is None`` (the tail is told: see engine.py);
- **replay**: a closed stream id stays closed (with device keys: for the server's lifetime, 8 KiB of bits per
  device; without keys: for ``linger`` seconds), and a seq more than ``window`` behind is refused as replay;
- a stream ends with its end-of-stream packet in order, or after ``idle_timeout`` seconds without packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from acom.runtime.wire import Packet

StreamKey = tuple[int, int]  # (device_id, stream_id)


@dataclass(frozen=True)
class Chunk:
    """Consecutive frames of a stream, ready for the tail. ``codes`` [n_q, n_frames], None for lost frames."""

    first_frame: int
    n_frames: int
    codes: np.ndarray | None
    seqs: tuple[int, int]  # packets first..last that it came from (for lost frames: the seqs presumed lost)
    arrival: float  # when the packet arrived (lost frames: when the loss was declared)


@dataclass(frozen=True, kw_only=True)
class ReassemblyConfig:
    """How long and how much the server waits for packets out of order."""

    window: int = 32  # packets held per stream while one is missing; also the replay window in seq numbers
    reorder_timeout: float = 0.2  # seconds a gap may stay open before its frames are declared lost
    idle_timeout: float = 10.0  # seconds without packets after which an open stream is ended
    linger: float = 60.0  # seconds a closed stream id stays refused when no device keys are configured
    max_streams: int = 10000  # open streams at most (a new one beyond it is refused: "streams")
    max_gap_frames: int | None = None  # a packet further than this beyond its stream's next frame is refused
    #                                   ("gap"): lost frames reach the tail as frames, so a claimed gap is work


@dataclass
class _Stream:
    next_seq: int = 0
    next_frame: int = 0
    waiting: dict[int, tuple[Packet, np.ndarray, float]] = field(default_factory=dict)
    received: set[int] = field(default_factory=set)  # seqs received in [next_seq - window, next_seq)
    lost_from: int = 0  # first seq not received since the last delivered packet (gaps report their seqs)
    last_packet: float = 0.0


@dataclass
class Delivery:
    """What ``accept`` or ``tick`` hands on: chunks per stream, in order, and streams that ended."""

    chunks: list[tuple[StreamKey, Chunk]] = field(default_factory=list)
    ended: list[tuple[StreamKey, str]] = field(default_factory=list)  # (key, "end" | "idle" | "shutdown")
    dropped: list[tuple[StreamKey, str]] = field(default_factory=list)  # packets dropped on release ("frames")


class Reassembler:
    """Per-stream reorder buffers, loss and duplicate handling for packets whose codes are already unpacked."""

    def __init__(self, config: ReassemblyConfig = ReassemblyConfig(), keyed: bool = False) -> None:
        self.config, self.keyed = config, keyed
        self.streams: dict[StreamKey, _Stream] = {}
        self._closed_keyed: dict[int, bytearray] = {}  # device -> bitmap of its 65536 stream ids
        self.closed_count = 0  # streams ended so far (tells a saver that the bitmaps changed)
        self._closed_at: dict[StreamKey, float] = {}  # without keys: when each stream closed

    def accept(self, p: Packet, codes: np.ndarray, now: float) -> tuple[Delivery, str | None]:
        """Take one checked packet with its codes [n_q, n_frames]. Returns (delivery, drop reason or None).

        Drop reasons: ``duplicate``, ``late``, ``replay``, ``closed`` (no keys: stream ended recently),
        ``frames`` (its frames overlap frames already delivered), ``streams`` (too many open streams), ``gap``
        (it starts more than ``max_gap_frames`` beyond the stream's next frame).
        """
        key, out = (p.device_id, p.stream_id), Delivery()
        s = self.streams.get(key)
        next_frame = 0 if s is None else s.next_frame
        if self.config.max_gap_frames is not None and p.first_frame - next_frame > self.config.max_gap_frames:
            return out, "gap"
        if s is None:
            reason = self._closed_reason(key, now) or (
                "streams" if len(self.streams) >= self.config.max_streams else None)
            if reason is not None:
                return out, reason
            s = self.streams[key] = _Stream(last_packet=now)
        if p.seq < s.next_seq:
            if p.seq < s.next_seq - self.config.window:
                return out, "replay"
            return out, "duplicate" if p.seq in s.received else "late"
        if p.seq in s.waiting:
            return out, "duplicate"
        s.last_packet = now
        s.waiting[p.seq] = (p, codes, now)
        if p.seq >= s.next_seq + self.config.window:  # far ahead: what lies before it cannot all wait
            self._declare_lost(key, s, p.seq - self.config.window + 1, now, out)
        self._release(key, s, now, out)
        return out, None

    def tick(self, now: float) -> Delivery:
        """Declare overdue gaps lost and end idle streams (call a few times per reorder timeout)."""
        out = Delivery()
        for key, s in list(self.streams.items()):
            if s.waiting:
                oldest = min(arrival for _, _, arrival in s.waiting.values())
                if now - oldest >= self.config.reorder_timeout:
                    self._declare_lost(key, s, min(s.waiting), now, out)
                    self._release(key, s, now, out)
            if key in self.streams and now - s.last_packet >= self.config.idle_timeout:
                self._close(key, now, "idle", out)
        if not self.keyed:  # forget closed ids after the linger time (bounded memory)
            for key in [k for k, t in self._closed_at.items() if now - t >= self.config.linger]:
                del self._closed_at[key]
        return out

    def close_all(self, now: float) -> Delivery:
        """End every open stream (shutdown): what waits behind a gap is delivered after the gap."""
        out = Delivery()
        for key, s in list(self.streams.items()):
            while s.waiting and key in self.streams:
                self._declare_lost(key, s, min(s.waiting), now, out)
                self._release(key, s, now, out)
            if key in self.streams:
                self._close(key, now, "shutdown", out)
        return out

    def _release(self, key: StreamKey, s: _Stream, now: float, out: Delivery) -> None:
        """Deliver the waiting packets that are next in order (frames skipped before one become a gap chunk)."""
        while key in self.streams and s.next_seq in s.waiting:
            p, codes, arrival = s.waiting.pop(s.next_seq)
            lost_from = min(s.lost_from, p.seq)
            s.lost_from = p.seq + 1
            self._mark_received(s, p.seq)
            if p.first_frame < s.next_frame:  # overlaps frames already delivered: never apply frames twice
                out.dropped.append((key, "frames"))
            else:
                if p.first_frame > s.next_frame:  # packets lost before it (or frames the device skipped)
                    seqs = (lost_from, p.seq - 1) if lost_from < p.seq else (p.seq, p.seq)
                    out.chunks.append((key, Chunk(s.next_frame, p.first_frame - s.next_frame, None, seqs, now)))
                if p.n_frames:
                    out.chunks.append((key, Chunk(p.first_frame, p.n_frames, codes, (p.seq, p.seq), arrival)))
                s.next_frame = p.first_frame + p.n_frames
            if p.end_of_stream:
                self._close(key, now, "end", out)
                return

    def _declare_lost(self, key: StreamKey, s: _Stream, upto_seq: int, now: float, out: Delivery) -> None:
        """Give up on every missing packet before ``upto_seq``: deliver what waits, in order, across the gaps."""
        while s.next_seq < upto_seq and key in self.streams:
            if s.next_seq not in s.waiting:
                s.next_seq = min([q for q in s.waiting if q > s.next_seq], default=upto_seq)
                s.next_seq = min(s.next_seq, upto_seq)
            self._release(key, s, now, out)

    def _mark_received(self, s: _Stream, seq: int) -> None:
        s.next_seq = seq + 1
        s.received.add(seq)
        if len(s.received) > 2 * self.config.window:  # keep only the replay window's seqs
            s.received = {q for q in s.received if q >= s.next_seq - self.config.window}

    def _close(self, key: StreamKey, now: float, why: str, out: Delivery) -> None:
        s = self.streams.pop(key)
        out.dropped.extend((key, "closed") for _ in s.waiting)  # sent after the end-of-stream packet
        s.waiting.clear()  # nothing of an ended stream is released later (a caller may still hold ``s``)
        if self.keyed:
            bits = self._closed_keyed.setdefault(key[0], bytearray(1 << 13))
            bits[key[1] >> 3] |= 1 << (key[1] & 7)
            self.closed_count += 1
        else:
            self._closed_at[key] = now
        out.ended.append((key, why))

    def end(self, key: StreamKey, now: float, why: str) -> None:
        """End a stream from outside (its tail failed): what waits is dropped, its id closed as any ended one."""
        self._close(key, now, why, Delivery())

    def closed_ids(self) -> dict[int, bytes]:
        """With keys: per device, the bitmap of its ended stream ids (what ``load_closed_ids`` restores)."""
        return {d: bytes(b) for d, b in self._closed_keyed.items()}

    def load_closed_ids(self, closed: dict[int, bytes]) -> None:
        """Merge ended stream ids saved by an earlier server: their packets stay refused as ``replay``."""
        for device, bits in closed.items():
            mine = self._closed_keyed.setdefault(int(device), bytearray(1 << 13))
            for i, b in enumerate(bits[: 1 << 13]):
                mine[i] |= b

    def _closed_reason(self, key: StreamKey, now: float) -> str | None:
        if self.keyed:
            bits = self._closed_keyed.get(key[0])
            return "replay" if bits is not None and bits[key[1] >> 3] >> (key[1] & 7) & 1 else None
        closed = self._closed_at.get(key)
        return "closed" if closed is not None and now - closed < self.config.linger else None
